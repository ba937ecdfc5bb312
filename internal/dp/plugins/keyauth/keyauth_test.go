package keyauth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func cfg(mod func(*keyauth.Config)) keyauth.Config {
	c := keyauth.Config{KeyNames: []string{"apikey"}, KeyInHeader: true, KeyInQuery: true, RunOnPreflight: true}
	if mod != nil {
		mod(&c)
	}
	return c
}

func str(s string) *string { return &s }

var env = plugin.MemEnvOptions{
	Consumers: []plugin.Consumer{{ID: "c-bob", Username: "bob", CustomID: "b-1"}, {ID: "c-anon", Username: "anon"}},
	KeyAuths: []plugin.KeyAuthCredential{
		{ID: "k-1", ConsumerID: "c-bob", Key: "secret1"},
		{ID: "k-old", ConsumerID: "c-bob", Key: "expired", ExpiresAt: time.Now().Add(-time.Minute)},
		{ID: "k-new", ConsumerID: "c-bob", Key: "fresh", ExpiresAt: time.Now().Add(time.Hour)},
		{ID: "k-esc", ConsumerID: "c-bob", Key: "a b&c"},
	},
}

func TestKeyAuth(t *testing.T) {
	tests := []struct {
		name       string
		cfg        keyauth.Config
		req        func() *http.Request
		status     int
		body       string // prefix of the error body
		www        string
		consumer   string
		credential string
		anonymous  string
		check      func(t *testing.T, s plugintest.Seen)
	}{
		{name: "no key", cfg: cfg(nil), req: get("/"), status: 401, body: plugintest.ErrorBody("No API key found in request"), www: "Key"},
		{name: "empty key", cfg: cfg(nil), req: withHeader("/", "apikey", ""), status: 401, body: plugintest.ErrorBody("No API key found in request"), www: "Key"},
		{name: "unknown key", cfg: cfg(nil), req: withHeader("/", "apikey", "nope"), status: 401, body: plugintest.ErrorBody("Unauthorized"), www: "Key"},
		{name: "realm", cfg: cfg(func(c *keyauth.Config) { c.Realm = str("gantry") }), req: get("/"), status: 401, body: plugintest.ErrorBody("No API key found in request"), www: `Key realm="gantry"`},
		{name: "expired ttl", cfg: cfg(nil), req: withHeader("/", "apikey", "expired"), status: 401, body: plugintest.ErrorBody("Unauthorized"), www: "Key"},
		{name: "duplicate header", cfg: cfg(nil), req: func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Add("apikey", "secret1")
			r.Header.Add("apikey", "secret1")
			return r
		}, status: 401, body: plugintest.ErrorBody("Duplicate API key found"), www: "Key"},
		{name: "duplicate query", cfg: cfg(nil), req: get("/?apikey=a&apikey=b"), status: 401, body: plugintest.ErrorBody("Duplicate API key found")},
		{name: "header key", cfg: cfg(nil), req: withHeader("/", "apikey", "secret1"), status: 200, consumer: "c-bob", credential: "k-1",
			check: func(t *testing.T, s plugintest.Seen) {
				if h := http.Header(s.Header); h.Get("Apikey") != "secret1" || h.Get("X-Consumer-Username") != "bob" || h.Get("X-Consumer-Custom-Id") != "b-1" {
					t.Errorf("upstream headers %v", s.Header)
				}
			}},
		{name: "fresh ttl", cfg: cfg(nil), req: withHeader("/", "apikey", "fresh"), status: 200, consumer: "c-bob", credential: "k-new"},
		{name: "query key escaped", cfg: cfg(nil), req: get("/?x=1&apikey=a+b%26c"), status: 200, consumer: "c-bob", credential: "k-esc"},
		{name: "query disabled", cfg: cfg(func(c *keyauth.Config) { c.KeyInQuery = false }), req: get("/?apikey=secret1"), status: 401, body: plugintest.ErrorBody("No API key found in request")},
		{name: "header disabled", cfg: cfg(func(c *keyauth.Config) { c.KeyInHeader = false }), req: withHeader("/", "apikey", "secret1"), status: 401},
		{name: "second key name", cfg: cfg(func(c *keyauth.Config) { c.KeyNames = []string{"apikey", "x-token"} }), req: withHeader("/", "x-token", "secret1"), status: 200, consumer: "c-bob", credential: "k-1"},
		{name: "hide credentials header+query", cfg: cfg(func(c *keyauth.Config) { c.HideCredentials = true }), req: get("/p?apikey=secret1&keep=1"), status: 200, consumer: "c-bob", credential: "k-1",
			check: func(t *testing.T, s plugintest.Seen) {
				if s.Query != "keep=1" {
					t.Errorf("query %q", s.Query)
				}
			}},
		{name: "hide credentials header", cfg: cfg(func(c *keyauth.Config) { c.HideCredentials = true }), req: withHeader("/", "apikey", "secret1"), status: 200, consumer: "c-bob", credential: "k-1",
			check: func(t *testing.T, s plugintest.Seen) {
				if _, ok := s.Header["Apikey"]; ok {
					t.Errorf("key not hidden")
				}
			}},
		{name: "body key form hidden", cfg: cfg(func(c *keyauth.Config) { c.KeyInBody = true; c.HideCredentials = true }), req: func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader("apikey=secret1&a=b"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, status: 200, consumer: "c-bob", credential: "k-1", check: func(t *testing.T, s plugintest.Seen) {
			if s.Body != "a=b" {
				t.Errorf("body %q", s.Body)
			}
		}},
		{name: "body key json", cfg: cfg(func(c *keyauth.Config) { c.KeyInBody = true }), req: func() *http.Request {
			r := httptest.NewRequest("POST", "/", strings.NewReader(`{"apikey":"secret1"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, status: 200, consumer: "c-bob", credential: "k-1", check: func(t *testing.T, s plugintest.Seen) {
			if s.Body != `{"apikey":"secret1"}` {
				t.Errorf("body %q", s.Body)
			}
		}},
		{name: "preflight skipped", cfg: cfg(func(c *keyauth.Config) { c.RunOnPreflight = false }), req: func() *http.Request { return httptest.NewRequest("OPTIONS", "/", nil) }, status: 200},
		{name: "preflight checked", cfg: cfg(nil), req: func() *http.Request { return httptest.NewRequest("OPTIONS", "/", nil) }, status: 401},
		{name: "anonymous by username", cfg: cfg(func(c *keyauth.Config) { c.Anonymous = str("anon") }), req: withHeader("/", "apikey", "nope"), status: 200, consumer: "c-anon", anonymous: "true"},
		{name: "anonymous by id, valid key still used", cfg: cfg(func(c *keyauth.Config) { c.Anonymous = str("c-anon") }), req: withHeader("/", "apikey", "secret1"), status: 200, consumer: "c-bob", credential: "k-1"},
		{name: "anonymous missing", cfg: cfg(func(c *keyauth.Config) { c.Anonymous = str("ghost") }), req: get("/"), status: 500, body: plugintest.ErrorBody("anonymous consumer ghost is configured but doesn't exist")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Env: env, Plugins: []plugin.PluginEntity{{Name: "key-auth", Config: plugintest.Config(tt.cfg)}}})
			req := tt.req()
			req.Header.Set("X-Anonymous-Consumer", "spoofed")
			res := s.Do(req)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d (%s)", res.Status, tt.status, res.Body)
			}
			if tt.body != "" && !strings.HasPrefix(res.Body, tt.body) {
				t.Errorf("body %q, want prefix %q", res.Body, tt.body)
			}
			if tt.www != "" && res.Header.Get("WWW-Authenticate") != tt.www {
				t.Errorf("WWW-Authenticate %q, want %q", res.Header.Get("WWW-Authenticate"), tt.www)
			}
			if res.Status >= 400 {
				if ct := res.Header.Get("Content-Type"); ct != plugin.ContentTypeJSON {
					t.Errorf("content-type %q", ct)
				}
				return
			}
			seen, ok := res.Seen()
			if !ok {
				t.Fatalf("not proxied: %s", res.Body)
			}
			h := http.Header(seen.Header)
			if got := h.Get("X-Consumer-Id"); got != tt.consumer {
				t.Errorf("X-Consumer-ID %q, want %q", got, tt.consumer)
			}
			if got := h.Get("X-Credential-Identifier"); got != tt.credential {
				t.Errorf("X-Credential-Identifier %q, want %q", got, tt.credential)
			}
			if tt.consumer != "" {
				if got := h.Get("X-Anonymous-Consumer"); got != tt.anonymous {
					t.Errorf("X-Anonymous-Consumer %q, want %q", got, tt.anonymous)
				}
			}
			if tt.check != nil {
				tt.check(t, seen)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, raw := range []string{`{"key_names":[]}`, `{"key_names":[""]}`, `{"key_names":"x"}`} {
		if _, err := keyauth.New([]byte(raw), nil); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
}

func get(target string) func() *http.Request {
	return func() *http.Request { return httptest.NewRequest("GET", target, nil) }
}

func withHeader(target, k, v string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.Header.Set(k, v)
		return r
	}
}
