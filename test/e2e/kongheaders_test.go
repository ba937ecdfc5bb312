package e2e

import (
	"testing"
)

// TestGatewayResponseHeaderNames checks the latency and request-id headers: Gantry's names by
// default, Kong's with --kong-headers, never both.
func TestGatewayResponseHeaderNames(t *testing.T) {
	up := newEcho(t, "up")
	for _, tt := range []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"gantry names", nil,
			[]string{"X-Gantry-Upstream-Latency", "X-Gantry-Proxy-Latency", "X-Gantry-Request-Id"},
			[]string{"X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency", "X-Kong-Request-Id"}},
		{"kong names", []string{"--kong-headers"},
			[]string{"X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency", "X-Kong-Request-Id"},
			[]string{"X-Gantry-Upstream-Latency", "X-Gantry-Proxy-Latency", "X-Gantry-Request-Id"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newGatewayEnv(t, "headers", tt.args...)
			e.create(t, "services", map[string]any{"name": "up", "url": up.URL})
			e.create(t, "services/up/routes", map[string]any{"paths": []string{"/h"}})
			e.converge(t)
			res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/h"), nil))
			if res.StatusCode != 200 {
				t.Fatalf("%d %s", res.StatusCode, body)
			}
			for _, h := range tt.want {
				if res.Header.Get(h) == "" {
					t.Errorf("response lacks %s: %v", h, res.Header)
				}
			}
			for _, h := range tt.not {
				if res.Header.Get(h) != "" {
					t.Errorf("response has %s too", h)
				}
			}
		})
	}
}
