package schema

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestProcessErrors(t *testing.T) {
	fk := map[string]any{"id": uuid1}
	tests := []struct {
		name   string
		entity string
		op     Op
		in     map[string]any
		want   string
	}{
		{"service url shorthand", "services", OpCreate, map[string]any{"url": "invalid url"},
			"2 schema violations (host: required field missing; path: should start with: /)"},
		{"service protocol", "services", OpCreate, map[string]any{"host": "a.test", "protocol": "ftp"},
			"schema violation (protocol: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp)"},
		{"service port range", "services", OpCreate, map[string]any{"host": "a.test", "port": 70000},
			"schema violation (port: value should be between 0 and 65535)"},
		{"service port type", "services", OpCreate, map[string]any{"host": "a.test", "port": 1.5},
			"schema violation (port: expected an integer)"},
		{"service unknown field", "services", OpCreate, map[string]any{"host": "a.test", "foo": 1},
			"schema violation (foo: unknown field)"},
		{"service bad id", "services", OpCreate, map[string]any{"host": "a.test", "id": "nope"},
			"schema violation (id: expected a valid UUID)"},
		{"service path on tcp", "services", OpCreate, map[string]any{"host": "a.test", "protocol": "tcp", "path": "/x"},
			"2 schema violations (failed conditional validation given value of field 'protocol'; path: value must be null)"},
		{"service host with port", "services", OpCreate, map[string]any{"host": "a.test:80"},
			"schema violation (host: must not have a port)"},
		{"service name chars", "services", OpCreate, map[string]any{"host": "a.test", "name": "a b"},
			"schema violation (name: invalid value 'a b': the only accepted ascii characters are alphanumerics or ., -, _, and ~)"},
		{"service timeout", "services", OpCreate, map[string]any{"host": "a.test", "read_timeout": 0},
			"schema violation (read_timeout: value should be between 1 and 2147483646)"},
		{"route needs matcher", "routes", OpCreate, map[string]any{},
			"schema violation (must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https')"},
		{"route http only", "routes", OpCreate, map[string]any{"protocols": []any{"http"}},
			"schema violation (must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http')"},
		{"route path prefix", "routes", OpCreate, map[string]any{"paths": []any{"foo"}},
			"schema violation (paths.1: should start with: / (fixed path) or ~/ (regex path))"},
		{"route bad regex", "routes", OpCreate, map[string]any{"paths": []any{"/ok", "~/(a"}},
			"schema violation (paths.2: invalid regex: '/(a' (PCRE returned: missing closing ): `/(a`))"},
		{"route non-normalized", "routes", OpCreate, map[string]any{"paths": []any{"/a/../b"}},
			"schema violation (paths.1: non-normalized path, consider use '/b' instead)"},
		{"route tcp with paths", "routes", OpCreate, map[string]any{"protocols": []any{"tcp"}, "paths": []any{"/"}, "destinations": []any{map[string]any{"port": 80}}},
			"schema violation (paths: cannot set 'paths' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp')"},
		{"route mixed protocols", "routes", OpCreate, map[string]any{"protocols": []any{"http", "tcp"}, "paths": []any{"/"}},
			// Kong lists only the sets the value draws from (spec/01-unit/01-db/01-schema/06-routes_spec.lua).
			"schema violation (protocols: these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp'))"},
		{"route source without ip or port", "routes", OpCreate, map[string]any{"protocols": []any{"tcp"}, "sources": []any{map[string]any{}}},
			"schema violation (sources.1: {\n  [\"@entity\"] = {\n    \"at least one of these fields must be non-empty: 'ip', 'port'\"\n  }\n})"},
		{"route redirect code", "routes", OpCreate, map[string]any{"paths": []any{"/"}, "https_redirect_status_code": 303},
			"schema violation (https_redirect_status_code: expected one of: 426, 301, 302, 307, 308)"},
		{"route host header", "routes", OpCreate, map[string]any{"headers": map[string]any{"Host": []any{"x"}}},
			"schema violation (headers: cannot contain 'host' header, which must be specified in the 'hosts' attribute)"},
		{"route grpc strip_path", "routes", OpCreate, map[string]any{"protocols": []any{"grpc"}, "paths": []any{"/"}, "strip_path": true},
			"schema violation (strip_path: cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs')"},
		{"route bad service fk", "routes", OpCreate, map[string]any{"paths": []any{"/"}, "service": map[string]any{"id": "x"}},
			"schema violation (service.id: expected a valid UUID)"},
		{"route bad tag", "routes", OpCreate, map[string]any{"paths": []any{"/"}, "tags": []any{"a,b"}},
			"schema violation (tags.1: invalid tag 'a,b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences)"},
		{"consumer needs id", "consumers", OpCreate, map[string]any{"tags": []any{"x"}},
			"schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')"},
		{"consumer group name", "consumer_groups", OpCreate, map[string]any{},
			"schema violation (name: required field missing)"},
		{"upstream hash header", "upstreams", OpCreate, map[string]any{"name": "u.test", "hash_on": "header"},
			"2 schema violations (failed conditional validation given value of field 'hash_on'; hash_on_header: required field missing)"},
		{"upstream slots", "upstreams", OpCreate, map[string]any{"name": "u.test", "slots": 5},
			"schema violation (slots: value should be between 10 and 65536)"},
		{"upstream healthcheck nested", "upstreams", OpCreate, map[string]any{"name": "u.test", "healthchecks": map[string]any{"threshold": 101}},
			"schema violation (healthchecks.threshold: value should be between 0 and 100)"},
		{"target weight", "targets", OpCreate, map[string]any{"target": "a.test", "upstream": fk, "weight": -1},
			"schema violation (weight: value should be between 0 and 65535)"},
		{"target upstream missing", "targets", OpCreate, map[string]any{"target": "a.test"},
			"schema violation (upstream: required field missing)"},
		{"certificate mismatch", "certificates", OpCreate, map[string]any{"cert": pki.cert, "key": pki.key2},
			"schema violation (certificate does not match key)"},
		{"certificate bad pem", "certificates", OpCreate, map[string]any{"cert": "nope", "key": pki.key},
			"schema violation (cert: invalid certificate: PEM_read_bio_X509_AUX() failed)"},
		{"certificate alt pairs", "certificates", OpCreate, map[string]any{"cert": pki.cert, "key": pki.key, "cert_alt": pki.rsaCert},
			"schema violation (all or none of these fields must be set: 'cert_alt', 'key_alt')"},
		{"certificate alt same type", "certificates", OpCreate, map[string]any{"cert": pki.cert, "key": pki.key, "cert_alt": pki.cert2, "key_alt": pki.key2},
			"schema violation (certificate and alternative certificate need to have different type (e.g. RSA and ECDSA), the provided certificates were both of the same type)"},
		{"certificate bad sni", "certificates", OpCreate, map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"*.*.test"}},
			"schema violation (snis.1: only one wildcard must be specified)"},
		{"ca not a CA", "ca_certificates", OpCreate, map[string]any{"cert": pki.cert},
			`schema violation (certificate does not appear to be a CA because it is missing the "CA" basic constraint)`},
		{"ca expired", "ca_certificates", OpCreate, map[string]any{"cert": pki.caExpired},
			`schema violation (certificate expired, "Not After" time is in the past)`},
		{"ca two certs", "ca_certificates", OpCreate, map[string]any{"cert": pki.ca + pki.ca},
			"schema violation (please submit only one certificate at a time)"},
		{"sni ip", "snis", OpCreate, map[string]any{"name": "10.0.0.1", "certificate": fk},
			"schema violation (name: must not be an IP)"},
		{"vault prefix pattern", "vaults", OpCreate, map[string]any{"prefix": "Bad", "name": "env"},
			"schema violation (prefix: invalid value: Bad)"},
		// Kong's vault prefix is the Lua pattern ^[a-z][a-z%d-]-[a-z%d]+$ ('-' after a class is
		// a lazy repetition, not a hyphen) checked after not_one_of = the vault type names
		// (kong/db/schema/entities/vaults.lua; message in
		// spec/02-integration/04-admin_api/19-vaults_spec.lua).
		{"vault prefix type name", "vaults", OpCreate, map[string]any{"prefix": "env", "name": "env"},
			"schema violation (prefix: must not be one of: env)"},
		{"vault prefix one letter", "vaults", OpCreate, map[string]any{"prefix": "a", "name": "env"},
			"schema violation (prefix: invalid value: a)"},
		{"vault prefix trailing hyphen", "vaults", OpCreate, map[string]any{"prefix": "my-", "name": "env"},
			"schema violation (prefix: invalid value: my-)"},
		{"vault prefix leading digit", "vaults", OpCreate, map[string]any{"prefix": "1vault", "name": "env"},
			"schema violation (prefix: invalid value: 1vault)"},
		{"vault prefix underscore", "vaults", OpCreate, map[string]any{"prefix": "my_vault", "name": "env"},
			"schema violation (prefix: invalid value: my_vault)"},
		{"vault unknown type", "vaults", OpCreate, map[string]any{"prefix": "my-vault", "name": "aws"},
			"schema violation (name: vault 'aws' is not installed)"},
		{"vault env prefix", "vaults", OpCreate, map[string]any{"prefix": "my-vault", "name": "env", "config": map[string]any{"prefix": "1X"}},
			"schema violation (config.prefix: invalid value: 1X)"},
		{"key jwk and pem", "keys", OpCreate, map[string]any{"kid": "k", "jwk": `{"kid":"k"}`, "pem": map[string]any{"public_key": pki.pub}},
			"schema violation (exactly one of these fields must be non-empty: 'jwk', 'pem')"},
		{"key jwk kid", "keys", OpCreate, map[string]any{"kid": "k", "jwk": `{"kid":"other"}`},
			"schema violation (kid in jwk.kid must be equal to keys.kid)"},
		{"key pem mismatch", "keys", OpCreate, map[string]any{"kid": "k", "pem": map[string]any{"public_key": pki.pub, "private_key": pki.key2}},
			"schema violation (public key does not match private key)"},
		{"jwt rsa key required", "jwt_secrets", OpCreate, map[string]any{"consumer": fk, "algorithm": "RS256"},
			"2 schema violations (failed conditional validation given value of field 'algorithm'; rsa_public_key: required field missing)"},
		{"jwt rsa key format", "jwt_secrets", OpCreate, map[string]any{"consumer": fk, "algorithm": "RS256", "rsa_public_key": "x"},
			// kong/plugins/jwt/daos.lua: the conditional's custom_validator reports "invalid key".
			"2 schema violations (failed conditional validation given value of field 'algorithm'; rsa_public_key: invalid key)"},
		{"basic-auth password", "basicauth_credentials", OpCreate, map[string]any{"consumer": fk, "username": "u"},
			"schema violation (password: required field missing)"},
		{"key-auth ttl", "keyauth_credentials", OpCreate, map[string]any{"consumer": fk, "ttl": -1},
			"schema violation (ttl: value should be between 0 and 100000000)"},
		{"acl group", "acls", OpCreate, map[string]any{"consumer": fk},
			"schema violation (group: required field missing)"},
		{"plugin unknown", "plugins", OpCreate, map[string]any{"name": "x"},
			"schema violation (name: plugin 'x' not enabled; the bundled plugins are: " + strings.Join(bundledPluginNames(), ", ") + ")"},
		{"plugin name missing", "plugins", OpCreate, map[string]any{},
			"schema violation (name: required field missing)"},
		{"plugin no_consumer", "plugins", OpCreate, map[string]any{"name": "key-auth", "consumer": fk},
			"schema violation (consumer: value must be null)"},
		{"plugin protocols", "plugins", OpCreate, map[string]any{"name": "key-auth", "protocols": []any{"tcp"}},
			"schema violation (protocols.1: expected one of: grpc, grpcs, http, https)"},
		{"rate-limiting period", "plugins", OpCreate, map[string]any{"name": "rate-limiting", "config": map[string]any{}},
			"schema violation (at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year')"},
		{"rate-limiting redis", "plugins", OpCreate, map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 1, "policy": "redis"}},
			"2 schema violations (failed conditional validation given value of field 'config.policy'; config.redis: {\n  host = \"required field missing\"\n})"},
		{"rate-limiting order", "plugins", OpCreate, map[string]any{"name": "rate-limiting", "config": map[string]any{"second": 10, "minute": 5}},
			"schema violation (config: The limit for minute(5.0) cannot be lower than the limit for second(10.0))"},
		{"rate-limiting gt", "plugins", OpCreate, map[string]any{"name": "rate-limiting", "config": map[string]any{"second": 0}},
			"schema violation (config.second: value must be greater than 0)"},
		{"acl allow and deny", "plugins", OpCreate, map[string]any{"name": "acl", "config": map[string]any{"allow": []any{"a"}, "deny": []any{"b"}}},
			"schema violation (only one of these fields must be non-empty: 'config.allow', 'config.deny')"},
		{"jwt max expiration", "plugins", OpCreate, map[string]any{"name": "jwt", "config": map[string]any{"maximum_expiration": 10}},
			"2 schema violations (failed conditional validation given value of field 'config.maximum_expiration'; config.claims_to_verify: expected to contain: exp)"},
		{"request-termination combo", "plugins", OpCreate, map[string]any{"name": "request-termination", "config": map[string]any{"message": "x", "body": "y"}},
			"schema violation (config: message cannot be used with content_type or body)"},
		{"proxy-cache strategy", "plugins", OpCreate, map[string]any{"name": "proxy-cache"},
			"schema violation (config.strategy: required field missing)"},
		{"http-log endpoint", "plugins", OpCreate, map[string]any{"name": "http-log", "config": map[string]any{"http_endpoint": "nohost"}},
			"schema violation (config.http_endpoint: missing host in url)"},
		{"http-log host header", "plugins", OpCreate, map[string]any{"name": "http-log", "config": map[string]any{"http_endpoint": "http://a.test", "headers": map[string]any{"Host": "x"}}},
			"schema violation (config.headers: {\n  Host = \"cannot contain 'host' header\"\n})"},
		{"ip-restriction cidr", "plugins", OpCreate, map[string]any{"name": "ip-restriction", "config": map[string]any{"allow": []any{"300.0.0.1"}}},
			"schema violation (config.allow: {\n  \"invalid ip or cidr range: '300.0.0.1'\"\n})"},
		{"ordering shape", "plugins", OpCreate, map[string]any{"name": "cors", "ordering": map[string]any{"before": map[string]any{"rewrite": []any{"x"}}}},
			"schema violation (ordering.before: {\n  rewrite = \"unknown field\"\n})"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := Lookup(tt.entity)
			doc, _, err := e.Process(tt.op, jsonRoundTrip(t, tt.in), nil)
			if err == nil {
				t.Fatalf("accepted: %v", doc)
			}
			if err.Message != tt.want {
				t.Fatalf("message\n got: %q\nwant: %q", err.Message, tt.want)
			}
			if err.Code != CodeSchemaViolation || err.Status() != 400 || err.Name != "schema violation" {
				t.Fatalf("code/name/status = %d/%s/%d", err.Code, err.Name, err.Status())
			}
		})
	}
}

