package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func seg(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func signHS(secret string, header, claims map[string]any) string {
	in := seg(header) + "." + seg(claims)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func signRS(k *rsa.PrivateKey, claims map[string]any) string {
	in := seg(map[string]any{"alg": "RS256", "typ": "JWT"}) + "." + seg(claims)
	d := sha256.Sum256([]byte(in))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func signES(k *ecdsa.PrivateKey, claims map[string]any) string {
	in := seg(map[string]any{"alg": "ES256", "typ": "JWT"}) + "." + seg(claims)
	d := sha256.Sum256([]byte(in))
	r, s, _ := ecdsa.Sign(rand.Reader, k, d[:])
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func pubPEM(k any) string {
	der, _ := x509.MarshalPKIXPublicKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestJWT(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := nowFunc
	nowFunc = func() time.Time { return now }
	defer func() { nowFunc = old }()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	env := plugin.MemEnvOptions{
		Consumers: []plugin.Consumer{{ID: "c1", Username: "u1"}},
		JWTs: []plugin.JWTCredential{
			{ID: "j-hs", ConsumerID: "c1", Key: "hs-key", Secret: "hs-secret"},
			{ID: "j-rs", ConsumerID: "c1", Key: "rs-key", Algorithm: "RS256", RSAPublicKey: pubPEM(&rsaKey.PublicKey)},
			{ID: "j-es", ConsumerID: "c1", Key: "es-key", Algorithm: "ES256", RSAPublicKey: pubPEM(&ecKey.PublicKey)},
			{ID: "j-b64", ConsumerID: "c1", Key: "b64-key", Secret: base64.StdEncoding.EncodeToString([]byte("raw-secret"))},
		},
	}
	hs := map[string]any{"alg": "HS256", "typ": "JWT"}
	n := float64(now.Unix())
	base := func(mod func(*Config)) Config {
		c := Config{URIParamNames: []string{"jwt"}, HeaderNames: []string{"authorization"}, KeyClaimName: "iss", RunOnPreflight: true}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	auth := func(tok string) func(r *http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	tests := []struct {
		name   string
		cfg    Config
		setup  func(r *http.Request)
		status int
		body   string
		www    string
	}{
		{"no token", base(nil), func(*http.Request) {}, 401, `{"message":"Unauthorized"}`, "Bearer"},
		{"hs256 header", base(nil), auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key"})), 200, "", ""},
		{"query param", base(nil), func(r *http.Request) {
			r.URL.RawQuery = "jwt=" + signHS("hs-secret", hs, map[string]any{"iss": "hs-key"})
		}, 200, "", ""},
		{"cookie", base(func(c *Config) { c.CookieNames = []string{"tok"} }), func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "tok", Value: signHS("hs-secret", hs, map[string]any{"iss": "hs-key"})})
		}, 200, "", ""},
		{"multiple tokens", base(nil), func(r *http.Request) {
			auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key"}))(r)
			r.URL.RawQuery = "jwt=" + signHS("hs-secret", hs, map[string]any{"iss": "hs-key", "x": 1})
		}, 401, `{"message":"Multiple tokens provided"}`, `Bearer error="invalid_token"`},
		{"bad token", base(nil), auth("a.b"), 401, `{"message":"Bad token; invalid JWT"}`, `Bearer error="invalid_token"`},
		{"no iss", base(nil), auth(signHS("hs-secret", hs, map[string]any{"sub": "x"})), 401, `{"message":"No mandatory 'iss' in claims"}`, ""},
		{"empty iss", base(nil), auth(signHS("hs-secret", hs, map[string]any{"iss": ""})), 401, `{"message":"Invalid 'iss' in claims"}`, ""},
		{"unknown iss", base(nil), auth(signHS("hs-secret", hs, map[string]any{"iss": "nope"})), 401, `{"message":"No credentials found for given 'iss'"}`, ""},
		{"algorithm mismatch", base(nil), auth(signHS("hs-secret", map[string]any{"alg": "HS256"}, map[string]any{"iss": "rs-key"})), 401, `{"message":"Invalid algorithm"}`, ""},
		{"bad signature", base(nil), auth(signHS("wrong", hs, map[string]any{"iss": "hs-key"})), 401, `{"message":"Invalid signature"}`, ""},
		{"rs256", base(nil), auth(signRS(rsaKey, map[string]any{"iss": "rs-key"})), 200, "", ""},
		{"es256", base(nil), auth(signES(ecKey, map[string]any{"iss": "es-key"})), 200, "", ""},
		{"base64 secret", base(func(c *Config) { c.SecretIsBase64 = true }), auth(signHS("raw-secret", hs, map[string]any{"iss": "b64-key"})), 200, "", ""},
		{"expired", base(func(c *Config) { c.ClaimsToVerify = []string{"exp"} }), auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key", "exp": n - 1})), 401, `{"exp":"token expired"}`, `Bearer error="invalid_token"`},
		{"exp not a number", base(func(c *Config) { c.ClaimsToVerify = []string{"exp"} }), auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key", "exp": "soon"})), 401, `{"exp":"must be a number"}`, ""},
		{"nbf in future", base(func(c *Config) { c.ClaimsToVerify = []string{"nbf"} }), auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key", "nbf": n + 60})), 401, `{"nbf":"token not valid yet"}`, ""},
		{"valid exp and nbf", base(func(c *Config) { c.ClaimsToVerify = []string{"exp", "nbf"} }), auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key", "nbf": n - 1, "exp": n + 60})), 200, "", ""},
		{"maximum expiration exceeded", base(func(c *Config) { c.ClaimsToVerify = []string{"exp"}; c.MaximumExpiration = 60 }), auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key", "exp": n + 120})), 401, `{"exp":"exceeds maximum allowed expiration"}`, ""},
		{"maximum expiration ok", base(func(c *Config) { c.ClaimsToVerify = []string{"exp"}; c.MaximumExpiration = 60 }), auth(signHS("hs-secret", hs, map[string]any{"iss": "hs-key", "exp": n + 30})), 200, "", ""},
		{"realm", base(func(c *Config) { c.Realm = strp("api") }), func(*http.Request) {}, 401, `{"message":"Unauthorized"}`, `Bearer realm="api"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Env: env, Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(tt.cfg)}}})
			r := httptest.NewRequest("GET", "/", nil)
			tt.setup(r)
			res := s.Do(r)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.Status, tt.status, res.Body)
			}
			if tt.body != "" && res.Body != tt.body {
				t.Errorf("body %s, want %s", res.Body, tt.body)
			}
			if tt.www != "" && res.Header.Get("WWW-Authenticate") != tt.www {
				t.Errorf("WWW-Authenticate %q, want %q", res.Header.Get("WWW-Authenticate"), tt.www)
			}
			if tt.status == 200 {
				seen, _ := res.Seen()
				h := http.Header(seen.Header)
				if h.Get("X-Consumer-Id") != "c1" || !strings.HasSuffix(h.Get("X-Credential-Identifier"), "-key") {
					t.Errorf("consumer headers %v", seen.Header)
				}
			}
		})
	}
}

func strp(s string) *string { return &s }

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{ClaimsToVerify: []string{"iat"}},
		{MaximumExpiration: 60},
		{ClaimsToVerify: []string{"exp"}, MaximumExpiration: 31536001},
	} {
		if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(cfg)}}}); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
