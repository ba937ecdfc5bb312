package redact

import (
	"encoding/json"
	"strings"
	"testing"
)

const pemKey = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"

func TestDoc(t *testing.T) {
	cases := []struct {
		name       string
		entityType string
		in         string
		// hidden are values that must not survive; kept are substrings that must.
		hidden []string
		kept   []string
	}{
		{
			name: "certificate keys (schema: Encrypted)", entityType: "certificates",
			in:     `{"id":"c1","cert":"-----BEGIN CERTIFICATE-----x","key":"k-secret-1","key_alt":"k-secret-2","cert_alt":null}`,
			hidden: []string{"k-secret-1", "k-secret-2"},
			kept:   []string{`"cert":"-----BEGIN CERTIFICATE-----x"`, `"cert_alt":null`, `"id":"c1"`},
		},
		{
			name: "key private_key and jwk", entityType: "keys",
			in:     `{"id":"k","kid":"kid-1","jwk":"{\"d\":\"jwk-secret\"}","pem":{"private_key":"pk-secret","public_key":"pub-visible"}}`,
			hidden: []string{"jwk-secret", "pk-secret"},
			kept:   []string{"kid-1", "pub-visible"},
		},
		{
			name: "key-auth key (table)", entityType: "keyauth_credentials",
			in:     `{"id":"x","key":"ka-secret","consumer":{"id":"c"},"tags":["t1"]}`,
			hidden: []string{"ka-secret"},
			kept:   []string{`"tags":["t1"]`, `"consumer":{"id":"c"}`},
		},
		{
			name: "basic-auth password", entityType: "basicauth_credentials",
			in:     `{"username":"bob","password":"ba-secret"}`,
			hidden: []string{"ba-secret"}, kept: []string{"bob"},
		},
		{
			name: "jwt secret, key kept as the identifier it is", entityType: "jwt_secrets",
			in:     `{"key":"issuer-1","secret":"jwt-secret","algorithm":"HS256","rsa_public_key":null}`,
			hidden: []string{"jwt-secret"}, kept: []string{"issuer-1", "HS256"},
		},
		{
			name: "hmac-auth secret", entityType: "hmacauth_credentials",
			in:     `{"username":"h","secret":"hm-secret"}`,
			hidden: []string{"hm-secret"}, kept: []string{`"username":"h"`},
		},
		{
			name: "plugin config: schema-encrypted redis password and http-log endpoint", entityType: "plugins",
			in:     `{"name":"rate-limiting","config":{"minute":5,"redis":{"host":"r","password":"redis-secret","username":"ru"}}}`,
			hidden: []string{"redis-secret"}, kept: []string{`"minute":5`, `"username":"ru"`},
		},
		{
			name: "plugin config: http-log endpoint", entityType: "plugins",
			in:     `{"name":"http-log","config":{"http_endpoint":"https://user:pw-secret@logs.example","method":"POST","headers":{"Authorization":"Bearer hdr-secret","X-Other":"ok"}}}`,
			hidden: []string{"pw-secret", "hdr-secret"}, kept: []string{`"method":"POST"`, `"X-Other":"ok"`},
		},
		{
			name: "vault references and nulls are kept", entityType: "certificates",
			in:   `{"key":"{vault://env/cert-key}","key_alt":null}`,
			kept: []string{"{vault://env/cert-key}", `"key_alt":null`},
		},
		{
			name: "names at any depth in unknown types", entityType: "webhooks",
			in:     `{"a":{"client_secret":"cs-secret","b":[{"api_key":"ak-secret"}],"session_token":"st-secret","user_password":"up-secret"},"public_key":"visible"}`,
			hidden: []string{"cs-secret", "ak-secret", "st-secret", "up-secret"}, kept: []string{"visible"},
		},
		{
			name: "control plane types: hashes and tokens", entityType: "users",
			in:     `{"email":"a@example.com","password_hash":"$argon2id$v=19$hash-secret"}`,
			hidden: []string{"hash-secret"}, kept: []string{"a@example.com"},
		},
		{
			name: "token hash of a personal access token", entityType: "personal_access_tokens",
			in:     `{"name":"ci","hash":"abcdef0123456789","hint":"gpat_AB"}`,
			hidden: []string{"abcdef0123456789"}, kept: []string{`"hint":"gpat_AB"`},
		},
		{
			name: "values: PEM private keys and Gantry tokens under innocent names", entityType: "routes",
			in:     `{"name":"r","tags":["gpat_ABCDEFGHIJKLMNOP"],"description":` + jsonString(pemKey) + `}`,
			hidden: []string{"gpat_ABCDEFGHIJKLMNOP", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}, kept: []string{`"name":"r"`},
		},
		{
			name: "numbers keep their exact form", entityType: "services",
			in:   `{"port":8080,"read_timeout":60000,"retries":5}`,
			kept: []string{`"port":8080`, `"read_timeout":60000`},
		},
		{
			name: "not JSON: replaced whole", entityType: "routes",
			in: `{"password":"broken-secret"`, hidden: []string{"broken-secret"}, kept: []string{Mask},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := string(Doc(c.entityType, []byte(c.in)))
			for _, h := range c.hidden {
				if strings.Contains(out, h) {
					t.Errorf("%q survived redaction: %s", h, out)
				}
			}
			for _, k := range c.kept {
				if !strings.Contains(out, k) {
					t.Errorf("%q was lost: %s", k, out)
				}
			}
			if c.in != "" && json.Valid([]byte(c.in)) && !json.Valid([]byte(out)) {
				t.Errorf("output is not JSON: %s", out)
			}
		})
	}
}

