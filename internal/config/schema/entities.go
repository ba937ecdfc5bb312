package schema

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Field constructors for Kong's typedefs; each call returns a new Field so
// definitions never share mutable state.

func rng(lo, hi float64) *[2]float64 { return &[2]float64{lo, hi} }

func gt(v float64) *float64 { return &v }

func anys[T any](vs ...T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

func idField() *Field { return &Field{Name: "id", Type: TypeString, UUID: true, Auto: true} }

func createdAt() *Field {
	return &Field{Name: "created_at", Type: TypeInteger, Timestamp: true, Auto: true}
}

func updatedAt() *Field {
	return &Field{Name: "updated_at", Type: TypeInteger, Timestamp: true, Auto: true}
}

func tagsField() *Field {
	return &Field{Name: "tags", Type: TypeSet, Elements: &Field{Type: TypeString, Required: true, Check: checkTag}}
}

func nameField(required bool) *Field {
	return &Field{Name: "name", Type: TypeString, Unique: true, Required: required, Check: checkName}
}

func foreign(name, ref string, required bool, onDelete string) *Field {
	return &Field{Name: name, Type: TypeForeign, Reference: ref, Required: required, OnDelete: onDelete}
}

func str(name string) *Field { return &Field{Name: name, Type: TypeString} }

func boolean(name string, def bool) *Field {
	return &Field{Name: name, Type: TypeBoolean, Default: def, Required: true}
}

func integer(name string, def int64, lo, hi float64) *Field {
	return &Field{Name: name, Type: TypeInteger, Default: def, Between: rng(lo, hi)}
}

func timeout(name string) *Field {
	return &Field{Name: name, Type: TypeInteger, Default: int64(60000), Between: rng(1, 2147483646)}
}

func strSet(name string, check func(any) string) *Field {
	return &Field{Name: name, Type: TypeSet, Elements: &Field{Type: TypeString, Check: check}}
}

func strArray(name string, check func(any) string) *Field {
	return &Field{Name: name, Type: TypeArray, Elements: &Field{Type: TypeString, Check: check}}
}

func record(name string, fields ...*Field) *Field {
	return &Field{Name: name, Type: TypeRecord, Required: true, Fields: fields}
}

func ifEq(ifField string, ifVals []any, thenField string, then *Match) Check {
	return Check{Kind: "conditional", IfField: ifField, IfMatch: &Match{OneOf: ifVals}, ThenField: thenField, ThenMatch: then}
}

var serviceProtocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}

// certificateSNIs validates the transient snis of certificates.
var certificateSNIs = &Field{Name: "snis", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkWildcardHost}}

func init() {
	registerCertificates()
	registerServices()
	registerRoutes()
	registerConsumers()
	registerUpstreams()
	registerVaults()
	registerKeys()
	registerPluginsEntity()
	registerCredentials()
}

