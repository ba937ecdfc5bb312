package all_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/all"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
)

// kongPriorities is Kong's PRIORITY table for the bundled plugins.
var kongPriorities = map[string]int{
	"correlation-id": 100001, "bot-detection": 2500, "cors": 2000, "jwt": 1450, "key-auth": 1250,
	"basic-auth": 1100, "hmac-auth": 1030, "ip-restriction": 990, "request-size-limiting": 951,
	"acl": 950, "rate-limiting": 910, "request-transformer": 801, "response-transformer": 800,
	"proxy-cache": 100, "prometheus": 13, "http-log": 12, "file-log": 9, "request-termination": 2,
}

func TestRegisteredWithKongPriorities(t *testing.T) {
	for name, prio := range kongPriorities {
		reg, ok := plugin.DefaultRegistry.Lookup(name)
		if !ok {
			t.Errorf("%s not registered", name)
			continue
		}
		if reg.Priority != prio {
			t.Errorf("%s priority %d, want %d", name, reg.Priority, prio)
		}
	}
	if got := len(plugin.DefaultRegistry.Names()); got != len(kongPriorities) {
		t.Errorf("%d plugins registered, want %d", got, len(kongPriorities))
	}
}

// TestChain runs a realistic chain: correlation-id, cors, key-auth, acl,
// rate-limiting, request-transformer and response-transformer together.
func TestChain(t *testing.T) {
	env := plugin.MemEnvOptions{
		Consumers: []plugin.Consumer{{ID: "c1", Username: "alice"}, {ID: "c2", Username: "mallory"}},
		KeyAuths:  []plugin.KeyAuthCredential{{ID: "k1", ConsumerID: "c1", Key: "ka"}, {ID: "k2", ConsumerID: "c2", Key: "km"}},
		ACLs:      []plugin.ACLGroup{{ID: "a1", ConsumerID: "c1", Group: "staff"}, {ID: "a2", ConsumerID: "c2", Group: "guests"}},
	}
	s := plugintest.New(t, plugintest.Options{Env: env, Routes: []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}}, RouteID: "r1",
		Plugins: []plugin.PluginEntity{
			{Name: "correlation-id", Config: plugintest.Config(map[string]any{"header_name": "Kong-Request-ID", "generator": "uuid", "echo_downstream": true})},
			{Name: "cors", ServiceID: "s1", Config: plugintest.Config(map[string]any{"origins": []string{"http://app.test"}})},
			{Name: "key-auth", RouteID: "r1", Config: plugintest.Config(map[string]any{"key_names": []string{"apikey"}, "key_in_header": true, "hide_credentials": true})},
			{Name: "acl", RouteID: "r1", Config: plugintest.Config(map[string]any{"allow": []string{"staff"}})},
			{Name: "rate-limiting", RouteID: "r1", Config: plugintest.Config(map[string]any{"minute": 100, "limit_by": "consumer", "policy": "local", "fault_tolerant": true, "error_code": 429, "error_message": "API rate limit exceeded"})},
			{Name: "request-transformer", RouteID: "r1", Config: plugintest.Config(map[string]any{"add": map[string]any{"headers": []string{"x-from-gateway:1"}}})},
			{Name: "response-transformer", RouteID: "r1", Config: plugintest.Config(map[string]any{"add": map[string]any{"headers": []string{"x-served-by:gantry"}}})},
		}})
	tests := []struct {
		key    string
		status int
	}{{"ka", 200}, {"km", 403}, {"", 401}}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Origin", "http://app.test")
		if tt.key != "" {
			r.Header.Set("apikey", tt.key)
		}
		res := s.Do(r)
		if res.Status != tt.status {
			t.Fatalf("key %q: status %d, want %d", tt.key, res.Status, tt.status)
		}
		// Header-phase plugins run for every outcome.
		if res.Header.Get("Access-Control-Allow-Origin") != "http://app.test" || res.Header.Get("Kong-Request-Id") == "" || res.Header.Get("X-Served-By") != "gantry" {
			t.Errorf("key %q: response headers %v", tt.key, res.Header)
		}
		if tt.status != 200 {
			if res.Header.Get("X-RateLimit-Limit-Minute") != "" {
				t.Errorf("key %q: rate-limiting ran before its access", tt.key)
			}
			continue
		}
		seen, _ := res.Seen()
		h := http.Header(seen.Header)
		if h.Get("X-Consumer-Username") != "alice" || h.Get("X-Consumer-Groups") != "staff" || h.Get("X-From-Gateway") != "1" || h.Get("Apikey") != "" ||
			!strings.Contains(h.Get("Kong-Request-Id"), "-") {
			t.Errorf("upstream headers %v", h)
		}
		if res.Header.Get("X-RateLimit-Remaining-Minute") != "99" {
			t.Errorf("rate-limit headers %v", res.Header)
		}
	}
}
