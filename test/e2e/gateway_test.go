package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestGatewayRouting configures services and routes through the Admin API
// and checks each request reaches the upstream Kong's router would pick,
// with the path and Host Kong would send; and that the gateway's own
// answers (no route, upstream refusing, https-only route over http) are
// Kong's.
func TestGatewayRouting(t *testing.T) {
	e := newGatewayEnv(t, "routing")
	ups := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d"} {
		ups[name] = hostPort(newEcho(t, name))
	}
	e.create(t, "services", map[string]any{"name": "a", "url": "http://" + ups["a"] + "/base"})
	for _, name := range []string{"b", "c", "d"} {
		e.create(t, "services", map[string]any{"name": name, "url": "http://" + ups[name]})
	}
	// A service whose upstream refuses connections: the port was free a
	// moment ago and nothing listens on it.
	e.create(t, "services", map[string]any{"name": "refused", "url": "http://" + freeAddr(t), "retries": 1})
	routes := []struct {
		service string
		body    map[string]any
	}{
		{"b", map[string]any{"name": "by-host", "hosts": []string{"host.example"}}},
		{"b", map[string]any{"name": "preserve", "hosts": []string{"preserve.example"}, "preserve_host": true}},
		{"a", map[string]any{"name": "strip", "paths": []string{"/strip"}}},
		{"a", map[string]any{"name": "keep", "paths": []string{"/keep"}, "strip_path": false}},
		{"c", map[string]any{"name": "post-only", "paths": []string{"/m"}, "methods": []string{"POST"}}},
		{"c", map[string]any{"name": "header-less", "paths": []string{"/h"}}},
		{"d", map[string]any{"name": "header-v2", "paths": []string{"/h"}, "headers": map[string][]string{"x-version": {"v2"}}}},
		{"d", map[string]any{"name": "https-only", "paths": []string{"/secure"}, "protocols": []string{"https"}}},
		{"refused", map[string]any{"name": "refused", "paths": []string{"/refused"}}},
	}
	for _, r := range routes {
		e.create(t, "services/"+r.service+"/routes", r.body)
	}
	e.converge(t)

	tests := []struct {
		name, method, path, host string
		header                   http.Header
		wantUpstream, wantPath   string
		// wantHost is the Host the upstream must see; "" means the
		// upstream's own host:port (preserve_host off).
		wantHost   string
		wantPrefix string // X-Forwarded-Prefix; "" means absent
	}{
		{name: "host", method: "GET", path: "/any/thing", host: "host.example", wantUpstream: "b", wantPath: "/any/thing"},
		{name: "preserve_host", method: "GET", path: "/p", host: "preserve.example", wantUpstream: "b", wantPath: "/p", wantHost: "preserve.example"},
		{name: "strip_path joins the service path", method: "GET", path: "/strip/x/y", wantUpstream: "a", wantPath: "/base/x/y", wantPrefix: "/strip"},
		{name: "strip_path of the bare prefix", method: "GET", path: "/strip", wantUpstream: "a", wantPath: "/base", wantPrefix: "/strip"},
		{name: "no strip_path", method: "GET", path: "/keep/x", wantUpstream: "a", wantPath: "/base/keep/x"},
		{name: "method", method: "POST", path: "/m/1", wantUpstream: "c", wantPath: "/1", wantPrefix: "/m"},
		{name: "header match beats a path-only route", method: "GET", path: "/h/z", header: http.Header{"X-Version": {"v2"}}, wantUpstream: "d", wantPath: "/z", wantPrefix: "/h"},
		{name: "header value mismatch falls back", method: "GET", path: "/h/z", header: http.Header{"X-Version": {"v3"}}, wantUpstream: "c", wantPath: "/z", wantPrefix: "/h"},
		{name: "no header falls back", method: "GET", path: "/h/z", wantUpstream: "c", wantPath: "/z", wantPrefix: "/h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.proxyURL(tt.path), nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			res, body := e.send(t, req)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			s := decodeSeen(t, body)
			wantHost := tt.wantHost
			if wantHost == "" {
				wantHost = ups[tt.wantUpstream]
			}
			if s.Upstream != tt.wantUpstream || s.Path != tt.wantPath || s.Method != tt.method || s.Host != wantHost {
				t.Fatalf("upstream saw %s %s %s Host %s; want %s %s %s Host %s",
					s.Upstream, s.Method, s.Path, s.Host, tt.wantUpstream, tt.method, tt.wantPath, wantHost)
			}
			if got := strings.Join(s.Header["X-Forwarded-Prefix"], ","); got != tt.wantPrefix {
				t.Errorf("X-Forwarded-Prefix = %q, want %q", got, tt.wantPrefix)
			}
			if host := tt.host; host != "" {
				if got := strings.Join(s.Header["X-Forwarded-Host"], ","); got != host {
					t.Errorf("X-Forwarded-Host = %q, want %q", got, host)
				}
			}
		})
	}

	errTests := []struct {
		name, method, path string
		wantStatus         int
		wantMessage        string
		wantHeader         http.Header
	}{
		{name: "no route", method: "GET", path: "/nowhere", wantStatus: 404, wantMessage: "no Route matched with those values"},
		{name: "method not on any route", method: "GET", path: "/m/1", wantStatus: 404, wantMessage: "no Route matched with those values"},
		{name: "upstream refuses", method: "GET", path: "/refused", wantStatus: 502, wantMessage: "An invalid response was received from the upstream server"},
		{name: "https-only route over http", method: "GET", path: "/secure", wantStatus: 426, wantMessage: "Please use HTTPS protocol",
			wantHeader: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"TLS/1.2, HTTP/1.1"}}},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.proxyURL(tt.path), nil)
			res, body := e.send(t, req)
			var msg struct {
				Message   string `json:"message"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(body), &msg); err != nil {
				t.Fatalf("body is not JSON: %q", body)
			}
			if res.StatusCode != tt.wantStatus || msg.Message != tt.wantMessage {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, body, tt.wantStatus, tt.wantMessage)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			// kong.response.error bodies carry the request id; the 426
			// is a kong.response.exit and has none.
			if tt.wantStatus != 426 && msg.RequestID == "" {
				t.Errorf("no request_id in %s", body)
			}
			for k, v := range tt.wantHeader {
				if got := res.Header.Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