func registerCertificates() {
	register(&Entity{
		Name: "certificates", AdminPath: "certificates",
		Fields: []*Field{
			idField(), createdAt(), updatedAt(),
			{Name: "cert", Type: TypeString, Required: true, Referenceable: true, Check: checkCertificate},
			{Name: "key", Type: TypeString, Required: true, Referenceable: true, Encrypted: true, Check: checkKey},
			{Name: "cert_alt", Type: TypeString, Referenceable: true, Check: checkCertificate},
			{Name: "key_alt", Type: TypeString, Referenceable: true, Encrypted: true, Check: checkKey},
			tagsField(),
		},
		Transient: []string{"snis"},
		Checks: []Check{
			{Kind: "mutually_required", Fields: []string{"cert_alt", "key_alt"}},
			{Kind: "custom_entity_check", Fields: []string{"cert", "key"}, Fn: func(d map[string]any) string {
				return certKeyMatch(d["cert"], d["key"], "certificate does not match key")
			}},
			{Kind: "custom_entity_check", Fields: []string{"cert_alt", "key_alt"}, Fn: func(d map[string]any) string {
				if d["cert_alt"] == nil || d["key_alt"] == nil {
					return ""
				}
				return certKeyMatch(d["cert_alt"], d["key_alt"], "alternative certificate does not match key")
			}},
			{Kind: "custom_entity_check", Fields: []string{"cert", "cert_alt"}, Fn: func(d map[string]any) string {
				if d["cert_alt"] == nil {
					return ""
				}
				a, _ := parseCerts(d["cert"].(string))
				b, _ := parseCerts(d["cert_alt"].(string))
				if len(a) > 0 && len(b) > 0 && a[0].PublicKeyAlgorithm == b[0].PublicKeyAlgorithm {
					return "certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type"
				}
				return ""
			}},
		},
	})
	register(&Entity{
		Name: "ca_certificates", AdminPath: "ca_certificates",
		Fields: []*Field{
			idField(), createdAt(), updatedAt(),
			{Name: "cert", Type: TypeString, Required: true, Check: checkCertificate},
			{Name: "cert_digest", Type: TypeString, Unique: true},
			tagsField(),
		},
		Checks: []Check{{Kind: "custom_entity_check", Fields: []string{"cert"}, Fn: checkCACert}},
		auto: func(_ Op, doc, _, _ map[string]any) {
			// cert_digest is always recomputed from cert, as Kong does.
			if s, ok := doc["cert"].(string); ok {
				if certs, msg := parseCerts(s); msg == "" {
					sum := sha256.Sum256(certs[0].Raw)
					doc["cert_digest"] = hex.EncodeToString(sum[:])
				}
			}
		},
	})
	register(&Entity{
		Name: "snis", AdminPath: "snis", EndpointKey: "name",
		Fields: []*Field{
			idField(),
			{Name: "name", Type: TypeString, Required: true, Unique: true, Check: checkWildcardHost},
			createdAt(), updatedAt(), tagsField(),
			foreign("certificate", "certificates", true, "cascade"),
		},
	})
}

func certKeyMatch(cert, key any, msg string) string {
	c, _ := cert.(string)
	k, _ := key.(string)
	if _, err := tls.X509KeyPair([]byte(c), []byte(k)); err != nil {
		return msg
	}
	return ""
}

func checkCACert(d map[string]any) string {
	certs, msg := parseCerts(d["cert"].(string))
	if msg != "" {
		return ""
	}
	if len(certs) > 1 {
		return "please submit only one certificate at a time"
	}
	c := certs[0]
	if !c.BasicConstraintsValid || !c.IsCA {
		return `certificate does not appear to be a CA because it is missing the "CA" basic constraint`
	}
	if nowFunc().After(c.NotAfter) {
		return `certificate expired, "Not After" time is in the past`
	}
	return ""
}

func registerServices() {
	notHTTPS := &Match{NotOneOf: anys("https", "tls")}
	null := &Match{EqNull: true}
	cond := func(then string) Check {
		return Check{Kind: "conditional", IfField: "protocol", IfMatch: notHTTPS, ThenField: then, ThenMatch: null}
	}
	register(&Entity{
		Name: "services", AdminPath: "services", EndpointKey: "name",
		Fields: []*Field{
			idField(), createdAt(), updatedAt(),
			nameField(false),
			integer("retries", 5, 0, 32767),
			{Name: "protocol", Type: TypeString, Required: true, Default: "http", OneOf: anys(serviceProtocols...)},
			{Name: "host", Type: TypeString, Required: true, Check: checkHost},
			{Name: "port", Type: TypeInteger, Required: true, Default: int64(80), Between: rng(0, 65535)},
			{Name: "path", Type: TypeString, StartsWith: "/", Check: checkServicePath},
			timeout("connect_timeout"), timeout("write_timeout"), timeout("read_timeout"),
			tagsField(),
			foreign("client_certificate", "certificates", false, ""),
			{Name: "tls_verify", Type: TypeBoolean},
			{Name: "tls_verify_depth", Type: TypeInteger, Between: rng(0, 64)},
			{Name: "ca_certificates", Type: TypeArray, Elements: &Field{Type: TypeString, UUID: true}},
			boolean("enabled", true),
		},
		Transient: []string{"url"},
		Checks: []Check{
			ifEq("protocol", anys("tcp", "tls", "tls_passthrough", "udp", "grpc", "grpcs"), "path", null),
			cond("client_certificate"), cond("tls_verify"), cond("tls_verify_depth"), cond("ca_certificates"),
		},
		shorthand: serviceURL,
	})
}

