package kongcompat

import (
	"cmp"
	"slices"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// Kind says what an [Entry] takes out of a configuration.
type Kind int

// Entry kinds.
const (
	// KindPluginField: the dotted path Field inside the config of every plugin named Plugin is
	// removed (Kong's removed_fields.lua).
	KindPluginField Kind = iota
	// KindEntityField: Field is removed from every row of the Entity collection, or only from the
	// rows When accepts (Kong's checkers.lua).
	KindEntityField
	// KindEntityValue: the value Value of Field in the Entity collection is replaced by
	// Replacement (checkers.lua: upstream algorithm "latency" becomes "round-robin").
	KindEntityValue
	// KindEntityType: the whole Entity collection is removed; the data plane has no such DAO and
	// its declarative parser refuses the unknown key.
	KindEntityType
	// KindPluginReshape: the plugin's config is rewritten into the shape the older version knows,
	// without changing what it does (checkers.lua: rate-limiting's redis record becomes the flat
	// redis_* fields).
	KindPluginReshape
)

// Entry is one thing Kong data planes older than Before do not understand, and how the
// configuration sent to them is changed. Entries are immutable.
type Entry struct {
	// Before is the first Kong version that understands the thing ("3.5.0"); data planes whose
	// version is lower get the change.
	Before string
	// Kind says what is changed.
	Kind Kind
	// Entity is the config_table collection ("plugins", "upstreams", …).
	Entity string
	// Plugin is the plugin name, with dashes ("rate-limiting"), for the plugin kinds.
	Plugin string
	// Field is the dotted path inside the plugin's config for KindPluginField, the row field for
	// the entity kinds; empty for KindEntityType and KindPluginReshape.
	Field string
	// Value and Replacement are the unsupported value and what replaces it (KindEntityValue).
	Value, Replacement any
	// Metadata marks fields that do not change how the gateway behaves (updated_at,
	// instance_name): removing them never raises a compatibility warning.
	Metadata bool
	// When, if set, restricts a KindEntityField entry to the rows it accepts.
	When func(row map[string]any) bool
	// Source names the Kong file and version the entry was taken from.
	Source string

	before int64
	// def is the schema default of the removed field (what "not set" means), for warnings.
	def any
}

// Sources of the table, named once. The removed_fields.lua and checkers.lua read are Kong's
// open-source tree; the 3.10 section of removed_fields.lua was read at a pre-release revision
// where cors' new field still had its working name skip_cors_when_origin_is_empty: it shipped in
// 3.10.0 as allow_origin_absent (Kong's cors plugin changelog, 3.10.0.0, and Gantry's own
// reference notes, kong-compat.md §1.9).
const (
	srcRemovedFields = "Kong/kong kong/clustering/compat/removed_fields.lua"
	srcCheckers      = "Kong/kong kong/clustering/compat/checkers.lua"
	srcChangelog31   = "Kong/kong CHANGELOG.md 3.1.0 (Additions: keys and key-sets entities)"
)

// Table lists, oldest first, what Kong data planes of older 3.x versions lack among the entities
// and plugins Gantry supports, with where each fact comes from. Kong's own lists cover many more
// plugins (acme, session, opentelemetry, zipkin, ai-*, aws-lambda, …); entries for plugins and
// fields Gantry does not have are left out, and TestTableFieldsExistInSchema keeps it that way.
//
// No entry has Before 3.11.0 or 3.12.0: every field of Gantry's entity and plugin schemas is
// known to Kong 3.10 (Gantry's schema is Kong 3.9's plus the two 3.10 fields below), so a 3.10,
// 3.11 or 3.12 data plane gets the configuration unchanged.
var Table = []*Entry{
	// Data planes older than 3.1.0.
	{Before: "3.1.0", Kind: KindPluginField, Plugin: "rate-limiting", Field: "error_code", Source: srcRemovedFields + " [3001000000] (Kong 3.1)"},
	{Before: "3.1.0", Kind: KindPluginField, Plugin: "rate-limiting", Field: "error_message", Source: srcRemovedFields + " [3001000000] (Kong 3.1)"},
	{Before: "3.1.0", Kind: KindEntityField, Entity: "upstreams", Field: "use_srv_name", Source: srcCheckers + " 3.1.0.0 checker (Kong 3.1)"},
	{Before: "3.1.0", Kind: KindEntityType, Entity: "keys", Source: srcChangelog31},
	{Before: "3.1.0", Kind: KindEntityType, Entity: "key_sets", Source: srcChangelog31},

	// Data planes older than 3.2.0.
	{Before: "3.2.0", Kind: KindEntityField, Entity: "plugins", Field: "instance_name", Metadata: true, Source: srcCheckers + " 3.2.0.0 checker (Kong 3.2)"},
	{Before: "3.2.0", Kind: KindEntityValue, Entity: "upstreams", Field: "algorithm", Value: "latency", Replacement: "round-robin", Source: srcCheckers + " 3.2.0.0 checker (Kong 3.2)"},
	{Before: "3.2.0", Kind: KindEntityField, Entity: "services", Field: "client_certificate", When: tlsService, Source: srcCheckers + " 3.2.0.0 checker (Kong 3.2)"},
	{Before: "3.2.0", Kind: KindEntityField, Entity: "services", Field: "tls_verify", When: tlsService, Source: srcCheckers + " 3.2.0.0 checker (Kong 3.2)"},
	{Before: "3.2.0", Kind: KindEntityField, Entity: "services", Field: "tls_verify_depth", When: tlsService, Source: srcCheckers + " 3.2.0.0 checker (Kong 3.2)"},
	{Before: "3.2.0", Kind: KindEntityField, Entity: "services", Field: "ca_certificates", When: tlsService, Source: srcCheckers + " 3.2.0.0 checker (Kong 3.2)"},

	// Data planes older than 3.3.0.
	{Before: "3.3.0", Kind: KindPluginField, Plugin: "proxy-cache", Field: "ignore_uri_case", Source: srcRemovedFields + " [3003000000] (Kong 3.3)"},
	{Before: "3.3.0", Kind: KindPluginField, Plugin: "http-log", Field: "queue", Source: srcRemovedFields + " [3003000000] (Kong 3.3)"},
	updatedAt("ca_certificates"), updatedAt("certificates"), updatedAt("consumers"), updatedAt("targets"),
	updatedAt("upstreams"), updatedAt("plugins"), updatedAt("workspaces"), updatedAt("snis"),

	// Data planes older than 3.4.0.
	{Before: "3.4.0", Kind: KindPluginField, Plugin: "rate-limiting", Field: "sync_rate", Source: srcRemovedFields + " [3004000000] (Kong 3.4)"},
	{Before: "3.4.0", Kind: KindPluginField, Plugin: "proxy-cache", Field: "response_headers", Source: srcRemovedFields + " [3004000000] (Kong 3.4)"},

	// Data planes older than 3.5.0.
	{Before: "3.5.0", Kind: KindPluginField, Plugin: "cors", Field: "private_network", Source: srcRemovedFields + " [3005000000] (Kong 3.5)"},

	// Data planes older than 3.6.0.
	{Before: "3.6.0", Kind: KindPluginField, Plugin: "basic-auth", Field: "realm", Source: srcRemovedFields + " [3006000000] (Kong 3.6)"},
	{Before: "3.6.0", Kind: KindPluginReshape, Entity: "plugins", Plugin: "rate-limiting",
		Source: srcCheckers + " 3.6.0.0 checker (Kong 3.6: redis settings moved into config.redis; older data planes get redis_*)"},

	// Data planes older than 3.7.0.
	{Before: "3.7.0", Kind: KindPluginField, Plugin: "key-auth", Field: "realm", Source: srcRemovedFields + " [3007000000] (Kong 3.7)"},

	// Data planes older than 3.8.0.
	{Before: "3.8.0", Kind: KindPluginField, Plugin: "response-transformer", Field: "rename.json", Source: srcRemovedFields + " [3008000000] (Kong 3.8)"},
	{Before: "3.8.0", Kind: KindPluginField, Plugin: "hmac-auth", Field: "realm", Source: srcRemovedFields + " [3008000000] (Kong 3.8)"},
	{Before: "3.8.0", Kind: KindPluginField, Plugin: "jwt", Field: "realm", Source: srcRemovedFields + " [3008000000] (Kong 3.8)"},
	{Before: "3.8.0", Kind: KindPluginField, Plugin: "prometheus", Field: "ai_metrics", Source: srcRemovedFields + " [3008000000] (Kong 3.8)"},
	{Before: "3.8.0", Kind: KindPluginField, Plugin: "acl", Field: "always_use_authenticated_groups", Source: srcRemovedFields + " [3008000000] (Kong 3.8)"},
	{Before: "3.8.0", Kind: KindPluginField, Plugin: "http-log", Field: "queue.concurrency_limit", Source: srcRemovedFields + " [3008000000] (Kong 3.8)"},

	// Data planes older than 3.10.0 (Kong has no 3.9 entries).
	{Before: "3.10.0", Kind: KindPluginField, Plugin: "cors", Field: "allow_origin_absent", Source: srcRemovedFields + " [3010000000] (Kong 3.10; skip_cors_when_origin_is_empty before release)"},
	{Before: "3.10.0", Kind: KindPluginField, Plugin: "prometheus", Field: "wasm_metrics", Source: srcRemovedFields + " [3010000000] (Kong 3.10)"},
}

// updatedAt is checkers.lua's 3.3.0.0 checker, one entity at a time: data planes older than 3.3
// have no updated_at on these entities.
func updatedAt(entity string) *Entry {
	return &Entry{Before: "3.3.0", Kind: KindEntityField, Entity: entity, Field: "updated_at", Metadata: true,
		Source: srcCheckers + " 3.3.0.0 checker (Kong 3.3)"}
}

// tlsService selects the services checkers.lua's 3.2.0.0 checker rewrites: before 3.2, the
// upstream TLS settings existed for HTTPS services only.
func tlsService(row map[string]any) bool { return row["protocol"] == "tls" }

// redisFields maps rate-limiting's config.redis record (Kong 3.6+) to the flat fields of Kong
// 3.0-3.5's schema.
var redisFields = [][2]string{
	{"host", "redis_host"}, {"port", "redis_port"}, {"password", "redis_password"}, {"username", "redis_username"},
	{"ssl", "redis_ssl"}, {"ssl_verify", "redis_ssl_verify"}, {"server_name", "redis_server_name"},
	{"timeout", "redis_timeout"}, {"database", "redis_database"},
}

// classes are the distinct Before versions of Table, ascending.
var classes []int64

func init() {
	for _, e := range Table {
		e.before = mustVersionNum(e.Before)
		e.def = defaultOf(e)
		if !slices.Contains(classes, e.before) {
			classes = append(classes, e.before)
		}
	}
	slices.SortStableFunc(Table, func(a, b *Entry) int { return cmp.Compare(a.before, b.before) })
	slices.Sort(classes)
}

// defaultOf returns the schema default of the field an entry removes; nil when the schema has
// none (or no such field).
func defaultOf(e *Entry) any {
	var fields []*schema.Field
	switch e.Kind {
	case KindPluginField:
		p, ok := schema.LookupPlugin(e.Plugin)
		if !ok {
			return nil
		}
		fields = p.Config
	case KindEntityField:
		ent, ok := schema.Lookup(e.Entity)
		if !ok {
			return nil
		}
		fields = ent.Fields
	default:
		return nil
	}
	f := lookupField(fields, e.Field)
	if f == nil {
		return nil
	}
	return f.DefaultValue()
}

// lookupField finds the field at a dotted path through records; nil if there is none.
func lookupField(fields []*schema.Field, path string) *schema.Field {
	name, rest, nested := strings.Cut(path, ".")
	for _, f := range fields {
		if f.Name != name {
			continue
		}
		if !nested {
			return f
		}
		return lookupField(f.Fields, rest)
	}
	return nil
}
