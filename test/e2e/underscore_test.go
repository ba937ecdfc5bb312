package e2e

import (
	"strings"
	"testing"
)

// TestUnderscoreHeaders checks that request header names with an
// underscore, which could pass for identity headers plugins set
// (X_Consumer_Username next to X-Consumer-Username), are dropped on the
// way upstream by default, as Kong's nginx does (underscores_in_headers
// off), and passed with GANTRY_ALLOW_UNDERSCORE_HEADERS (the environment
// form of --allow-underscore-headers).
func TestUnderscoreHeaders(t *testing.T) {
	up := newEcho(t, "up")
	for _, tt := range []struct {
		name   string
		env    string
		passed bool
	}{
		{"dropped by default", "", false},
		{"allowed", "true", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("GANTRY_ALLOW_UNDERSCORE_HEADERS", tt.env)
			}
			e := newGatewayEnv(t, "underscores")
			e.create(t, "services", map[string]any{"name": "up", "url": up.URL})
			e.create(t, "services/up/routes", map[string]any{"paths": []string{"/u"}})
			e.converge(t)
			req := mustRequest(t, "GET", e.proxyURL("/u"), nil)
			req.Header["X_Consumer_Username"] = []string{"admin"}
			req.Header.Set("X-Consumer-Username", "alice")
			res, body := e.send(t, req)
			if res.StatusCode != 200 {
				t.Fatalf("%d %s", res.StatusCode, body)
			}
			s := decodeSeen(t, body)
			var passed bool
			for k := range s.Header {
				passed = passed || strings.Contains(k, "_")
			}
			if passed != tt.passed {
				t.Errorf("X_Consumer_Username reached the upstream: %v, want %v (headers %v)", passed, tt.passed, s.Header)
			}
			if got := s.Header["X-Consumer-Username"]; len(got) != 1 || got[0] != "alice" {
				t.Errorf("X-Consumer-Username upstream %q", got)
			}
		})
	}
}
