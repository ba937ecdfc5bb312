package ratelimiting

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

// fixed is 12:00:15 UTC: 45 s left in the minute, 3585 s in the hour.
var fixed = time.Date(2026, 3, 10, 12, 0, 15, 0, time.UTC)

func setClock(t *testing.T, at time.Time) {
	old := nowFunc
	nowFunc = func() time.Time { return at }
	t.Cleanup(func() { nowFunc = old })
}

func f(v float64) *float64 { return &v }
func s(v string) *string   { return &v }

func base(mod func(*Config)) Config {
	c := Config{Minute: f(2), Hour: f(5), LimitBy: "consumer", Policy: "local", FaultTolerant: true,
		Redis: RedisConfig{Port: 6379, Timeout: 2000}, ErrorCode: 429, ErrorMessage: "API rate limit exceeded", SyncRate: -1}
	if mod != nil {
		mod(&c)
	}
	return c
}

func req(ip string) *http.Request {
	r := httptest.NewRequest("GET", "/p", nil)
	r.RemoteAddr = ip + ":1234"
	return r
}

func wantHeaders(t *testing.T, h http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestLocalLimits(t *testing.T) {
	setClock(t, fixed)
	st := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(base(nil))}}})
	steps := []struct {
		status int
		hdr    map[string]string
	}{
		{200, map[string]string{"X-RateLimit-Limit-Minute": "2", "X-RateLimit-Remaining-Minute": "1", "X-RateLimit-Limit-Hour": "5", "X-RateLimit-Remaining-Hour": "4",
			"RateLimit-Limit": "2", "RateLimit-Remaining": "1", "RateLimit-Reset": "45", "Retry-After": ""}},
		{200, map[string]string{"X-RateLimit-Remaining-Minute": "0", "X-RateLimit-Remaining-Hour": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "45"}},
		{429, map[string]string{"X-RateLimit-Remaining-Minute": "0", "X-RateLimit-Remaining-Hour": "3", "RateLimit-Limit": "2", "RateLimit-Remaining": "0", "RateLimit-Reset": "45", "Retry-After": "45"}},
	}
	for i, step := range steps {
		res := st.Do(req("10.0.0.1"))
		if res.Status != step.status {
			t.Fatalf("request %d: status %d, want %d", i+1, res.Status, step.status)
		}
		wantHeaders(t, res.Header, step.hdr)
		if step.status == 429 && !strings.HasPrefix(res.Body, plugintest.ErrorBody("API rate limit exceeded")) {
			t.Errorf("body %q", res.Body)
		}
	}
	// Another client has its own counter (consumer falls back to the IP).
	if res := st.Do(req("10.0.0.2")); res.Status != 200 {
		t.Errorf("other ip: %d", res.Status)
	}
	// The next minute starts over for the minute, not for the hour.
	setClock(t, fixed.Add(time.Minute))
	res := st.Do(req("10.0.0.1"))
	if res.Status != 200 {
		t.Fatalf("next minute: %d", res.Status)
	}
	wantHeaders(t, res.Header, map[string]string{"X-RateLimit-Remaining-Minute": "1", "X-RateLimit-Remaining-Hour": "2"})
}

func TestMostRestrictivePeriod(t *testing.T) {
	setClock(t, fixed)
	st := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(base(func(c *Config) {
		c.Second, c.Minute, c.Hour = f(10), f(10), f(100)
	}))}}})
	res := st.Do(req("10.0.0.1"))
	// Equal remaining: the longer window wins.
	wantHeaders(t, res.Header, map[string]string{"RateLimit-Limit": "10", "RateLimit-Remaining": "9", "RateLimit-Reset": "45", "X-RateLimit-Limit-Second": "10"})
}

