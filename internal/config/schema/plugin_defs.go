package schema

import (
	"fmt"
	"regexp"
)

// Field helpers for plugin configs. Kong marks most plugin booleans
// required with a default, so absent and null both end up as the default on
// create and null is refused.

func optStr(name string) *Field { return &Field{Name: name, Type: TypeString} }

func num(name string, def float64) *Field {
	return &Field{Name: name, Type: TypeNumber, Default: def}
}

func strList(name string, def ...string) *Field {
	f := &Field{Name: name, Type: TypeArray, Elements: &Field{Type: TypeString}}
	if def != nil {
		f.Default = anys(def...)
	}
	return f
}

func emptyList(name string) *Field {
	return &Field{Name: name, Type: TypeArray, Required: true, Default: []any{}, Elements: &Field{Type: TypeString}}
}

func headerList(name string, def ...string) *Field {
	f := &Field{Name: name, Type: TypeArray, Required: true, Elements: &Field{Type: TypeString, Check: checkHeaderName}}
	f.Default = anys(def...)
	return f
}

func sub(name string, fields ...*Field) *Field {
	f := record(name, fields...)
	return f
}

var periods = []string{"second", "minute", "hour", "day", "month", "year"}

// filePathRe is file-log's path pattern (no leading/trailing whitespace,
// none of *&%\`).
var filePathRe = regexp.MustCompile("^[^\\s*&%\\\\`][^*&%\\\\`]*[^\\s*&%\\\\`]$")

func queueRecord() *Field {
	return record("queue",
		&Field{Name: "max_batch_size", Type: TypeInteger, Default: int64(1), Between: rng(1, 1000000)},
		&Field{Name: "max_coalescing_delay", Type: TypeNumber, Default: float64(1), Between: rng(0, 3600)},
		&Field{Name: "max_entries", Type: TypeInteger, Default: int64(10000), Between: rng(1, 1000000)},
		&Field{Name: "max_bytes", Type: TypeInteger},
		&Field{Name: "max_retry_time", Type: TypeNumber, Default: float64(60)},
		&Field{Name: "initial_retry_delay", Type: TypeNumber, Default: 0.01, Between: rng(0.001, 1000000)},
		&Field{Name: "max_retry_delay", Type: TypeNumber, Default: float64(60), Between: rng(0.001, 1000000)},
		&Field{Name: "concurrency_limit", Type: TypeInteger, Default: int64(1), OneOf: anys[int64](-1, 1)},
	)
}

func redisRecord() *Field {
	return record("redis",
		&Field{Name: "host", Type: TypeString, Check: checkHost},
		&Field{Name: "port", Type: TypeInteger, Default: int64(6379), Between: rng(0, 65535)},
		&Field{Name: "timeout", Type: TypeInteger, Default: int64(2000), Between: rng(0, 2147483646)},
		&Field{Name: "username", Type: TypeString, Referenceable: true},
		&Field{Name: "password", Type: TypeString, Referenceable: true, Encrypted: true},
		&Field{Name: "database", Type: TypeInteger, Default: int64(0)},
		boolean("ssl", false),
		boolean("ssl_verify", false),
		&Field{Name: "server_name", Type: TypeString, Check: checkWildcardHost},
	)
}

func cond(ifField string, ifVal any, thenField string, then *Match) Check {
	return Check{Kind: "conditional", IfField: ifField, IfMatch: &Match{OneOf: []any{ifVal}}, ThenField: thenField, ThenMatch: then}
}

