package proxycache

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

func config(mod func(*Config)) Config {
	c := Config{ResponseCode: []int{200, 301, 404}, RequestMethod: []string{"GET", "HEAD"}, ContentType: []string{"text/plain", "application/json"},
		CacheTTL: 300, Strategy: "memory", ResponseHeaders: ResponseHeaders{Age: true, XCacheStatus: true, XCacheKey: true}}
	c.Memory.DictionaryName = "kong_db_cache"
	if mod != nil {
		mod(&c)
	}
	return c
}

type counter struct{ n atomic.Int32 }

func (u *counter) handler(ct string, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := u.n.Add(1)
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "body %d", n)
	})
}

func TestProxyCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := nowFunc
	nowFunc = func() time.Time { return now }
	defer func() { nowFunc = old }()
	storage := 600 // keeps entries past cache_ttl so they can be refreshed

	up := &counter{}
	s := plugintest.New(t, plugintest.Options{Upstream: up.handler("application/json", 200), Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(config(func(c *Config) { c.VaryQueryParams = []string{"v"}; c.StorageTTL = &storage }))}}})
	steps := []struct {
		target, status, body, age string
		advance                   time.Duration
	}{
		{"/a?v=1", "Miss", "body 1", "", 0},
		{"/a?v=1&other=x", "Hit", "body 1", "5", 5 * time.Second},
		{"/a?v=2", "Miss", "body 2", "", 0},
		{"/a?v=1", "Refresh", "body 3", "", 301 * time.Second},
		{"/a?v=1", "Hit", "body 3", "0", 0},
	}
	var key string
	for i, st := range steps {
		now = now.Add(st.advance)
		res := s.Do(httptest.NewRequest("GET", st.target, nil))
		if res.Header.Get("X-Cache-Status") != st.status || res.Body != st.body || res.Header.Get("Age") != st.age {
			t.Fatalf("step %d %s: status %q body %q age %q; want %q %q %q", i+1, st.target, res.Header.Get("X-Cache-Status"), res.Body, res.Header.Get("Age"), st.status, st.body, st.age)
		}
		if i == 0 {
			key = res.Header.Get("X-Cache-Key")
			if len(key) != 64 {
				t.Errorf("cache key %q", key)
			}
		}
		if i == 1 && res.Header.Get("X-Cache-Key") != key {
			t.Errorf("hit key %q, want %q", res.Header.Get("X-Cache-Key"), key)
		}
		if res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("step %d: content-type %q", i+1, res.Header.Get("Content-Type"))
		}
	}
}

func TestBypass(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		method string
		header map[string]string
		ct     string
		code   int
	}{
		{"method", config(nil), "POST", nil, "application/json", 200},
		{"status", config(nil), "GET", nil, "application/json", 500},
		{"content type", config(nil), "GET", nil, "text/html", 200},
		{"no-store with cache_control", config(func(c *Config) { c.CacheControl = true }), "GET", map[string]string{"Cache-Control": "no-store"}, "application/json", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &counter{}
			s := plugintest.New(t, plugintest.Options{Upstream: up.handler(tt.ct, tt.code), Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(tt.cfg)}}})
			for i := 0; i < 2; i++ {
				r := httptest.NewRequest(tt.method, "/b", nil)
				for k, v := range tt.header {
					r.Header.Set(k, v)
				}
				res := s.Do(r)
				if res.Header.Get("X-Cache-Status") != "Bypass" {
					t.Fatalf("request %d: X-Cache-Status %q", i+1, res.Header.Get("X-Cache-Status"))
				}
			}
			if up.n.Load() != 2 {
				t.Errorf("upstream calls %d, want 2", up.n.Load())
			}
		})
	}
}

func TestContentTypeWithParameters(t *testing.T) {
	up := &counter{}
	s := plugintest.New(t, plugintest.Options{Upstream: up.handler("application/json; charset=utf-8", 200), Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(config(nil))}}})
	s.Do(httptest.NewRequest("GET", "/c", nil))
	if res := s.Do(httptest.NewRequest("GET", "/c", nil)); res.Header.Get("X-Cache-Status") != "Hit" {
		t.Errorf("status %q", res.Header.Get("X-Cache-Status"))
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{config(func(c *Config) { c.Strategy = "redis" }), config(func(c *Config) { c.CacheTTL = 0 })} {
		if _, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(c)}}}); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
