package cors_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/cors"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/requesttermination"
)

func f(v float64) *float64 { return &v }
func b(v bool) *bool       { return &v }

func preflight(origin string, extra map[string]string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("OPTIONS", "/", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "GET")
		for k, v := range extra {
			r.Header.Set(k, v)
		}
		return r
	}
}

func simple(origin string) func() *http.Request {
	return func() *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return r
	}
}

func TestCORS(t *testing.T) {
	tests := []struct {
		name     string
		cfg      cors.Config
		req      func() *http.Request
		status   int
		proxied  bool
		want     map[string]string
		wantBody string
	}{
		{"preflight defaults", cors.Config{}, preflight("http://a.test", map[string]string{"Access-Control-Request-Headers": "X-A,X-B"}), 200, false, map[string]string{
			"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT",
			"Access-Control-Allow-Headers": "X-A,X-B", "Access-Control-Max-Age": "", "Access-Control-Allow-Credentials": "", "Vary": ""}, ""},
		{"preflight full config", cors.Config{Origins: []string{"http://a.test", "http://b.test"}, Headers: []string{"X-H"}, Methods: []string{"GET", "POST"}, MaxAge: f(3600), Credentials: true, PrivateNetwork: true},
			preflight("http://b.test", map[string]string{"Access-Control-Request-Private-Network": "true"}), 200, false, map[string]string{
				"Access-Control-Allow-Origin": "http://b.test", "Access-Control-Allow-Methods": "GET,POST", "Access-Control-Allow-Headers": "X-H",
				"Access-Control-Max-Age": "3600", "Access-Control-Allow-Credentials": "true", "Access-Control-Allow-Private-Network": "true", "Vary": "Origin"}, ""},
		{"preflight origin not allowed", cors.Config{Origins: []string{"http://a.test", "http://b.test"}}, preflight("http://evil.test", nil), 200, false,
			map[string]string{"Access-Control-Allow-Origin": "", "Vary": "Origin"}, ""},
		{"preflight continue", cors.Config{PreflightContinue: true}, preflight("http://a.test", nil), 200, true,
			map[string]string{"Access-Control-Allow-Origin": ""}, ""},
		{"simple wildcard", cors.Config{ExposedHeaders: []string{"X-E1", "X-E2"}}, simple("http://a.test"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "X-E1,X-E2", "Vary": ""}, ""},
		{"single origin echoed verbatim", cors.Config{Origins: []string{"http://a.test"}}, simple("http://other.test"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "http://a.test", "Vary": "Origin"}, ""},
		{"regex origin", cors.Config{Origins: []string{`http://.*\.example\.test`, "http://x.test"}}, simple("http://api.example.test"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "http://api.example.test", "Vary": "Origin"}, ""},
		{"regex anchored at end", cors.Config{Origins: []string{`http://.*\.example\.test`, "http://x.test"}}, simple("http://api.example.test.evil"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": ""}, ""},
		{"plain origin normalized", cors.Config{Origins: []string{"HTTP://X.test:80", "http://y.test"}}, simple("http://x.test"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "http://x.test"}, ""},
		{"credentials with wildcard echo origin", cors.Config{Credentials: true}, simple("http://c.test"), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "http://c.test", "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}, ""},
		{"origin absent not allowed", cors.Config{AllowOriginAbsent: b(false)}, simple(""), 200, true,
			map[string]string{"Access-Control-Allow-Origin": ""}, ""},
		{"origin absent allowed", cors.Config{}, simple(""), 200, true,
			map[string]string{"Access-Control-Allow-Origin": "*"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "cors", Config: plugintest.Config(tt.cfg)}}})
			res := s.Do(tt.req())
			if res.Status != tt.status {
				t.Fatalf("status %d", res.Status)
			}
			if _, proxied := res.Seen(); proxied != tt.proxied {
				t.Fatalf("proxied %v, want %v", proxied, tt.proxied)
			}
			if !tt.proxied && res.Body != "" {
				t.Errorf("preflight body %q", res.Body)
			}
			for k, v := range tt.want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHeadersOnErrorResponses(t *testing.T) {
	// cors (2000) runs before request-termination (2); its 401 still
	// gets CORS headers because cors was collected before the exit.
	s := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{
		{Name: "cors", Config: plugintest.Config(cors.Config{Origins: []string{"http://a.test"}})},
		{Name: "request-termination", Config: plugintest.Config(map[string]any{"status_code": 401})},
	}})
	res := s.Do(simple("http://a.test")())
	if res.Status != 401 || res.Header.Get("Access-Control-Allow-Origin") != "http://a.test" {
		t.Errorf("got %d %v", res.Status, res.Header)
	}
}

func TestInvalidRegex(t *testing.T) {
	if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: "cors", Config: plugintest.Config(cors.Config{Origins: []string{"(("}})}}}); err == nil {
		t.Error("invalid regex accepted")
	}
}