// bundledPlugins returns the plugin descriptions, fields in Kong 3.9's order.
func bundledPlugins() []*Plugin {
	required := &Match{Required: true}
	return []*Plugin{
		{
			Name: "key-auth", Priority: 1250, NoConsumer: true, Protocols: httpProtocols(),
			Config: []*Field{
				headerList("key_names", "apikey"),
				boolean("hide_credentials", false),
				optStr("anonymous"),
				boolean("key_in_header", true),
				boolean("key_in_query", true),
				boolean("key_in_body", false),
				boolean("run_on_preflight", true),
				optStr("realm"),
			},
		},
		{
			Name: "basic-auth", Priority: 1100, NoConsumer: true, Protocols: httpProtocols(),
			Config: []*Field{
				optStr("anonymous"),
				boolean("hide_credentials", false),
				{Name: "realm", Type: TypeString, Required: true, Default: "service"},
			},
		},
		{
			Name: "jwt", Priority: 1450, NoConsumer: true, Protocols: httpProtocols(),
			Config: []*Field{
				{Name: "uri_param_names", Type: TypeSet, Default: anys("jwt"), Elements: &Field{Type: TypeString}},
				{Name: "cookie_names", Type: TypeSet, Default: []any{}, Elements: &Field{Type: TypeString}},
				{Name: "key_claim_name", Type: TypeString, Default: "iss"},
				boolean("secret_is_base64", false),
				{Name: "claims_to_verify", Type: TypeSet, Elements: &Field{Type: TypeString, OneOf: anys("exp", "nbf")}},
				optStr("anonymous"),
				boolean("run_on_preflight", true),
				{Name: "maximum_expiration", Type: TypeNumber, Default: float64(0), Between: rng(0, 31536000)},
				{Name: "header_names", Type: TypeSet, Default: anys("authorization"), Elements: &Field{Type: TypeString}},
				optStr("realm"),
			},
			Checks: []Check{{Kind: "conditional", IfField: "config.maximum_expiration", IfMatch: &Match{Gt: 0, GtSet: true},
				ThenField: "config.claims_to_verify", ThenMatch: &Match{Contains: "exp"}}},
		},
		{
			Name: "hmac-auth", Priority: 1030, NoConsumer: true, Protocols: httpProtocols(),
			Config: []*Field{
				boolean("hide_credentials", false),
				{Name: "clock_skew", Type: TypeNumber, Default: float64(300), Gt: gt(0)},
				optStr("anonymous"),
				boolean("validate_request_body", false),
				{Name: "enforce_headers", Type: TypeArray, Default: []any{}, Elements: &Field{Type: TypeString}},
				{Name: "algorithms", Type: TypeArray, Default: anys("hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"),
					Elements: &Field{Type: TypeString, OneOf: anys("hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512")}},
				optStr("realm"),
			},
		},
		{
			Name: "acl", Priority: 950, NoConsumer: true, Protocols: httpProtocols(),
			Config: []*Field{
				strList("allow"),
				strList("deny"),
				boolean("hide_groups_header", false),
				boolean("always_use_authenticated_groups", false),
			},
			Checks: []Check{
				{Kind: "only_one_of", Fields: []string{"config.allow", "config.deny"}},
				{Kind: "at_least_one_of", Fields: []string{"config.allow", "config.deny"}},
			},
		},
		rateLimiting(required),
		{
			Name: "cors", Priority: 2000, NoConsumer: true, Protocols: httpProtocols(),
			Config: []*Field{
				strList("origins"),
				strList("headers"),
				strList("exposed_headers"),
				{Name: "methods", Type: TypeArray, Default: anys("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"),
					Elements: &Field{Type: TypeString, OneOf: anys("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT")}},
				{Name: "max_age", Type: TypeNumber},
				boolean("credentials", false),
				boolean("private_network", false),
				boolean("preflight_continue", false),
				boolean("allow_origin_absent", true),
			},
		},
		{
			Name: "ip-restriction", Priority: 990,
			Protocols: allProtocols("grpc", "grpcs", "http", "https", "tcp", "tls"),
			Config: []*Field{
				{Name: "allow", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkIPOrCIDR}},
				{Name: "deny", Type: TypeArray, Elements: &Field{Type: TypeString, Check: checkIPOrCIDR}},
				{Name: "status", Type: TypeNumber},
				optStr("message"),
			},
			Checks: []Check{{Kind: "at_least_one_of", Fields: []string{"config.allow", "config.deny"}}},
		},
		{
			Name: "request-size-limiting", Priority: 951, Protocols: httpProtocols(),
			Config: []*Field{
				{Name: "allowed_payload_size", Type: TypeInteger, Required: true, Default: int64(128)},
				{Name: "size_unit", Type: TypeString, Required: true, Default: "megabytes", OneOf: anys("megabytes", "kilobytes", "bytes")},
				boolean("require_content_length", false),
			},
		},
		{
			Name: "request-termination", Priority: 2, Protocols: httpProtocols(),
			Config: []*Field{
				{Name: "status_code", Type: TypeInteger, Required: true, Default: int64(503), Between: rng(100, 599)},
				optStr("message"),
				optStr("content_type"),
				optStr("body"),
				boolean("echo", false),
				{Name: "trigger", Type: TypeString, Check: checkHeaderName},
			},
			ConfigCheck: func(c map[string]any) string {
				if c["message"] != nil && (c["content_type"] != nil || c["body"] != nil) {
					return "message cannot be used with content_type or body"
				}
				if c["echo"] == true && (c["content_type"] != nil || c["body"] != nil) {
					return "echo cannot be used with content_type and body"
				}
				return ""
			},
		},
		{
			Name: "request-transformer", Priority: 801, Protocols: httpProtocols(),
			Config: []*Field{
				{Name: "http_method", Type: TypeString, Check: checkMethod},
				sub("remove", emptyList("body"), emptyList("headers"), emptyList("querystring")),
				sub("rename", emptyList("body"), emptyList("headers"), emptyList("querystring")),
				sub("replace", emptyList("body"), emptyList("headers"), emptyList("querystring"), optStr("uri")),
				sub("add", emptyList("body"), emptyList("headers"), emptyList("querystring")),
				sub("append", emptyList("body"), emptyList("headers"), emptyList("querystring")),
			},
		},
		{
			Name: "response-transformer", Priority: 800, Protocols: httpProtocols(),
			Config: []*Field{
				sub("remove", emptyList("json"), emptyList("headers")),
				sub("rename", emptyList("headers"), emptyList("json")),
				sub("replace", emptyList("json"), jsonTypes(), emptyList("headers")),
				sub("add", emptyList("json"), jsonTypes(), emptyList("headers")),
				sub("append", emptyList("json"), jsonTypes(), emptyList("headers")),
			},
		},
		{
			Name: "correlation-id", Priority: 100001, Protocols: httpProtocols(),
			Config: []*Field{
				{Name: "header_name", Type: TypeString, Default: "Kong-Request-ID"},
				{Name: "generator", Type: TypeString, Required: true, Default: "uuid#counter", OneOf: anys("uuid", "uuid#counter", "tracker")},
				boolean("echo_downstream", false),
			},
		},
		{
			Name: "proxy-cache", Priority: 100, Protocols: httpProtocols(),
			Config: []*Field{
				{Name: "response_code", Type: TypeArray, Required: true, LenMin: 1, Default: anys[int64](200, 301, 404),
					Elements: &Field{Type: TypeInteger, Between: rng(100, 900)}},
				{Name: "request_method", Type: TypeArray, Required: true, Default: anys("GET", "HEAD"),
					Elements: &Field{Type: TypeString, OneOf: anys("HEAD", "GET", "POST", "PATCH", "PUT")}},
				{Name: "content_type", Type: TypeArray, Required: true, Default: anys("text/plain", "application/json"),
					Elements: &Field{Type: TypeString}},
				{Name: "cache_ttl", Type: TypeInteger, Default: int64(300), Gt: gt(0)},
				{Name: "strategy", Type: TypeString, Required: true, OneOf: anys("memory")},
				boolean("cache_control", false),
				{Name: "ignore_uri_case", Type: TypeBoolean, Default: false},
				{Name: "storage_ttl", Type: TypeInteger},
				sub("memory", &Field{Name: "dictionary_name", Type: TypeString, Required: true, Default: "kong_db_cache"}),
				strList("vary_query_params"),
				strList("vary_headers"),
				sub("response_headers",
					boolean("age", true), boolean("X-Cache-Status", true), boolean("X-Cache-Key", true)),
			},
		},
		{
			Name: "bot-detection", Priority: 2500, NoConsumer: true, Protocols: httpProtocols(),
			Config: []*Field{
				{Name: "allow", Type: TypeArray, Default: []any{}, Elements: &Field{Type: TypeString}},
				{Name: "deny", Type: TypeArray, Default: []any{}, Elements: &Field{Type: TypeString}},
			},
		},
		{
			Name: "http-log", Priority: 12,
			Config: []*Field{
				{Name: "http_endpoint", Type: TypeString, Required: true, Referenceable: true, Encrypted: true, Check: checkURL},
				{Name: "method", Type: TypeString, Default: "POST", OneOf: anys("POST", "PUT", "PATCH")},
				{Name: "content_type", Type: TypeString, Default: "application/json", OneOf: anys("application/json", "application/json; charset=utf-8")},
				num("timeout", 10000),
				num("keepalive", 60000),
				{Name: "headers", Type: TypeMap, Keys: &Field{Type: TypeString, Check: checkLogHeaderName},
					Values: &Field{Type: TypeString, Referenceable: true}},
				queueRecord(),
				{Name: "custom_fields_by_lua", Type: TypeMap, Keys: &Field{Type: TypeString, LenMin: 1}, Values: &Field{Type: TypeString, LenMin: 1}},
			},
		},
		{
			Name: "file-log", Priority: 9,
			Config: []*Field{
				{Name: "path", Type: TypeString, Required: true, Match: filePathRe,
					MatchErr: "not a valid filename"},
				boolean("reopen", false),
				{Name: "custom_fields_by_lua", Type: TypeMap, Keys: &Field{Type: TypeString, LenMin: 1}, Values: &Field{Type: TypeString, LenMin: 1}},
			},
		},
		{
			Name: "prometheus", Priority: 13, NoConsumer: true,
			Config: []*Field{
				{Name: "per_consumer", Type: TypeBoolean, Default: false},
				{Name: "status_code_metrics", Type: TypeBoolean, Default: false},
				{Name: "ai_metrics", Type: TypeBoolean, Default: false},
				{Name: "latency_metrics", Type: TypeBoolean, Default: false},
				{Name: "bandwidth_metrics", Type: TypeBoolean, Default: false},
				{Name: "upstream_health_metrics", Type: TypeBoolean, Default: false},
				{Name: "wasm_metrics", Type: TypeBoolean, Default: false},
			},
		},
	}
}

