package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestUnderscoreHeadersOption checks the wiring of AllowUnderscoreHeaders:
// by default a request header whose name has an underscore does not reach
// the upstream (nginx's underscores_in_headers off); with the option it
// does.
func TestUnderscoreHeadersOption(t *testing.T) {
	got := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	t.Cleanup(up.Close)
	h, p := hostPort(t, up)
	for _, allow := range []bool{false, true} {
		g, err := New(Options{ProxyListen: "127.0.0.1:0", ProxyTLSListen: Off, ShutdownTimeout: 2 * time.Second,
			AllowUnderscoreHeaders: allow, LookupEnv: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		apply(t, g, map[string]any{
			"services": arr(service(1, h, p, nil)),
			"routes":   arr(route(1, 1, map[string]any{"paths": arr("/")})),
		}, "h1")
		req, _ := http.NewRequest("GET", baseURL(g)+"/", nil)
		req.Header["X_Consumer_Username"] = []string{"admin"}
		if code, body := get(t, req); code != 200 {
			t.Fatalf("allow=%v: %d %s", allow, code, body)
		}
		var passed bool
		for k := range <-got {
			passed = passed || k == "X_consumer_username"
		}
		if passed != allow {
			t.Errorf("AllowUnderscoreHeaders=%v: X_Consumer_Username reached the upstream: %v", allow, passed)
		}
	}
}

// TestTraceFollowsRouteMethods checks that the compiled router tells the
// proxy the matched route's methods: TRACE is refused with 405 unless the
// route lists it.
func TestTraceFollowsRouteMethods(t *testing.T) {
	up := upstream(t, "A")
	h, p := hostPort(t, up)
	g := start(t)
	apply(t, g, map[string]any{
		"services": arr(service(1, h, p, nil)),
		"routes": arr(
			route(1, 1, map[string]any{"paths": arr("/any"), "strip_path": false}),
			route(2, 1, map[string]any{"paths": arr("/traced"), "methods": arr("GET", "TRACE"), "strip_path": false}),
		),
	}, "h1")
	for _, tt := range []struct {
		path string
		code int
	}{{"/any", 405}, {"/traced", 200}} {
		req, _ := http.NewRequest("TRACE", baseURL(g)+tt.path, nil)
		if code, body := get(t, req); code != tt.code {
			t.Errorf("TRACE %s: %d %s, want %d", tt.path, code, body, tt.code)
		}
	}
}