func TestLimitByAndOptions(t *testing.T) {
	setClock(t, fixed)
	tests := []struct {
		name  string
		cfg   Config
		reqs  []*http.Request
		codes []int
		check func(t *testing.T, last plugintest.Result)
	}{
		{"ip", base(func(c *Config) { c.LimitBy = "ip"; c.Minute = f(1) }),
			[]*http.Request{req("10.1.0.1"), req("10.1.0.2"), req("10.1.0.1")}, []int{200, 200, 429}, nil},
		{"header", base(func(c *Config) { c.LimitBy = "header"; c.HeaderName = s("x-tenant"); c.Minute = f(1) }),
			[]*http.Request{withHeader(req("10.2.0.1"), "X-Tenant", "a"), withHeader(req("10.2.0.1"), "X-Tenant", "b"), withHeader(req("10.2.0.9"), "X-Tenant", "a"), req("10.2.0.1"), req("10.2.0.1")},
			[]int{200, 200, 429, 200, 429}, nil},
		{"path", base(func(c *Config) { c.LimitBy = "path"; c.Path = s("/p"); c.Minute = f(1) }),
			[]*http.Request{req("10.3.0.1"), req("10.3.0.2")}, []int{200, 429}, nil},
		{"service falls back to ip without a service", base(func(c *Config) { c.LimitBy = "service"; c.Minute = f(1) }),
			[]*http.Request{req("10.4.0.1"), req("10.4.0.2"), req("10.4.0.1")}, []int{200, 200, 429}, nil},
		{"hide client headers", base(func(c *Config) { c.LimitBy = "ip"; c.Minute = f(1); c.HideClientHeaders = true }),
			[]*http.Request{req("10.5.0.1"), req("10.5.0.1")}, []int{200, 429}, func(t *testing.T, last plugintest.Result) {
				for k := range last.Header {
					if strings.Contains(strings.ToLower(k), "ratelimit") || k == "Retry-After" {
						t.Errorf("header %s leaked", k)
					}
				}
			}},
		{"custom error", base(func(c *Config) { c.LimitBy = "ip"; c.Minute = f(1); c.ErrorCode = 403; c.ErrorMessage = "slow down" }),
			[]*http.Request{req("10.6.0.1"), req("10.6.0.1")}, []int{200, 403}, func(t *testing.T, last plugintest.Result) {
				if !strings.HasPrefix(last.Body, plugintest.ErrorBody("slow down")) {
					t.Errorf("body %q", last.Body)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(tt.cfg)}}})
			var last plugintest.Result
			for i, r := range tt.reqs {
				last = st.Do(r)
				if last.Status != tt.codes[i] {
					t.Fatalf("request %d: %d, want %d", i+1, last.Status, tt.codes[i])
				}
			}
			if tt.check != nil {
				tt.check(t, last)
			}
		})
	}
}

func withHeader(r *http.Request, k, v string) *http.Request {
	r.Header.Set(k, v)
	return r
}

func TestLimitByConsumerWithKeyAuth(t *testing.T) {
	setClock(t, fixed)
	env := plugin.MemEnvOptions{
		Consumers: []plugin.Consumer{{ID: "c1", Username: "a"}, {ID: "c2", Username: "b"}},
		KeyAuths:  []plugin.KeyAuthCredential{{ID: "k1", ConsumerID: "c1", Key: "ka"}, {ID: "k2", ConsumerID: "c2", Key: "kb"}},
	}
	ka := plugintest.Config(map[string]any{"key_names": []string{"apikey"}, "key_in_header": true, "key_in_query": true, "run_on_preflight": true})
	st := plugintest.New(t, plugintest.Options{Env: env, Plugins: []plugin.PluginEntity{
		{Name: "key-auth", Config: ka},
		{Name: Name, Config: plugintest.Config(base(func(c *Config) { c.Minute = f(1) }))},
		// Consumer c2 gets a more generous consumer-scoped limit.
		{ID: "rl-c2", Name: Name, ConsumerID: "c2", Config: plugintest.Config(base(func(c *Config) { c.Minute = f(3) }))},
	}})
	codes := []struct {
		key  string
		want int
	}{{"ka", 200}, {"ka", 429}, {"kb", 200}, {"kb", 200}, {"kb", 200}, {"kb", 429}}
	for i, c := range codes {
		r := req("10.9.9.9") // same IP: counters must be per consumer
		r.Header.Set("apikey", c.key)
		if res := st.Do(r); res.Status != c.want {
			t.Fatalf("request %d (%s): %d, want %d", i+1, c.key, res.Status, c.want)
		}
	}
}