func jsonTypes() *Field {
	return &Field{Name: "json_types", Type: TypeArray, Required: true, Default: []any{},
		Elements: &Field{Type: TypeString, OneOf: anys("boolean", "number", "string")}}
}

// checkLogHeaderName refuses the headers http-log sets itself.
func checkLogHeaderName(v any) string {
	if m := checkHeaderName(v); m != "" {
		return m
	}
	switch low := lower(v.(string)); low {
	case "host", "content-length", "content-type":
		return fmt.Sprintf("cannot contain '%s' header", low)
	}
	return ""
}

func rateLimiting(required *Match) *Plugin {
	cfg := make([]*Field, 0, 16)
	for _, p := range periods {
		cfg = append(cfg, &Field{Name: p, Type: TypeNumber, Gt: gt(0)})
	}
	cfg = append(cfg,
		&Field{Name: "limit_by", Type: TypeString, Default: "consumer", OneOf: anys("consumer", "credential", "ip", "service", "header", "path", "consumer-group")},
		&Field{Name: "header_name", Type: TypeString, Check: checkHeaderName},
		&Field{Name: "path", Type: TypeString, StartsWith: "/", Check: checkServicePath},
		&Field{Name: "policy", Type: TypeString, Default: "local", OneOf: anys("local", "cluster", "redis")},
		boolean("fault_tolerant", true),
		redisRecord(),
		boolean("hide_client_headers", false),
		&Field{Name: "error_code", Type: TypeNumber, Default: float64(429), Gt: gt(0)},
		&Field{Name: "error_message", Type: TypeString, Default: "API rate limit exceeded"},
		&Field{Name: "sync_rate", Type: TypeNumber, Default: float64(-1)},
	)
	pfx := make([]string, len(periods))
	for i, p := range periods {
		pfx[i] = "config." + p
	}
	return &Plugin{
		Name: "rate-limiting", Priority: 910, Protocols: httpProtocols(), Config: cfg,
		ConfigCheck: func(c map[string]any) string {
			for i, lo := range periods {
				v1, ok := toFloat(c[lo])
				if !ok {
					continue
				}
				for _, hi := range periods[i+1:] {
					if v2, ok := toFloat(c[hi]); ok && v2 < v1 {
						return fmt.Sprintf("The limit for %s(%.1f) cannot be lower than the limit for %s(%.1f)", hi, v2, lo, v1)
					}
				}
			}
			return ""
		},
		Checks: []Check{
			{Kind: "at_least_one_of", Fields: pfx},
			cond("config.policy", "redis", "config.redis.host", required),
			cond("config.policy", "redis", "config.redis.port", required),
			cond("config.limit_by", "header", "config.header_name", required),
			cond("config.limit_by", "path", "config.path", required),
			cond("config.policy", "redis", "config.redis.timeout", required),
			// The control plane has no shared counter table to offer data
			// planes, so the cluster policy is refused as Kong does without
			// a database.
			cond("config.policy", "cluster", "config.policy", &Match{OneOf: anys("local", "redis")}),
		},
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