func TestProcessValid(t *testing.T) {
	fk := map[string]any{"id": uuid1}
	tests := []struct {
		name   string
		entity string
		in     map[string]any
		want   map[string]any // subset of the document
		trans  map[string]any // expected transient values
	}{
		{"service url", "services", map[string]any{"url": "https://api.test:8443/v1"},
			map[string]any{"protocol": "https", "host": "api.test", "port": 8443, "path": "/v1", "retries": 5, "enabled": true, "name": nil},
			map[string]any{"url": "https://api.test:8443/v1"}},
		{"service url default port", "services", map[string]any{"url": "https://api.test"},
			map[string]any{"protocol": "https", "port": 443, "path": nil}, nil},
		{"route defaults", "routes", map[string]any{"paths": []any{"/a", "~/u/(?<id>\\d+)$"}, "methods": []any{"GET", "GET"}},
			map[string]any{"protocols": []any{"http", "https"}, "strip_path": true, "https_redirect_status_code": 426,
				"path_handling": "v0", "regex_priority": 0, "methods": []any{"GET"}, "hosts": nil}, nil},
		{"route grpc strip_path", "routes", map[string]any{"protocols": []any{"grpc"}, "paths": []any{"/"}},
			map[string]any{"strip_path": false}, nil},
		{"route wildcard host", "routes", map[string]any{"hosts": []any{"*.example.test", "example.*", "a.test:8080"}},
			map[string]any{"hosts": []any{"*.example.test", "example.*", "a.test:8080"}}, nil},
		{"route tls_passthrough", "routes", map[string]any{"protocols": []any{"tls_passthrough"}, "snis": []any{"a.test"}},
			map[string]any{"snis": []any{"a.test"}}, nil},
		{"upstream hashing implies algorithm", "upstreams", map[string]any{"name": "u.test", "hash_on": "ip"},
			map[string]any{"algorithm": "consistent-hashing", "hash_fallback": "none", "slots": 10000, "hash_on_cookie_path": "/"}, nil},
		{"target default port", "targets", map[string]any{"target": "a.test", "upstream": fk},
			map[string]any{"target": "a.test:8000", "weight": 100, "upstream": fk}, nil},
		{"target ipv6", "targets", map[string]any{"target": "[::1]", "upstream": fk},
			map[string]any{"target": "[::1]:8000"}, nil},
		{"certificate snis transient", "certificates", map[string]any{"cert": pki.cert, "key": pki.key, "snis": []any{"*.a.test"}},
			map[string]any{"cert_alt": nil}, map[string]any{"snis": []any{"*.a.test"}}},
		{"certificate alt", "certificates", map[string]any{"cert": pki.cert, "key": pki.key, "cert_alt": pki.rsaCert, "key_alt": pki.rsaKey},
			map[string]any{"key_alt": pki.rsaKey}, nil},
		{"certificate vault refs", "certificates", map[string]any{"cert": "{vault://env/cert}", "key": "{vault://env/key}"},
			map[string]any{"cert": "{vault://env/cert}", "key": "{vault://env/key}"}, nil},
		{"vault prefix with hyphens", "vaults", map[string]any{"prefix": "my-env-vault", "name": "env"},
			map[string]any{"prefix": "my-env-vault"}, nil},
		{"vault prefix two characters", "vaults", map[string]any{"prefix": "a1", "name": "env"},
			map[string]any{"prefix": "a1"}, nil},
		{"vault env config", "vaults", map[string]any{"prefix": "my-vault", "name": "env", "config": map[string]any{"prefix": "SSL_"}},
			map[string]any{"config": map[string]any{"prefix": "SSL_"}}, nil},
		{"key pem", "keys", map[string]any{"kid": "k", "pem": map[string]any{"public_key": pki.pub, "private_key": pki.key}, "set": fk},
			map[string]any{"jwk": nil, "set": fk}, nil},
		{"key-auth ttl and key", "keyauth_credentials", map[string]any{"consumer": fk, "key": "abc", "ttl": 60},
			map[string]any{"key": "abc"}, map[string]any{"ttl": 60}},
		{"jwt RS256", "jwt_secrets", map[string]any{"consumer": fk, "algorithm": "RS256", "rsa_public_key": pki.pub, "key": "iss1"},
			map[string]any{"algorithm": "RS256", "key": "iss1"}, nil},
		{"basic-auth hashes", "basicauth_credentials", map[string]any{"consumer": fk, "username": "u", "password": "pw"},
			map[string]any{"password": HashBasicAuthPassword("pw", uuid1)}, nil},
		{"plugin scoped", "plugins", map[string]any{"name": "rate-limiting", "service": fk, "config": map[string]any{"minute": 5, "policy": "redis", "redis": map[string]any{"host": "127.0.0.1"}}},
			map[string]any{"service": fk, "route": nil, "consumer_group": nil, "protocols": []any{"grpc", "grpcs", "http", "https"}, "ordering": nil}, nil},
		{"plugin ordering", "plugins", map[string]any{"name": "cors", "ordering": map[string]any{"before": map[string]any{"access": []any{"key-auth"}}}},
			map[string]any{"ordering": map[string]any{"before": map[string]any{"access": []any{"key-auth"}}, "after": map[string]any{"access": nil}}}, nil},
		{"http-log referenced endpoint", "plugins", map[string]any{"name": "http-log", "config": map[string]any{"http_endpoint": "{vault://env/log-url}"}},
			map[string]any{"enabled": true}, nil},
		{"ip-restriction protocols", "plugins", map[string]any{"name": "ip-restriction", "config": map[string]any{"deny": []any{"10.0.0.1"}}},
			map[string]any{"protocols": []any{"grpc", "grpcs", "http", "https", "tcp", "tls"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := Lookup(tt.entity)
			doc, trans, err := e.Process(OpCreate, jsonRoundTrip(t, tt.in), nil)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			for k, want := range tt.want {
				if got := mustJSON(t, doc[k]); got != mustJSON(t, want) {
					t.Errorf("%s = %s, want %s", k, got, mustJSON(t, want))
				}
			}
			for k, want := range tt.trans {
				if got := mustJSON(t, trans[k]); got != mustJSON(t, want) {
					t.Errorf("transient %s = %s, want %s", k, got, mustJSON(t, want))
				}
			}
			for _, tr := range e.Transient {
				if _, stored := doc[tr]; stored {
					t.Errorf("transient %s stored", tr)
				}
			}
			if _, ok := doc["ttl"]; ok {
				t.Error("ttl stored")
			}
		})
	}
}

func TestAutoFields(t *testing.T) {
	fixed := time.Unix(1700000000, 123456789)
	nowFunc = func() time.Time { return fixed }
	defer func() { nowFunc = time.Now }()
	fk := map[string]any{"id": uuid1}

	svc, _ := Lookup("services")
	doc, _, err := svc.Process(OpCreate, map[string]any{"host": "a.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !uuidRe.MatchString(doc["id"].(string)) || doc["created_at"] != int64(1700000000) || doc["updated_at"] != int64(1700000000) {
		t.Fatalf("auto fields: %v %v %v", doc["id"], doc["created_at"], doc["updated_at"])
	}
	tg, _ := Lookup("targets")
	doc, _, err = tg.Process(OpCreate, map[string]any{"target": "a.test:1", "upstream": fk}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if doc["created_at"] != 1700000000.123 {
		t.Fatalf("target created_at = %v, want float seconds with ms", doc["created_at"])
	}
	for _, name := range []string{"keyauth_credentials", "jwt_secrets", "hmacauth_credentials"} {
		e, _ := Lookup(name)
		in := map[string]any{"consumer": fk, "username": "u"}
		if name != "hmacauth_credentials" {
			delete(in, "username")
		}
		a, _, err := e.Process(OpCreate, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := e.Process(OpCreate, in, nil)
		for _, f := range []string{"key", "secret"} {
			if e.Field(f) == nil || !e.Field(f).Auto {
				continue
			}
			s, _ := a[f].(string)
			if len(s) != 32 || strings.ContainsAny(s, "+/=") || s == b[f] {
				t.Errorf("%s.%s = %q, want 32 random alphanumerics", name, f, s)
			}
		}
	}
	ca, _ := Lookup("ca_certificates")
	doc, _, err = ca.Process(OpCreate, map[string]any{"cert": pki.ca}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := doc["cert_digest"].(string); len(d) != 64 {
		t.Fatalf("cert_digest = %v", doc["cert_digest"])
	}
}

func TestUpdateAndUpsert(t *testing.T) {
	fk := map[string]any{"id": uuid1}
	up, _ := Lookup("upstreams")
	existing, _, err := up.Process(OpCreate, map[string]any{"name": "u.test", "slots": 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	existing = jsonRoundTrip(t, existing)

	t.Run("patch merges records deeply", func(t *testing.T) {
		patch := jsonRoundTrip(t, map[string]any{"healthchecks": map[string]any{"active": map[string]any{"timeout": 5}}})
		doc, _, err := up.Process(OpUpdate, patch, existing)
		if err != nil {
			t.Fatal(err)
		}
		active := doc["healthchecks"].(map[string]any)["active"].(map[string]any)
		if active["timeout"] != float64(5) || active["concurrency"] != int64(10) || doc["slots"] != int64(100) {
			t.Fatalf("merge lost data: %v slots=%v", active, doc["slots"])
		}
		if doc["id"] != existing["id"] || mustJSON(t, doc["created_at"]) != mustJSON(t, existing["created_at"]) {
			t.Fatal("identity changed on PATCH")
		}
	})
	t.Run("put resets omitted fields", func(t *testing.T) {
		doc, _, err := up.Process(OpUpsert, map[string]any{"name": "u.test", "id": existing["id"]}, existing)
		if err != nil {
			t.Fatal(err)
		}
		if doc["slots"] != int64(10000) || doc["id"] != existing["id"] {
			t.Fatalf("PUT kept slots %v", doc["slots"])
		}
	})
	t.Run("patch validates the merged document", func(t *testing.T) {
		_, _, err := up.Process(OpUpdate, map[string]any{"hash_on": "header"}, existing)
		if err == nil || !strings.Contains(err.Message, "hash_on_header: required field missing") {
			t.Fatalf("err = %v", err)
		}
	})

	ba, _ := Lookup("basicauth_credentials")
	cred, _, err := ba.Process(OpCreate, map[string]any{"consumer": fk, "username": "u", "password": "pw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("basic-auth hash kept when password untouched", func(t *testing.T) {
		doc, _, err := ba.Process(OpUpdate, map[string]any{"tags": []any{"x"}}, cred)
		if err != nil {
			t.Fatal(err)
		}
		if doc["password"] != cred["password"] {
			t.Fatalf("password re-hashed: %v", doc["password"])
		}
	})
	t.Run("basic-auth hash on new password", func(t *testing.T) {
		doc, _, err := ba.Process(OpUpdate, map[string]any{"password": "new"}, cred)
		if err != nil {
			t.Fatal(err)
		}
		if doc["password"] != HashBasicAuthPassword("new", uuid1) {
			t.Fatalf("password = %v", doc["password"])
		}
	})
	pl, _ := Lookup("plugins")
	plug, _, err := pl.Process(OpCreate, map[string]any{"name": "key-auth", "config": map[string]any{"key_names": []any{"k"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("plugin patch without name", func(t *testing.T) {
		doc, _, err := pl.Process(OpUpdate, map[string]any{"config": map[string]any{"hide_credentials": true}}, plug)
		if err != nil {
			t.Fatal(err)
		}
		cfg := doc["config"].(map[string]any)
		if cfg["hide_credentials"] != true || mustJSON(t, cfg["key_names"]) != `["k"]` {
			t.Fatalf("config = %v", cfg)
		}
	})
	t.Run("input untouched", func(t *testing.T) {
		in := map[string]any{"url": "http://a.test/x"}
		svc, _ := Lookup("services")
		if _, _, err := svc.Process(OpCreate, in, nil); err != nil {
			t.Fatal(err)
		}
		if len(in) != 1 {
			t.Fatalf("input modified: %v", in)
		}
	})
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		err    *Error
		status int
		body   string
	}{
		{"unique", UniqueViolation(map[string]any{"name": "x"}), 409,
			`{"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{name=\"x\"}'","fields":{"name":"x"}}`},
		{"unique plugin", UniqueViolation(map[string]any{"consumer": nil, "name": "basic-auth", "route": nil, "service": map[string]any{"id": uuid1}}), 409,
			`{"code":5,"name":"unique constraint violation","message":"UNIQUE violation detected on '{consumer=null,name=\"basic-auth\",route=null,service={id=\"` + uuid1 + `\"}}'","fields":{"consumer":null,"name":"basic-auth","route":null,"service":{"id":"` + uuid1 + `"}}}`},
		{"not found id", NotFound(map[string]any{"id": uuid1}), 404,
			`{"code":6,"name":"not found","message":"could not find the entity with primary key '{id=\"` + uuid1 + `\"}'","fields":{"id":"` + uuid1 + `"}}`},
		{"not found name", NotFound(map[string]any{"name": "x"}), 404,
			`{"code":6,"name":"not found","message":"could not find the entity with '{name=\"x\"}'","fields":{"name":"x"}}`},
		{"fk", ForeignKeyViolation("service", map[string]any{"id": uuid1}, "services"), 400,
			`{"code":4,"name":"foreign key violation","message":"the foreign key '{id=\"` + uuid1 + `\"}' does not reference an existing 'services' entity.","fields":{"service":{"id":"` + uuid1 + `"}}}`},
		{"referenced", ReferencedBy("services", "routes"), 400,
			`{"code":4,"name":"foreign key violation","message":"an existing 'routes' entity references this 'services' entity","fields":{"@referenced_by":"routes"}}`},
		{"unresolved", ForeignKeyUnresolved("service", "name", "non-existing", "services"), 400,
			`{"code":13,"name":"foreign keys unresolved","message":"foreign key unresolved (service.name: the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity)","fields":{"service":{"name":"the foreign key cannot be resolved with '{name=\"non-existing\"}' for an existing 'services' entity"}}}`},
		{"pk", InvalidPrimaryKey(map[string]any{"id": "x"}), 400,
			`{"code":1,"name":"invalid primary key","message":"invalid primary key: '{id=\"x\"}'","fields":{"id":"x"}}`},
		{"offset", InvalidOffset("x", "bad base64 encoding"), 400,
			`{"code":7,"name":"invalid offset","message":"'x' is not a valid offset: bad base64 encoding"}`},
		{"size", InvalidSize("size must be an integer between 1 and 1000"), 400,
			`{"code":9,"name":"invalid size","message":"size must be an integer between 1 and 1000"}`},
		{"options", InvalidOptions(map[string]any{"tags": "invalid filter syntax"}), 400,
			`{"code":11,"name":"invalid options","message":"invalid option (tags: invalid filter syntax)","options":{"tags":"invalid filter syntax"}}`},
		{"unsupported", OperationUnsupported("cannot delete"), 405,
			`{"code":12,"name":"operation unsupported","message":"cannot delete"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.err)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.body {
				t.Fatalf("body\n got: %s\nwant: %s", b, tt.body)
			}
			if tt.err.Status() != tt.status {
				t.Fatalf("status %d, want %d", tt.err.Status(), tt.status)
			}
		})
	}
}

func TestPrettyWrite(t *testing.T) {
	tests := []struct {
		v      any
		indent string
		want   string
	}{
		{map[string]any{"b": 1.0, "a": "x", "c": nil}, "", `{a="x",b=1,c=null}`},
		{map[string]any{"@entity": []any{"m"}}, "", `{["@entity"]={"m"}}`},
		{map[string]any{"a": map[string]any{"b": true}}, "  ", "{\n  a = {\n    b = true\n  }\n}"},
		{[]any{}, "", "{}"},
	}
	for _, tt := range tests {
		if got := PrettyWrite(tt.v, tt.indent); got != tt.want {
			t.Errorf("PrettyWrite(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func BenchmarkProcessRoute(b *testing.B) {
	e, _ := Lookup("routes")
	in := map[string]any{
		"name": "r1", "paths": []any{"/api", "~/u/(?<id>\\d+)$"}, "methods": []any{"GET", "POST"},
		"hosts": []any{"*.example.test"}, "service": map[string]any{"id": uuid1}, "tags": []any{"a", "b"},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.Process(OpCreate, in, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProcessPlugin(b *testing.B) {
	e, _ := Lookup("plugins")
	in := map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 5.0, "policy": "redis", "redis": map[string]any{"host": "127.0.0.1"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.Process(OpCreate, in, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// bundledPluginNames lists the bundled plugins as the unknown-plugin message names them.
func bundledPluginNames() []string {
	var out []string
	for _, p := range Plugins() {
		out = append(out, p.Name)
	}
	return out
}