func TestCountersSurviveRecompile(t *testing.T) {
	setClock(t, fixed)
	state := plugin.NewStateRegistry()
	opts := plugintest.Options{Env: plugin.MemEnvOptions{State: state}, Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(base(func(c *Config) { c.LimitBy = "ip"; c.Minute = f(1) }))}}}
	if res := plugintest.New(t, opts).Do(req("10.7.0.1")); res.Status != 200 {
		t.Fatal(res.Status)
	}
	opts.Plugins[0].Config = plugintest.Config(base(func(c *Config) { c.LimitBy = "ip"; c.Minute = f(1) }))
	if res := plugintest.New(t, opts).Do(req("10.7.0.1")); res.Status != 429 {
		t.Fatalf("after recompile: %d, want 429", res.Status)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no limit", base(func(c *Config) { c.Minute, c.Hour = nil, nil }), "at least one of these fields"},
		{"order", base(func(c *Config) { c.Second = f(10) }), "cannot be lower than the limit for a smaller period"},
		{"zero", base(func(c *Config) { c.Minute = f(0) }), "minute must be greater than 0"},
		{"header without name", base(func(c *Config) { c.LimitBy = "header" }), "header_name is required"},
		{"path without path", base(func(c *Config) { c.LimitBy = "path" }), "path is required"},
		{"cluster policy", base(func(c *Config) { c.Policy = "cluster" }), `policy "cluster" is not supported`},
		{"redis without host", base(func(c *Config) { c.Policy = "redis" }), "redis.host is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plugintest.Compile(plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(tt.cfg)}}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRedisPolicy(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 is required (.ci/run starts it): %v", err)
	}
	setClock(t, time.Now())
	routeID := uuid.NewString()
	cfg := base(func(c *Config) { c.Policy = "redis"; c.Redis.Host = s("127.0.0.1"); c.LimitBy = "ip" })
	st := plugintest.New(t, plugintest.Options{
		Plugins: []plugin.PluginEntity{{Name: Name, RouteID: routeID, Config: plugintest.Config(cfg)}},
		Routes:  []plugin.RouteRef{{ID: routeID}}, RouteID: routeID,
	})
	for i, want := range []int{200, 200, 429} {
		res := st.Do(req("10.8.0.1"))
		if res.Status != want {
			t.Fatalf("request %d: %d, want %d (%s)", i+1, res.Status, want, res.Body)
		}
		if want == 200 && res.Header.Get("X-RateLimit-Remaining-Minute") != []string{"1", "0"}[i] {
			t.Errorf("request %d: remaining %q", i+1, res.Header.Get("X-RateLimit-Remaining-Minute"))
		}
	}
	starts := periodStarts(nowFunc())
	key := "ratelimit:" + routeID + ":" + zeroUUID + ":10.8.0.1:" + itoa(starts[minute]) + ":minute"
	ctx := context.Background()
	if n, err := rdb.Get(ctx, key).Int(); err != nil || n != 2 {
		t.Errorf("redis %s = %d, %v; want 2", key, n, err)
	}
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("ttl %v", ttl)
	}
	keys, _ := rdb.Keys(ctx, "ratelimit:"+routeID+":*").Result()
	rdb.Del(ctx, keys...)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestRedisDown(t *testing.T) {
	setClock(t, fixed)
	for _, tt := range []struct {
		faultTolerant bool
		want          int
	}{{true, 200}, {false, 500}} {
		cfg := base(func(c *Config) {
			c.Policy = "redis"
			c.Redis.Host = s("127.0.0.1")
			c.Redis.Port = 1 // nothing listens there
			c.Redis.Timeout = 200
			c.FaultTolerant = tt.faultTolerant
		})
		st := plugintest.New(t, plugintest.Options{Plugins: []plugin.PluginEntity{{Name: Name, Config: plugintest.Config(cfg)}}})
		res := st.Do(req("10.8.1.1"))
		if res.Status != tt.want {
			t.Fatalf("fault_tolerant=%v: %d, want %d", tt.faultTolerant, res.Status, tt.want)
		}
		if res.Header.Get("X-RateLimit-Limit-Minute") != "" {
			t.Errorf("headers sent without usage")
		}
		if tt.want == 500 && !strings.HasPrefix(res.Body, plugintest.ErrorBody("An unexpected error occurred")) {
			t.Errorf("body %q", res.Body)
		}
	}
}
