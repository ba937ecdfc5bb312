package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// kongError is the body of kong.response.error / exit answers.
type kongError struct {
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// TestPlugins configures consumers, key-auth credentials, acl groups and
// key-auth, acl, rate-limiting (redis) and request-transformer plugins
// through the control plane's API, and checks the traffic through a
// runtime: Kong's status codes, messages and headers at the client, and
// what the upstream sees.
func TestPlugins(t *testing.T) {
	e := newGatewayEnv(t, "plugins")
	up := newEcho(t, "up")
	e.create(t, "services", map[string]any{"name": "echo", "url": up.URL})

	// Consumers with their credentials and groups.
	alice := e.create(t, "consumers", map[string]any{"username": "alice", "custom_id": "a-1"})
	e.create(t, "consumers", map[string]any{"username": "bob"})
	aliceKey := e.create(t, "consumers/alice/key-auth", map[string]any{"key": "alice-secret-key"})
	e.create(t, "consumers/bob/key-auth", map[string]any{"key": "bob-secret-key"})
	e.create(t, "consumers/alice/acls", map[string]any{"group": "gold"})
	e.create(t, "consumers/alice/acls", map[string]any{"group": "early"})
	e.create(t, "consumers/bob/acls", map[string]any{"group": "silver"})

	// /auth: key-auth then acl, allowing gold only.
	e.create(t, "services/echo/routes", map[string]any{"name": "auth", "paths": []string{"/auth"}})
	e.create(t, "routes/auth/plugins", map[string]any{"name": "key-auth"})
	e.create(t, "routes/auth/plugins", map[string]any{"name": "acl", "config": map[string]any{"allow": []string{"gold"}}})

	// /rl: three requests an hour per X-Client value, counted in Redis.
	rl := e.create(t, "services/echo/routes", map[string]any{"name": "rl", "paths": []string{"/rl"}})
	e.create(t, "routes/rl/plugins", map[string]any{"name": "rate-limiting", "config": map[string]any{
		"hour": 3, "policy": "redis", "limit_by": "header", "header_name": "x-client",
		"redis": map[string]any{"host": "127.0.0.1", "port": 6379},
	}})

	// /rt: request-transformer.
	e.create(t, "services/echo/routes", map[string]any{"name": "rt", "paths": []string{"/rt"}})
	e.create(t, "routes/rt/plugins", map[string]any{"name": "request-transformer", "config": map[string]any{
		"add":    map[string]any{"headers": []string{"x-added:yes"}},
		"remove": map[string]any{"querystring": []string{"secret"}, "headers": []string{"x-drop"}},
	}})
	e.converge(t)

	get := func(t *testing.T, path string, header http.Header) (*http.Response, string) {
		t.Helper()
		req := mustRequest(t, "GET", e.proxyURL(path), nil)
		for k, v := range header {
			req.Header[k] = v
		}
		return e.send(t, req)
	}

	t.Run("key-auth and acl", func(t *testing.T) {
		tests := []struct {
			name        string
			header      http.Header
			wantStatus  int
			wantMessage string
		}{
			{"no key", nil, 401, "No API key found in request"},
			{"wrong key", http.Header{"Apikey": {"nope"}}, 401, "Unauthorized"},
			{"consumer outside the allowed group", http.Header{"Apikey": {"bob-secret-key"}}, 403, "You cannot consume this service"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res, body := get(t, "/auth/x", tt.header)
				var msg kongError
				if err := json.Unmarshal([]byte(body), &msg); err != nil {
					t.Fatalf("%d %q is not a Kong error body: %v", res.StatusCode, body, err)
				}
				if res.StatusCode != tt.wantStatus || msg.Message != tt.wantMessage || msg.RequestID == "" {
					t.Fatalf("got %d %s, want %d %q with a request_id", res.StatusCode, body, tt.wantStatus, tt.wantMessage)
				}
				if tt.wantStatus == 401 && res.Header.Get("WWW-Authenticate") != "Key" {
					t.Errorf("WWW-Authenticate = %q, want Key", res.Header.Get("WWW-Authenticate"))
				}
			})
		}
		t.Run("the right key in the header or the query", func(t *testing.T) {
			for _, path := range []string{"/auth/x", "/auth/x?apikey=alice-secret-key"} {
				var h http.Header
				if !strings.Contains(path, "apikey") {
					h = http.Header{"Apikey": {"alice-secret-key"}}
				}
				res, body := get(t, path, h)
				if res.StatusCode != 200 {
					t.Fatalf("%s: %d %s", path, res.StatusCode, body)
				}
				s := decodeSeen(t, body)
				want := map[string]string{
					"X-Consumer-Id": alice["id"].(string), "X-Consumer-Username": "alice", "X-Consumer-Custom-Id": "a-1",
					"X-Credential-Identifier": aliceKey["id"].(string),
				}
				for k, v := range want {
					if got := strings.Join(s.Header[k], ","); got != v {
						t.Errorf("%s: upstream header %s = %q, want %q", path, k, got, v)
					}
				}
				// Kong joins the groups with ", " in the order it reads
				// them, which it does not define: compare as a set.
				groups := strings.Split(strings.Join(s.Header["X-Consumer-Groups"], ","), ", ")
				slices.Sort(groups)
				if !slices.Equal(groups, []string{"early", "gold"}) {
					t.Errorf("%s: X-Consumer-Groups = %q, want early and gold", path, s.Header["X-Consumer-Groups"])
				}
				if _, anon := s.Header["X-Anonymous-Consumer"]; anon {
					t.Errorf("%s: X-Anonymous-Consumer sent for an authenticated consumer", path)
				}
			}
		})
	})

	t.Run("acl deny list hiding the groups", func(t *testing.T) {
		e.create(t, "services/echo/routes", map[string]any{"name": "deny", "paths": []string{"/deny"}})
		e.create(t, "routes/deny/plugins", map[string]any{"name": "key-auth"})
		e.create(t, "routes/deny/plugins", map[string]any{"name": "acl", "config": map[string]any{"deny": []string{"silver"}, "hide_groups_header": true}})
		e.converge(t)
		res, body := get(t, "/deny/x", http.Header{"Apikey": {"bob-secret-key"}})
		if res.StatusCode != 403 || !strings.Contains(body, "You cannot consume this service") {
			t.Fatalf("a denied group: %d %s", res.StatusCode, body)
		}
		res, body = get(t, "/deny/x", http.Header{"Apikey": {"alice-secret-key"}})
		if res.StatusCode != 200 {
			t.Fatalf("a group not denied: %d %s", res.StatusCode, body)
		}
		if s := decodeSeen(t, body); s.Header["X-Consumer-Groups"] != nil || s.Header["X-Consumer-Username"] == nil {
			t.Fatalf("hide_groups_header: the upstream saw groups %q, consumer %q", s.Header["X-Consumer-Groups"], s.Header["X-Consumer-Username"])
		}
	})

	t.Run("rate-limiting with the redis policy", func(t *testing.T) {
		// A window that turns over mid-test would reset the counter:
		// keep clear of the top of the hour.
		if now := time.Now(); now.Minute() == 59 && now.Second() > 50 {
			time.Sleep(time.Duration(61-now.Second()) * time.Second)
		}
		client := uuid.NewString()
		for i := 1; i <= 3; i++ {
			res, body := get(t, "/rl/x", http.Header{"X-Client": {client}})
			if res.StatusCode != 200 {
				t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
			}
			remaining := strconv.Itoa(3 - i)
			for k, v := range map[string]string{"X-Ratelimit-Limit-Hour": "3", "X-Ratelimit-Remaining-Hour": remaining,
				"Ratelimit-Limit": "3", "Ratelimit-Remaining": remaining} {
				if got := res.Header.Get(k); got != v {
					t.Errorf("request %d: %s = %q, want %q", i, k, got, v)
				}
			}
			if reset, err := strconv.Atoi(res.Header.Get("Ratelimit-Reset")); err != nil || reset < 1 || reset > 3600 {
				t.Errorf("request %d: RateLimit-Reset = %q, want 1..3600 seconds", i, res.Header.Get("Ratelimit-Reset"))
			}
		}
		res, body := get(t, "/rl/x", http.Header{"X-Client": {client}})
		var msg kongError
		if err := json.Unmarshal([]byte(body), &msg); err != nil {
			t.Fatalf("%d %q is not a Kong error body: %v", res.StatusCode, body, err)
		}
		if res.StatusCode != 429 || msg.Message != "API rate limit exceeded" {
			t.Fatalf("4th request: %d %s, want 429 API rate limit exceeded", res.StatusCode, body)
		}
		if res.Header.Get("X-Ratelimit-Remaining-Hour") != "0" || res.Header.Get("Ratelimit-Remaining") != "0" {
			t.Errorf("429 headers: %v", res.Header)
		}
		if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
			t.Errorf("Retry-After = %q, want 1..3600 seconds", res.Header.Get("Retry-After"))
		}
		// Another client has its own budget.
		if res, body := get(t, "/rl/x", http.Header{"X-Client": {client + "-other"}}); res.StatusCode != 200 {
			t.Fatalf("another client was limited: %d %s", res.StatusCode, body)
		}
		// The counter lives in Redis under Kong's key, scoped by route.
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, "ratelimit:"+rl["id"].(string)+":*:"+client+":*:hour").Result()
		if err != nil {
			t.Fatalf("redis: %v", err)
		}
		if len(keys) != 1 {
			t.Fatalf("redis keys for the client: %v, want one", keys)
		}
		if n, err := rdb.Get(ctx, keys[0]).Int(); err != nil || n < 3 {
			t.Fatalf("redis counter %s = %d (%v), want at least 3", keys[0], n, err)
		}
	})

	t.Run("request-transformer", func(t *testing.T) {
		res, body := get(t, "/rt/x?secret=s3&keep=1", http.Header{"X-Drop": {"gone"}, "X-Stay": {"here"}})
		if res.StatusCode != 200 {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		s := decodeSeen(t, body)
		if s.RawQuery != "keep=1" {
			t.Errorf("upstream query %q, want keep=1", s.RawQuery)
		}
		for k, v := range map[string]string{"X-Added": "yes", "X-Drop": "", "X-Stay": "here"} {
			if got := strings.Join(s.Header[k], ","); got != v {
				t.Errorf("upstream header %s = %q, want %q", k, got, v)
			}
		}
		// The other operations, in Kong's order within each part:
		// remove, rename, replace, add, append.
		e.create(t, "services/echo/routes", map[string]any{"name": "rt-all", "paths": []string{"/rt-all"}})
		e.create(t, "routes/rt-all/plugins", map[string]any{"name": "request-transformer", "config": map[string]any{
			"http_method": "POST",
			"rename":      map[string]any{"headers": []string{"x-old:x-new"}, "querystring": []string{"q:query"}},
			"replace":     map[string]any{"headers": []string{"x-mode:replaced", "x-absent:never"}, "body": []string{"kind:replaced"}},
			"add":         map[string]any{"body": []string{"added:yes"}},
			"append":      map[string]any{"headers": []string{"x-list:two"}},
		}})
		e.converge(t)
		req := mustRequest(t, "GET", e.proxyURL("/rt-all/x?q=1"), strings.NewReader(`{"kind":"original","keep":1}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Old", "v")
		req.Header.Set("X-Mode", "original")
		req.Header.Set("X-List", "one")
		res, body = e.send(t, req)
		if res.StatusCode != 200 {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		s = decodeSeen(t, body)
		var sent map[string]any
		if err := json.Unmarshal([]byte(s.Body), &sent); err != nil {
			t.Fatalf("upstream body %q: %v", s.Body, err)
		}
		if s.Method != "POST" || s.RawQuery != "query=1" || sent["kind"] != "replaced" || sent["added"] != "yes" || sent["keep"] != float64(1) {
			t.Errorf("upstream saw %s ?%s body %s", s.Method, s.RawQuery, s.Body)
		}
		for k, v := range map[string]string{"X-New": "v", "X-Old": "", "X-Mode": "replaced", "X-Absent": "", "X-List": "one,two"} {
			if got := strings.Join(s.Header[k], ","); got != v {
				t.Errorf("upstream header %s = %q, want %q", k, got, v)
			}
		}

		// add only adds a header that is absent.
		res, body = get(t, "/rt/x", http.Header{"X-Added": {"mine"}})
		if s := decodeSeen(t, body); res.StatusCode != 200 || strings.Join(s.Header["X-Added"], ",") != "mine" {
			t.Errorf("add replaced a present header: %d %v", res.StatusCode, s.Header["X-Added"])
		}
	})

	t.Run("scoping precedence", func(t *testing.T) {
		// One request-transformer per scope, each naming its scope: the
		// most specific instance that applies runs, alone.
		other := newEcho(t, "other")
		e.create(t, "services", map[string]any{"name": "other", "url": other.URL})
		e.create(t, "services/other/routes", map[string]any{"name": "other", "paths": []string{"/other"}})
		e.create(t, "services/echo/routes", map[string]any{"name": "scoped", "paths": []string{"/scoped"}})
		e.create(t, "services/echo/routes", map[string]any{"name": "svc-only", "paths": []string{"/svc-only"}})
		e.create(t, "routes/scoped/plugins", map[string]any{"name": "key-auth", "config": map[string]any{"hide_credentials": true}})
		scope := func(name string) map[string]any {
			return map[string]any{"name": "request-transformer", "config": map[string]any{"add": map[string]any{"headers": []string{"x-scope:" + name}}}}
		}
		e.create(t, "plugins", scope("global"))
		e.create(t, "services/echo/plugins", scope("service"))
		e.create(t, "routes/scoped/plugins", scope("route"))
		rc := scope("route+consumer")
		rc["consumer"] = map[string]any{"id": alice["id"]}
		e.create(t, "routes/scoped/plugins", rc)
		e.converge(t)

		tests := []struct {
			name, path, key, want string
		}{
			{"route and consumer", "/scoped/x", "alice-secret-key", "route+consumer"},
			{"route, another consumer", "/scoped/x", "bob-secret-key", "route"},
			{"service", "/svc-only/x", "", "service"},
			{"global", "/other/x", "", "global"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := http.Header{}
				if tt.key != "" {
					h.Set("apikey", tt.key)
				}
				res, body := get(t, tt.path, h)
				if res.StatusCode != 200 {
					t.Fatalf("%d %s", res.StatusCode, body)
				}
				s := decodeSeen(t, body)
				if got := strings.Join(s.Header["X-Scope"], ","); got != tt.want {
					t.Fatalf("X-Scope = %q, want %q", got, tt.want)
				}
				// hide_credentials: the key never reaches the upstream.
				if _, ok := s.Header["Apikey"]; ok {
					t.Fatalf("the upstream saw the API key")
				}
			})
		}
		// hide_credentials strips the key from the query string too.
		res, body := get(t, "/scoped/x?apikey=alice-secret-key&keep=1", nil)
		if s := decodeSeen(t, body); res.StatusCode != 200 || s.RawQuery != "keep=1" {
			t.Fatalf("key in the query: %d, upstream query %q, want keep=1", res.StatusCode, s.RawQuery)
		}
	})

	t.Run("anonymous consumer", func(t *testing.T) {
		guest := e.create(t, "consumers", map[string]any{"username": "guest"})
		e.create(t, "services/echo/routes", map[string]any{"name": "anon", "paths": []string{"/anon"}})
		e.create(t, "routes/anon/plugins", map[string]any{"name": "key-auth", "config": map[string]any{"anonymous": guest["id"]}})
		e.converge(t)
		tests := []struct {
			name, key, wantUser, wantAnon string
		}{
			{"no key", "", "guest", "true"},
			{"a wrong key", "nope", "guest", "true"},
			{"a valid key", "alice-secret-key", "alice", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := http.Header{}
				if tt.key != "" {
					h.Set("apikey", tt.key)
				}
				res, body := get(t, "/anon/x", h)
				if res.StatusCode != 200 {
					t.Fatalf("%d %s", res.StatusCode, body)
				}
				s := decodeSeen(t, body)
				if user, anon := strings.Join(s.Header["X-Consumer-Username"], ","), strings.Join(s.Header["X-Anonymous-Consumer"], ","); user != tt.wantUser || anon != tt.wantAnon {
					t.Fatalf("upstream saw consumer %q anonymous %q, want %q %q", user, anon, tt.wantUser, tt.wantAnon)
				}
			})
		}
	})

	t.Run("rate-limiting state", func(t *testing.T) {
		// Keep clear of the top of the hour, where the window turns.
		if now := time.Now(); now.Minute() == 59 && now.Second() > 50 {
			time.Sleep(time.Duration(61-now.Second()) * time.Second)
		}
		dead := freeAddr(t) // nothing listens: a Redis that is down
		host, port, _ := strings.Cut(dead, ":")
		portN, _ := strconv.Atoi(port)
		for _, r := range []struct {
			name   string
			config map[string]any
		}{
			{"local", map[string]any{"hour": 3, "policy": "local", "limit_by": "ip"}},
			{"tolerant", map[string]any{"hour": 3, "policy": "redis", "redis": map[string]any{"host": host, "port": portN, "timeout": 200}}},
			{"intolerant", map[string]any{"hour": 3, "policy": "redis", "fault_tolerant": false, "redis": map[string]any{"host": host, "port": portN, "timeout": 200}}},
		} {
			e.create(t, "services/echo/routes", map[string]any{"name": "rl-" + r.name, "paths": []string{"/rl-" + r.name}})
			e.create(t, "routes/rl-"+r.name+"/plugins", map[string]any{"name": "rate-limiting", "config": r.config})
		}
		e.converge(t)

		t.Run("local counters survive a reconfiguration", func(t *testing.T) {
			for i := range 2 {
				if res, body := get(t, "/rl-local/x", nil); res.StatusCode != 200 {
					t.Fatalf("request %d: %d %s", i+1, res.StatusCode, body)
				}
			}
			// An unrelated change makes a new configuration; the
			// counters are kept outside it.
			e.create(t, "consumers", map[string]any{"username": "carol"})
			e.converge(t)
			res, _ := get(t, "/rl-local/x", nil)
			if res.StatusCode != 200 || res.Header.Get("X-Ratelimit-Remaining-Hour") != "0" {
				t.Fatalf("3rd request after the change: %d, remaining %q; want 200 and 0", res.StatusCode, res.Header.Get("X-Ratelimit-Remaining-Hour"))
			}
			if res, body := get(t, "/rl-local/x", nil); res.StatusCode != 429 {
				t.Fatalf("4th request after the change: %d %s; the counter was reset", res.StatusCode, body)
			}
		})
		t.Run("redis down, fault tolerant", func(t *testing.T) {
			// Kong lets traffic through without the limit headers.
			for i := range 4 {
				res, body := get(t, "/rl-tolerant/x", nil)
				if res.StatusCode != 200 {
					t.Fatalf("request %d: %d %s", i+1, res.StatusCode, body)
				}
				if v := res.Header.Get("X-Ratelimit-Limit-Hour"); v != "" {
					t.Fatalf("limit headers without a counter: %q", v)
				}
			}
		})
		t.Run("redis down, not fault tolerant", func(t *testing.T) {
			res, body := get(t, "/rl-intolerant/x", nil)
			var msg kongError
			if err := json.Unmarshal([]byte(body), &msg); err != nil {
				t.Fatalf("%d %q is not a Kong error body: %v", res.StatusCode, body, err)
			}
			if res.StatusCode != 500 || msg.Message != "An unexpected error occurred" {
				t.Fatalf("%d %s, want 500 An unexpected error occurred", res.StatusCode, body)
			}
		})
	})
}