// serviceURL expands the `url` shorthand into protocol, host, port and
// path; the url itself is returned as a transient field.
func serviceURL(_ Op, in map[string]any, errs map[string]any) {
	raw, ok := in["url"]
	if !ok {
		return
	}
	s, ok := raw.(string)
	if !ok {
		errs["url"] = "expected a string"
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		u = &url.URL{Path: s}
	}
	if u.Scheme != "" {
		in["protocol"] = u.Scheme
	}
	if h := u.Hostname(); h != "" {
		in["host"] = h
	} else {
		in["host"] = nil
	}
	switch p := u.Port(); {
	case p != "":
		n, err := strconv.Atoi(p)
		if err != nil {
			in["port"] = p
		} else {
			in["port"] = int64(n)
		}
	case u.Scheme == "https":
		in["port"] = int64(443)
	default:
		in["port"] = int64(80)
	}
	path := u.EscapedPath()
	if u.Opaque != "" {
		path = u.Opaque
	} else if u.Host == "" && u.Scheme == "" {
		path = s
	}
	if path == "" {
		in["path"] = nil
	} else {
		in["path"] = path
	}
}

var routeProtocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}

func registerRoutes() {
	ipPort := &Field{Type: TypeRecord, Fields: []*Field{
		{Name: "ip", Type: TypeString, Check: checkIPOrCIDR},
		{Name: "port", Type: TypeInteger, Between: rng(0, 65535)},
	}, RecordChecks: []Check{{Kind: "at_least_one_of", Fields: []string{"ip", "port"}}}}
	register(&Entity{
		Name: "routes", AdminPath: "routes", EndpointKey: "name",
		Fields: []*Field{
			idField(), createdAt(), updatedAt(),
			nameField(false),
			{Name: "protocols", Type: TypeSet, Required: true, Default: anys("http", "https"), LenMin: 1,
				Elements: &Field{Type: TypeString, OneOf: anys(routeProtocols...)}, Check: checkRouteProtocols},
			{Name: "https_redirect_status_code", Type: TypeInteger, Required: true, Default: int64(426), OneOf: anys[int64](426, 301, 302, 307, 308)},
			boolean("strip_path", true),
			boolean("preserve_host", false),
			boolean("request_buffering", true),
			boolean("response_buffering", true),
			tagsField(),
			foreign("service", "services", false, ""),
			strSet("methods", checkMethod),
			strArray("hosts", checkRouteHost),
			strArray("paths", checkRouterPath),
			{Name: "headers", Type: TypeMap, Keys: &Field{Type: TypeString, Check: checkHeaderName},
				Values: &Field{Type: TypeArray, Elements: &Field{Type: TypeString}}, Check: checkRouteHeaders},
			strSet("snis", checkWildcardHost),
			{Name: "sources", Type: TypeSet, Elements: ipPort},
			{Name: "destinations", Type: TypeSet, Elements: ipPort},
			{Name: "regex_priority", Type: TypeInteger, Default: int64(0)},
			{Name: "path_handling", Type: TypeString, Default: "v0", OneOf: anys("v0", "v1")},
		},
		Checks:      []Check{{Kind: "custom_entity_check", Fields: []string{"protocols", "snis"}, Fn: checkRouteSNIProtocols}},
		validateDoc: routeProtocolRules,
		auto: func(op Op, doc, input, existing map[string]any) {
			// gRPC routes default strip_path to false (routes_subschemas.lua).
			if _, set := input["strip_path"]; set || op == OpUpdate {
				return
			}
			if onlyProtocols(doc["protocols"], "grpc", "grpcs") {
				doc["strip_path"] = false
			}
		},
	})
}

