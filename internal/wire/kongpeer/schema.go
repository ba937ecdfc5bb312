package kongpeer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// introduction is one thing Kong Gateway added in a 3.x minor, as a data plane of an older
// version sees it: an entity type, an entity field, a plugin config field (dotted path) or an
// entity value it does not know.
type introduction struct {
	minor  int // Kong 3.<minor>.0 added it
	entity string
	plugin string // plugins only: the plugin whose config has path
	path   string // "" for a whole entity type
	value  any    // non-nil: the value of path that was added, not the field
}

// introductions is the peer's own record of when Kong added what Gantry's configuration may carry,
// written from Kong's changelogs and schemas (CHANGELOG.md, the plugins' changelogs, the entity
// and plugin schema files of each release), independently of the control plane's downgrade table
// so that the two check each other.
var introductions = []introduction{
	{minor: 1, entity: "keys"},
	{minor: 1, entity: "key_sets"},
	{minor: 1, entity: "upstreams", path: "use_srv_name"},
	{minor: 1, entity: "plugins", plugin: "rate-limiting", path: "error_code"},
	{minor: 1, entity: "plugins", plugin: "rate-limiting", path: "error_message"},
	{minor: 2, entity: "plugins", path: "instance_name"},
	{minor: 2, entity: "upstreams", path: "algorithm", value: "latency"},
	{minor: 3, entity: "plugins", plugin: "proxy-cache", path: "ignore_uri_case"},
	{minor: 3, entity: "plugins", plugin: "http-log", path: "queue"},
	{minor: 3, entity: "ca_certificates", path: "updated_at"},
	{minor: 3, entity: "certificates", path: "updated_at"},
	{minor: 3, entity: "consumers", path: "updated_at"},
	{minor: 3, entity: "targets", path: "updated_at"},
	{minor: 3, entity: "upstreams", path: "updated_at"},
	{minor: 3, entity: "plugins", path: "updated_at"},
	{minor: 3, entity: "workspaces", path: "updated_at"},
	{minor: 3, entity: "snis", path: "updated_at"},
	{minor: 4, entity: "plugins", plugin: "rate-limiting", path: "sync_rate"},
	{minor: 4, entity: "plugins", plugin: "proxy-cache", path: "response_headers"},
	{minor: 5, entity: "plugins", plugin: "cors", path: "private_network"},
	{minor: 6, entity: "plugins", plugin: "basic-auth", path: "realm"},
	{minor: 6, entity: "plugins", plugin: "rate-limiting", path: "redis"},
	{minor: 7, entity: "plugins", plugin: "key-auth", path: "realm"},
	{minor: 8, entity: "plugins", plugin: "response-transformer", path: "rename.json"},
	{minor: 8, entity: "plugins", plugin: "hmac-auth", path: "realm"},
	{minor: 8, entity: "plugins", plugin: "jwt", path: "realm"},
	{minor: 8, entity: "plugins", plugin: "prometheus", path: "ai_metrics"},
	{minor: 8, entity: "plugins", plugin: "acl", path: "always_use_authenticated_groups"},
	{minor: 8, entity: "plugins", plugin: "http-log", path: "queue.concurrency_limit"},
	{minor: 10, entity: "plugins", plugin: "cors", path: "allow_origin_absent"},
	{minor: 10, entity: "plugins", plugin: "prometheus", path: "wasm_metrics"},
}

// legacyRedisFields are rate-limiting's flat Redis settings: the only shape before Kong 3.6, and
// still accepted (as deprecated aliases of config.redis) after it.
var legacyRedisFields = []string{"redis_host", "redis_port", "redis_password", "redis_username", "redis_ssl",
	"redis_ssl_verify", "redis_server_name", "redis_timeout", "redis_database"}

// VersionValidator returns a function for [Options.Validate] that refuses a configuration the way
// the declarative parser of Kong Gateway at version does: an entity type, field or value that
// version does not have yet ("unknown field"), and, in the config of the plugins Gantry bundles,
// any field the plugin's schema does not have. A 3.x version newer than every introduction
// (3.10 and later) accepts all of Gantry's schema. An unparsable version accepts everything.
func VersionValidator(version string) func(config map[string]any) error {
	minor, ok := minorOf(version)
	return func(config map[string]any) error {
		if !ok {
			return nil
		}
		var errs []string
		for _, in := range introductions {
			if in.minor <= minor {
				continue
			}
			rows, present := config[in.entity]
			if !present {
				continue
			}
			if in.path == "" {
				errs = append(errs, fmt.Sprintf("%s: unknown entity type (Kong %s)", in.entity, version))
				continue
			}
			list, _ := rows.([]any)
			for _, r := range list {
				row, _ := r.(map[string]any)
				target := row
				if in.plugin != "" {
					if row["name"] != in.plugin {
						continue
					}
					target, _ = row["config"].(map[string]any)
				}
				v, has := lookup(target, in.path)
				switch {
				case !has:
				case in.value == nil:
					errs = append(errs, fmt.Sprintf("%s %v: %s: unknown field (Kong %s)", in.entity, row["id"], fieldName(in), version))
				case v == in.value:
					errs = append(errs, fmt.Sprintf("%s %v: %s: value %v unknown (Kong %s)", in.entity, row["id"], fieldName(in), v, version))
				}
			}
		}
		if minor < 2 {
			// Before 3.2 the upstream TLS settings of a service exist for https only.
			for _, r := range rowsOf(config, "services") {
				if r["protocol"] != "tls" {
					continue
				}
				for _, f := range []string{"client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates"} {
					if r[f] != nil {
						errs = append(errs, fmt.Sprintf("services %v: %s: only for https services (Kong %s)", r["id"], f, version))
					}
				}
			}
		}
		for _, r := range rowsOf(config, "plugins") {
			name, _ := r["name"].(string)
			p, bundled := schema.LookupPlugin(name)
			cfg, _ := r["config"].(map[string]any)
			if !bundled || cfg == nil {
				continue
			}
			for _, k := range sortedKeys(cfg) {
				if lookupField(p.Config, k) == nil && !(name == "rate-limiting" && slices.Contains(legacyRedisFields, k)) {
					errs = append(errs, fmt.Sprintf("plugins %v: config.%s: unknown field", r["id"], k))
				}
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("declarative config is invalid: %s", strings.Join(errs, "; "))
		}
		return nil
	}
}

// minorOf returns the minor of a 3.x version; ok is false for another major or an unparsable one.
func minorOf(version string) (int, bool) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 3 || parts[0] != "3" {
		return 0, false
	}
	m, err := strconv.Atoi(parts[1])
	return m, err == nil
}

func fieldName(in introduction) string {
	if in.plugin != "" {
		return in.plugin + " config." + in.path
	}
	return in.path
}

// lookup finds a dotted path in m.
func lookup(m map[string]any, path string) (any, bool) {
	if m == nil {
		return nil, false
	}
	name, rest, nested := strings.Cut(path, ".")
	v, ok := m[name]
	if !nested || !ok {
		return v, ok
	}
	sub, _ := v.(map[string]any)
	return lookup(sub, rest)
}

func lookupField(fields []*schema.Field, name string) *schema.Field {
	for _, f := range fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func rowsOf(config map[string]any, entity string) []map[string]any {
	list, _ := config[entity].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, r := range list {
		if m, ok := r.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