func TestDocNull(t *testing.T) {
	for _, in := range []string{"", "null", "  "} {
		if out := Doc("routes", []byte(in)); out != nil {
			t.Errorf("Doc(%q) = %s, want nil", in, out)
		}
	}
}

func TestIsSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "Password": true, "client_secret": true, "token_hash": true, "access_token": true,
		"private_key": true, "cache_key": true, "authorization": true,
		"public_key": false, "rsa_public_key": false, "name": false, "key_names": false, "hide_credentials": false,
		"secret_is_base64": false, "token_id": false, "hint": false,
	} {
		if got := IsSecretName(name); got != want {
			t.Errorf("IsSecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestIsSecretField(t *testing.T) {
	for _, c := range []struct {
		typ, field string
		want       bool
	}{
		{"keyauth_credentials", "key", true}, {"jwt_secrets", "key", false}, {"jwt_secrets", "secret", true},
		{"certificates", "key", true}, {"certificates", "cert", false}, {"basicauth_credentials", "username", false},
		{"consumers", "username", false}, {"users", "password_hash", true},
	} {
		if got := IsSecretField(c.typ, c.field); got != c.want {
			t.Errorf("IsSecretField(%s, %s) = %v, want %v", c.typ, c.field, got, c.want)
		}
	}
}

func TestPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v2/runtime-groups/g/core-entities/consumers/c/key-auth/ka-secret": "/v2/runtime-groups/g/core-entities/consumers/c/key-auth/" + Mask,
		"/v2/runtime-groups/g/core-entities/key-auths/ka-secret/consumer":   "/v2/runtime-groups/g/core-entities/key-auths/" + Mask + "/consumer",
		"/v2/runtime-groups/g/core-entities/consumers/c/key-auth":           "/v2/runtime-groups/g/core-entities/consumers/c/key-auth",
		"/v2/runtime-groups/g/core-entities/consumers/c/basic-auth/bob":     "/v2/runtime-groups/g/core-entities/consumers/c/basic-auth/bob",
	} {
		if got := Path(in); got != want {
			t.Errorf("Path(%s) = %s, want %s", in, got, want)
		}
	}
}
