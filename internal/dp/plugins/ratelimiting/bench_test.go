package ratelimiting

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

// keyAuthRateLimit compiles key-auth + rate-limiting(local) for one route
// and returns a function that runs one request's phases.
func keyAuthRateLimit(tb testing.TB) func() int {
	tb.Helper()
	env, err := plugin.NewMemEnv(plugin.MemEnvOptions{
		Consumers: []plugin.Consumer{{ID: "c1", Username: "bench"}},
		KeyAuths:  []plugin.KeyAuthCredential{{ID: "k1", ConsumerID: "c1", Key: "bench-key"}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ka := plugintest.Config(map[string]any{"key_names": []string{"apikey"}, "key_in_header": true, "key_in_query": true, "run_on_preflight": true})
	set, err := plugin.Compile(context.Background(), plugin.CompileOptions{
		Env:    env,
		Routes: []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}},
		Plugins: []plugin.PluginEntity{
			{ID: "p1", Name: "key-auth", Enabled: true, Config: ka},
			{ID: "p2", Name: Name, Enabled: true, Config: plugintest.Config(base(func(c *Config) { c.Minute, c.Hour = f(1e12), f(1e12) }))},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = set.Close() })
	chain := set.Route("r1")
	r := httptest.NewRequest("GET", "/p", nil)
	r.Header.Set("apikey", "bench-key")
	ip := netip.MustParseAddr("10.0.0.1")
	respHeader := make(http.Header, 16)
	return func() int {
		c := plugin.AcquireCtx(r)
		c.ClientIP = ip
		chain.Access(c)
		c.Response.Status = 200
		c.Response.Header = respHeader
		chain.HeaderFilter(c)
		chain.Log(c)
		status := c.Response.Status
		if c.Exited() {
			status = -status
		}
		plugin.ReleaseCtx(c)
		clear(respHeader)
		return status
	}
}

func TestKeyAuthRateLimitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation budget is not meaningful under the race detector")
	}
	run := keyAuthRateLimit(t)
	if s := run(); s != 200 {
		t.Fatalf("status %d", s)
	}
	n := testing.AllocsPerRun(1000, func() { run() })
	if n > 0 {
		t.Errorf("allocs per request = %v, want 0", n)
	}
}

func BenchmarkKeyAuthRateLimitLocal(b *testing.B) {
	run := keyAuthRateLimit(b)
	b.ReportAllocs()
	for b.Loop() {
		if s := run(); s != 200 {
			b.Fatalf("status %d", s)
		}
	}
}
