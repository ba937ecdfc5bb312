package compile

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/proxy"
)

// bigConfig builds n services, each with one route on its own path prefix
// and a host, shaped as the control plane sends them (every field present,
// nulls for unset ones).
func bigConfig(n int) map[string]any {
	services := make([]any, n)
	routes := make([]any, n)
	for i := range n {
		sid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		rid := fmt.Sprintf("00000000-0000-4000-9000-%012d", i)
		services[i] = map[string]any{"id": sid, "name": fmt.Sprintf("svc-%d", i), "protocol": "http",
			"host": fmt.Sprintf("backend-%d.internal", i), "port": float64(8080), "path": nil, "retries": float64(5),
			"connect_timeout": float64(60000), "write_timeout": float64(60000), "read_timeout": float64(60000),
			"enabled": true, "tls_verify": nil, "tls_verify_depth": nil, "ca_certificates": nil, "client_certificate": nil, "tags": nil}
		routes[i] = map[string]any{"id": rid, "name": fmt.Sprintf("route-%d", i), "service": sid,
			"protocols": []any{"http", "https"}, "methods": nil, "hosts": []any{fmt.Sprintf("api%d.example.com", i%50)},
			"paths": []any{fmt.Sprintf("/svc/%d", i)}, "headers": nil, "snis": nil, "sources": nil, "destinations": nil,
			"strip_path": true, "preserve_host": false, "regex_priority": float64(0), "path_handling": "v0",
			"https_redirect_status_code": float64(426), "request_buffering": true, "response_buffering": true, "tags": nil}
	}
	return map[string]any{"_format_version": "3.0", "services": services, "routes": routes}
}

// BenchmarkCompile10k compiles 10,000 services and 10,000 routes.
func BenchmarkCompile10k(b *testing.B) {
	cfg := bigConfig(10000)
	reg := newRegistry(b)
	b.ReportAllocs()
	for b.Loop() {
		c, errs, err := Compile(context.Background(), cfg, Options{Health: reg, LookupEnv: noEnv})
		if err != nil {
			b.Fatal(err, errs)
		}
		c.Close()
	}
}

// BenchmarkResolve measures the per-request lookup against 10,000 routes.
func BenchmarkResolve(b *testing.B) {
	c, _, err := Compile(context.Background(), bigConfig(10000), Options{Health: newRegistry(b), LookupEnv: noEnv})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := httptest.NewRequest("GET", "/svc/4321/items", nil)
	r.Host = "api21.example.com"
	b.ReportAllocs()
	for b.Loop() {
		var m proxy.Match
		c.Resolve(r, &m)
		if m.Service == nil {
			b.Fatal("no match")
		}
	}
}

// Resolving a prefix route whose service has no path stays allocation
// free; strip_path needs the one string it builds.
func TestResolveAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	cfg := bigConfig(100)
	routes := cfg["routes"].([]any)
	routes[7].(map[string]any)["strip_path"] = false
	c, _, err := Compile(context.Background(), cfg, Options{Health: newRegistry(t), LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name, target, host string
		budget             float64
	}{
		{"no strip", "/svc/7/items", "api7.example.com", 0},
		{"strip", "/svc/8/items", "api8.example.com", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			r.Host = tc.host
			var m proxy.Match
			allocs := testing.AllocsPerRun(1000, func() {
				m = proxy.Match{}
				c.Resolve(r, &m)
			})
			if m.Service == nil {
				t.Fatal("no match")
			}
			if allocs > tc.budget {
				t.Errorf("Resolve allocates %v times, budget %v", allocs, tc.budget)
			}
		})
	}
}