func onlyProtocols(v any, allowed ...string) bool {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return false
	}
	for _, p := range list {
		found := false
		for _, a := range allowed {
			if p == a {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func hasProtocol(v any, p string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

// routeProtocolSets are the routes schema's mutually_exclusive_subsets of protocols.
var routeProtocolSets = [][]string{{"http", "https"}, {"tcp", "tls", "udp"}, {"tls_passthrough"}, {"grpc", "grpcs"}}

// checkRouteProtocols is Kong's mutually_exclusive_subsets: the message lists the sets the value
// draws from, in the order the value first names them.
func checkRouteProtocols(v any) string {
	list, _ := v.([]any)
	var used []int
	for _, p := range list {
		for i, g := range routeProtocolSets {
			if slices.Contains(g, fmt.Sprint(p)) && !slices.Contains(used, i) {
				used = append(used, i)
			}
		}
	}
	if len(used) <= 1 {
		return ""
	}
	parts := make([]string, len(used))
	for i, g := range used {
		parts[i] = "('" + strings.Join(routeProtocolSets[g], "', '") + "')"
	}
	return "these sets are mutually exclusive: " + strings.Join(parts, ", ")
}

func checkRouteHeaders(v any) string {
	for k := range v.(map[string]any) {
		if strings.EqualFold(k, "host") {
			return "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
		}
	}
	return ""
}

func checkRouteSNIProtocols(d map[string]any) string {
	if !nonEmpty(d["snis"]) {
		return ""
	}
	for _, p := range []string{"https", "grpcs", "tls", "tls_passthrough"} {
		if hasProtocol(d["protocols"], p) {
			return ""
		}
	}
	return "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"
}

// routeProtocolRules is routes_subschemas.lua: which matching fields each
// protocol family requires and forbids.
func routeProtocolRules(d map[string]any, errs map[string]any) []any {
	if hasErr(errs, "protocols") {
		return nil
	}
	protos := d["protocols"]
	forbid := func(fields []string, when string) {
		for _, f := range fields {
			if nonEmpty(d[f]) && !hasErr(errs, f) {
				errs[f] = fmt.Sprintf("cannot set '%s' when 'protocols' is %s", f, when)
			}
		}
	}
	need := func(fields []string, proto string) []any {
		for _, f := range fields {
			if nonEmpty(d[f]) {
				return nil
			}
		}
		return []any{fmt.Sprintf("must set one of %s when 'protocols' is '%s'", quotedList(fields), proto)}
	}
	switch {
	case hasProtocol(protos, "http") || hasProtocol(protos, "https"):
		forbid([]string{"sources", "destinations"}, "'http' or 'https'")
		if hasProtocol(protos, "https") {
			return need([]string{"methods", "hosts", "headers", "paths", "snis"}, "https")
		}
		return need([]string{"methods", "hosts", "headers", "paths"}, "http")
	case hasProtocol(protos, "grpc") || hasProtocol(protos, "grpcs"):
		forbid([]string{"methods", "sources", "destinations"}, "'grpc' or 'grpcs'")
		if d["strip_path"] == true && !hasErr(errs, "strip_path") {
			errs["strip_path"] = "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'"
		}
		if hasProtocol(protos, "grpcs") {
			return need([]string{"hosts", "headers", "paths", "snis"}, "grpcs")
		}
		return need([]string{"hosts", "headers", "paths"}, "grpc")
	case hasProtocol(protos, "tls_passthrough"):
		forbid([]string{"methods", "hosts", "paths", "headers", "sources", "destinations"}, "'tls_passthrough'")
		if !nonEmpty(d["snis"]) && !hasErr(errs, "snis") {
			errs["snis"] = "required field missing"
		}
	case hasProtocol(protos, "tcp") || hasProtocol(protos, "tls") || hasProtocol(protos, "udp"):
		forbid([]string{"methods", "hosts", "paths", "headers"}, "'tcp', 'tls', 'tls_passthrough' or 'udp'")
		for _, f := range []string{"sources", "destinations", "snis"} {
			if nonEmpty(d[f]) {
				return nil
			}
		}
		return []any{"at least one of these fields must be non-empty: 'sources', 'destinations', 'snis'"}
	}
	return nil
}

func registerConsumers() {
	register(&Entity{
		Name: "consumers", AdminPath: "consumers", EndpointKey: "username",
		Fields: []*Field{
			idField(), createdAt(), updatedAt(),
			{Name: "username", Type: TypeString, Unique: true},
			{Name: "custom_id", Type: TypeString, Unique: true},
			tagsField(),
		},
		Checks: []Check{{Kind: "at_least_one_of", Fields: []string{"custom_id", "username"}}},
	})
	register(&Entity{
		Name: "consumer_groups", AdminPath: "consumer_groups", EndpointKey: "name",
		Fields: []*Field{
			idField(), createdAt(), updatedAt(),
			nameField(true),
			tagsField(),
		},
	})
}

var hashOn = anys("none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture")

func statuses(name string, def ...int64) *Field {
	return &Field{Name: name, Type: TypeArray, Default: anys(def...),
		Elements: &Field{Type: TypeInteger, Between: rng(100, 999)}}
}

func counter(name string) *Field { return integer(name, 0, 0, 255) }

func registerUpstreams() {
	passiveHealthy := []int64{200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308}
	hc := record("healthchecks",
		record("active",
			&Field{Name: "type", Type: TypeString, Default: "http", OneOf: anys("tcp", "http", "https", "grpc", "grpcs")},
			&Field{Name: "timeout", Type: TypeNumber, Default: float64(1), Between: rng(0, 65535)},
			integer("concurrency", 10, 1, 2147483648),
			&Field{Name: "http_path", Type: TypeString, Default: "/", StartsWith: "/", Check: checkServicePath},
			&Field{Name: "https_sni", Type: TypeString, Check: checkHost},
			&Field{Name: "https_verify_certificate", Type: TypeBoolean, Default: true},
			&Field{Name: "headers", Type: TypeMap, Keys: &Field{Type: TypeString},
				Values: &Field{Type: TypeArray, Elements: &Field{Type: TypeString}}},
			record("healthy",
				&Field{Name: "interval", Type: TypeNumber, Default: float64(0), Between: rng(0, 65535)},
				statuses("http_statuses", 200, 302),
				counter("successes")),
			record("unhealthy",
				&Field{Name: "interval", Type: TypeNumber, Default: float64(0), Between: rng(0, 65535)},
				statuses("http_statuses", 429, 404, 500, 501, 502, 503, 504, 505),
				counter("tcp_failures"), counter("timeouts"), counter("http_failures")),
		),
		record("passive",
			&Field{Name: "type", Type: TypeString, Default: "http", OneOf: anys("tcp", "http", "https", "grpc", "grpcs")},
			record("healthy", statuses("http_statuses", passiveHealthy...), counter("successes")),
			record("unhealthy",
				statuses("http_statuses", 429, 500, 503),
				counter("tcp_failures"), counter("timeouts"), counter("http_failures")),
		),
		&Field{Name: "threshold", Type: TypeNumber, Default: float64(0), Between: rng(0, 100)},
	)
	hc.Required = false
	hc.Default = recordDefaults(hc.Fields)
	header := &Field{Type: TypeString, Check: checkHeaderName}
	withName := func(f *Field, name string) *Field { c := *f; c.Name = name; return &c }
	req := &Match{Required: true}
	register(&Entity{
		Name: "upstreams", AdminPath: "upstreams", EndpointKey: "name",
		Fields: []*Field{
			idField(), createdAt(), updatedAt(),
			{Name: "name", Type: TypeString, Required: true, Unique: true, Check: checkUpstreamName},
			{Name: "algorithm", Type: TypeString, Default: "round-robin", OneOf: anys("consistent-hashing", "least-connections", "round-robin", "latency")},
			{Name: "hash_on", Type: TypeString, Default: "none", OneOf: hashOn},
			{Name: "hash_fallback", Type: TypeString, Default: "none", OneOf: hashOn},
			withName(header, "hash_on_header"),
			withName(header, "hash_fallback_header"),
			str("hash_on_cookie"),
			{Name: "hash_on_cookie_path", Type: TypeString, Default: "/", StartsWith: "/", Check: checkServicePath},
			{Name: "hash_on_query_arg", Type: TypeString, LenMin: 1},
			{Name: "hash_fallback_query_arg", Type: TypeString, LenMin: 1},
			{Name: "hash_on_uri_capture", Type: TypeString, LenMin: 1},
			{Name: "hash_fallback_uri_capture", Type: TypeString, LenMin: 1},
			integer("slots", 10000, 10, 65536),
			hc,
			tagsField(),
			{Name: "host_header", Type: TypeString, Check: checkHostWithOptionalPort},
			foreign("client_certificate", "certificates", false, ""),
			{Name: "use_srv_name", Type: TypeBoolean, Default: false},
		},
		Checks: []Check{
			ifEq("hash_on", anys("header"), "hash_on_header", req),
			ifEq("hash_fallback", anys("header"), "hash_fallback_header", req),
			ifEq("hash_on", anys("cookie"), "hash_on_cookie", req),
			ifEq("hash_fallback", anys("cookie"), "hash_on_cookie", req),
			ifEq("hash_on", anys("none"), "hash_fallback", &Match{OneOf: anys("none")}),
			ifEq("hash_on", anys("cookie"), "hash_fallback", &Match{OneOf: anys("none")}),
			// hash_fallback must differ from hash_on (headers, query args and captures may repeat).
			ifEq("hash_on", anys("consumer"), "hash_fallback", &Match{OneOf: anys("none", "ip", "header", "cookie", "path", "query_arg", "uri_capture")}),
			ifEq("hash_on", anys("ip"), "hash_fallback", &Match{OneOf: anys("none", "consumer", "header", "cookie", "path", "query_arg", "uri_capture")}),
			ifEq("hash_on", anys("query_arg"), "hash_on_query_arg", req),
			ifEq("hash_fallback", anys("query_arg"), "hash_fallback_query_arg", req),
			ifEq("hash_on", anys("uri_capture"), "hash_on_uri_capture", req),
			ifEq("hash_fallback", anys("uri_capture"), "hash_fallback_uri_capture", req),
			{Kind: "distinct", Fields: []string{"hash_on_header", "hash_fallback_header"}},
			{Kind: "distinct", Fields: []string{"hash_on_query_arg", "hash_fallback_query_arg"}},
			{Kind: "distinct", Fields: []string{"hash_on_uri_capture", "hash_fallback_uri_capture"}},
		},
		shorthand: func(op Op, in map[string]any, _ map[string]any) {
			// A hashing hash_on without an algorithm implies consistent
			// hashing, as Kong's upstream DAO does.
			if _, ok := in["algorithm"]; ok || op == OpUpdate {
				return
			}
			if h, ok := in["hash_on"].(string); ok && h != "none" {
				in["algorithm"] = "consistent-hashing"
			}
		},
	})
	register(&Entity{
		Name: "targets", AdminPath: "targets", EndpointKey: "target",
		Fields: []*Field{
			idField(),
			{Name: "created_at", Type: TypeNumber, Timestamp: true, Auto: true},
			{Name: "updated_at", Type: TypeNumber, Timestamp: true, Auto: true},
			foreign("upstream", "upstreams", true, "cascade"),
			{Name: "target", Type: TypeString, Required: true, Check: checkTarget},
			integer("weight", 100, 0, 65535),
			tagsField(),
		},
		Unique:       [][]string{{"upstream", "target"}},
		msTimestamps: true,
		shorthand: func(_ Op, in map[string]any, _ map[string]any) {
			// The default port is added to valid targets only: an invalid one is reported as
			// the client wrote it (Kong's format_target).
			if s, ok := in["target"].(string); ok && checkTarget(s) == "" {
				in["target"] = NormalizeTarget(s)
			}
		},
	})
}

// NormalizeTarget appends Kong's default target port 8000 when none is
// given ("a.test" → "a.test:8000", "[::1]" → "[::1]:8000").
func NormalizeTarget(s string) string {
	h, port := splitHostPort(s)
	if port != -1 || s == "" {
		return s
	}
	if strings.Contains(h, ":") {
		return "[" + h + "]:8000"
	}
	return h + ":8000"
}

var (
	// vaultPrefixRe is Kong's Lua pattern ^[a-z][a-z%d-]-[a-z%d]+$ (kong/db/schema/entities/
	// vaults.lua), where the '-' after the class is Lua's lazy repetition, not a literal hyphen:
	// a lowercase letter, then lowercase letters, digits and hyphens, ending with a letter or a
	// digit, two characters at least ("my-env-vault").
	vaultPrefixRe    = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)
	envVaultPrefixRe = regexp.MustCompile(`^[A-Za-z_-][A-Za-z0-9_-]*$`)
)

// checkVaultPrefix checks a vault prefix in Kong's order: not_one_of (the vault type names)
// comes before match among Kong's field validators (kong/db/schema/init.lua), so "env" is
// refused as a type name rather than as a bad pattern.
func checkVaultPrefix(v any) string {
	s, _ := v.(string)
	if slices.Contains(VaultTypes, s) {
		return "must not be one of: " + strings.Join(VaultTypes, ", ")
	}
	if !vaultPrefixRe.MatchString(s) {
		return "invalid value: " + s
	}
	return ""
}

// VaultTypes are the vault implementations this build ships.
var VaultTypes = []string{"env"}

func registerVaults() {
	envConfig := record("config",
		// Kong 3.9's env vault has only prefix (kong/vaults/env/schema.lua); base64_decode came
		// with 3.11, after the version this server reports (KongVersion), and decK, which does not
		// fill vault defaults, would see its default as drift on every diff.
		&Field{Name: "prefix", Type: TypeString, Match: envVaultPrefixRe},
	)
	envConfig.Required = false
	register(&Entity{
		Name: "vaults", AdminPath: "vaults", EndpointKey: "prefix",
		Fields: []*Field{
			idField(),
			{Name: "prefix", Type: TypeString, Required: true, Unique: true, Check: checkVaultPrefix},
			{Name: "name", Type: TypeString, Required: true, Check: func(v any) string {
				for _, t := range VaultTypes {
					if v == t {
						return ""
					}
				}
				return fmt.Sprintf("vault '%v' is not installed", v)
			}},
			str("description"),
			envConfig,
			createdAt(), updatedAt(), tagsField(),
		},
	})
}

func registerKeys() {
	register(&Entity{
		Name: "key_sets", AdminPath: "key-sets", EndpointKey: "name",
		Fields: []*Field{
			idField(),
			{Name: "name", Type: TypeString, Unique: true, Check: checkName},
			tagsField(), createdAt(), updatedAt(),
		},
	})
	pem := record("pem",
		&Field{Name: "private_key", Type: TypeString, Referenceable: true, Encrypted: true},
		&Field{Name: "public_key", Type: TypeString, Referenceable: true},
	)
	pem.Required = false
	pem.NullDefault = true
	register(&Entity{
		Name: "keys", AdminPath: "keys", EndpointKey: "name",
		Fields: []*Field{
			idField(),
			foreign("set", "key_sets", false, "cascade"),
			{Name: "name", Type: TypeString, Unique: true, Check: checkName},
			{Name: "kid", Type: TypeString, Required: true},
			{Name: "jwk", Type: TypeString, Referenceable: true, Encrypted: true},
			pem,
			tagsField(), createdAt(), updatedAt(),
		},
		Unique: [][]string{{"kid", "set"}},
		Checks: []Check{
			{Kind: "exactly_one_of", Fields: []string{"jwk", "pem"}},
			{Kind: "custom_entity_check", Fields: []string{"jwk", "kid"}, Fn: checkJWK},
			{Kind: "custom_entity_check", Fields: []string{"pem.private_key", "pem.public_key"}, Fn: checkPEMPair},
		},
	})
}

func checkJWK(d map[string]any) string {
	s, ok := d["jwk"].(string)
	if !ok {
		return ""
	}
	var jwk map[string]any
	if err := json.Unmarshal([]byte(s), &jwk); err != nil {
		return "could not json decode jwk string"
	}
	if jwk["kid"] != d["kid"] {
		return "kid in jwk.kid must be equal to keys.kid"
	}
	return ""
}

func checkPEMPair(d map[string]any) string {
	p, ok := d["pem"].(map[string]any)
	if !ok {
		return ""
	}
	priv, _ := p["private_key"].(string)
	pub, _ := p["public_key"].(string)
	if priv == "" && pub == "" {
		return "at least one of these fields must be non-empty: 'pem.private_key', 'pem.public_key'"
	}
	var privKey, pubKey any
	if priv != "" {
		k, msg := parsePrivateKey(priv)
		if msg != "" {
			return "could not load private key"
		}
		privKey = k
	}
	if pub != "" {
		k, msg := parsePublicKey(pub)
		if msg != "" {
			return "could not load public key"
		}
		pubKey = k
	}
	if privKey != nil && pubKey != nil && !publicMatches(privKey, pubKey) {
		return "public key does not match private key"
	}
	return ""
}

func publicMatches(priv, pub any) bool {
	type publicKeyer interface{ Public() any }
	var derived any
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		derived = &k.PublicKey
	case *ecdsa.PrivateKey:
		derived = &k.PublicKey
	case ed25519.PrivateKey:
		derived = k.Public()
	default:
		if p, ok := priv.(publicKeyer); ok {
			derived = p.Public()
		}
	}
	eq, ok := derived.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(pub)
}

var jwtAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

func credential(name, adminPath, nested, endpointKey string, fields ...*Field) *Entity {
	all := []*Field{idField(), createdAt(), foreign("consumer", "consumers", true, "cascade")}
	all = append(all, fields...)
	all = append(all, tagsField())
	return &Entity{Name: name, AdminPath: adminPath, NestedPath: nested, EndpointKey: endpointKey, Fields: all}
}

func registerCredentials() {
	ka := credential("keyauth_credentials", "key-auths", "key-auth", "key",
		&Field{Name: "key", Type: TypeString, Unique: true, Auto: true})
	ka.TTL = true
	ka.auto = autoStrings("key")
	register(ka)

	ba := credential("basicauth_credentials", "basic-auths", "basic-auth", "username",
		&Field{Name: "username", Type: TypeString, Required: true, Unique: true},
		&Field{Name: "password", Type: TypeString, Required: true, Encrypted: true})
	register(ba)

	jw := credential("jwt_secrets", "jwts", "jwt", "key",
		&Field{Name: "key", Type: TypeString, Unique: true, Auto: true},
		&Field{Name: "secret", Type: TypeString, Auto: true},
		&Field{Name: "rsa_public_key", Type: TypeString},
		&Field{Name: "algorithm", Type: TypeString, Default: "HS256", OneOf: anys(jwtAlgorithms...)})
	jw.auto = autoStrings("key", "secret")
	// Kong's jwt_secrets: an asymmetric algorithm requires rsa_public_key, and the key must parse
	// (then_match custom_validator, "invalid key" on the field).
	for _, alg := range jwtAlgorithms[3:] {
		jw.Checks = append(jw.Checks, ifEq("algorithm", anys(alg), "rsa_public_key", &Match{Required: true, Validator: checkPublicKey}))
	}
	register(jw)

	hm := credential("hmacauth_credentials", "hmac-auths", "hmac-auth", "username",
		&Field{Name: "username", Type: TypeString, Required: true, Unique: true},
		&Field{Name: "secret", Type: TypeString, Auto: true})
	hm.auto = autoStrings("secret")
	register(hm)

	acl := credential("acls", "acls", "acls", "",
		&Field{Name: "group", Type: TypeString, Required: true})
	acl.Unique = [][]string{{"consumer", "group"}}
	register(acl)
}
