package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/compile"
)

// upstream is a real HTTP server that answers "<name> <method> <path>".
func upstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		// A failed write is a client that left, which that client's test sees.
		_, _ = fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(s.Close)
	return s
}

func hostPort(t *testing.T, s *httptest.Server) (string, float64) {
	t.Helper()
	h, p, err := net.SplitHostPort(s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, float64(n)
}

// start runs a Gateway on loopback ports, closed when the test ends.
func start(t *testing.T) *Gateway {
	t.Helper()
	g, err := New(Options{ProxyListen: "127.0.0.1:0", ProxyTLSListen: "127.0.0.1:0", ShutdownTimeout: 2 * time.Second,
		LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func apply(t *testing.T, g *Gateway, cfg map[string]any, hash string) {
	t.Helper()
	if errs, err := g.Apply(context.Background(), cfg, hash); err != nil {
		t.Fatalf("Apply: %v %+v", err, errs)
	}
}

func baseURL(g *Gateway) string {
	plain, _ := g.Addrs()
	return "http://" + plain.String()
}

var client = &http.Client{Timeout: 5 * time.Second}

func get(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func arr(vs ...any) []any { return vs }

func id(kind byte, n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%c%011d", kind, n) }

func service(n int, host string, port float64, extra map[string]any) map[string]any {
	m := map[string]any{"id": id('a', n), "name": fmt.Sprintf("svc%d", n), "protocol": "http", "host": host, "port": port}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func route(n, svc int, extra map[string]any) map[string]any {
	m := map[string]any{"id": id('b', n), "name": fmt.Sprintf("route%d", n), "service": id('a', svc)}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestNoConfigAnswers404(t *testing.T) {
	g := start(t)
	if _, loaded := g.Current(); loaded {
		t.Fatal("loaded before any Apply")
	}
	req, _ := http.NewRequest("GET", baseURL(g)+"/anything", nil)
	code, body := get(t, req)
	if code != 404 || !strings.Contains(body, "no Route matched with those values") {
		t.Errorf("got %d %q", code, body)
	}
}

func TestRouting(t *testing.T) {
	a, b, c := upstream(t, "A"), upstream(t, "B"), upstream(t, "C")
	ah, ap := hostPort(t, a)
	bh, bp := hostPort(t, b)
	ch, cp := hostPort(t, c)
	g := start(t)
	plain, _ := g.Addrs()
	_, port, _ := net.SplitHostPort(plain.String())
	apply(t, g, map[string]any{
		"services": arr(
			service(1, ah, ap, map[string]any{"path": "/base"}),
			service(2, bh, bp, nil),
			service(3, ch, cp, nil),
		),
		"routes": arr(
			route(1, 1, map[string]any{"paths": arr("/api"), "strip_path": true}),
			route(2, 2, map[string]any{"paths": arr("/api"), "hosts": arr("b.example.com"), "strip_path": false}),
			route(3, 3, map[string]any{"paths": arr("/api"), "methods": arr("DELETE")}),
			route(4, 3, map[string]any{"paths": arr("/api"), "headers": map[string]any{"x-tenant": arr("gold")}, "strip_path": false}),
			route(5, 2, map[string]any{"paths": arr(`~/users/\d+$`), "strip_path": false}),
			// Hosts with a port match on the listener's local port.
			route(6, 2, map[string]any{"paths": arr("/port"), "hosts": arr("port.example.com:" + port), "strip_path": false}),
			route(7, 2, map[string]any{"paths": arr("/other-port"), "hosts": arr("port.example.com:1"), "strip_path": false}),
		),
	}, "h1")
	if h, loaded := g.Current(); h != "h1" || !loaded {
		t.Fatalf("Current = %q %v", h, loaded)
	}
	tests := []struct {
		name, method, path, host string
		header                   map[string]string
		wantCode                 int
		wantBody                 string
	}{
		{name: "path, strip_path and service path", method: "GET", path: "/api/orders?x=1", wantCode: 200, wantBody: "A GET /base/orders?x=1"},
		{name: "host wins over hostless", method: "GET", path: "/api/orders", host: "b.example.com", wantCode: 200, wantBody: "B GET /api/orders"},
		{name: "method", method: "DELETE", path: "/api/orders/7", wantCode: 200, wantBody: "C DELETE /orders/7"},
		{name: "header", method: "GET", path: "/api/x", header: map[string]string{"X-Tenant": "gold"}, wantCode: 200, wantBody: "C GET /api/x"},
		{name: "regex path", method: "GET", path: "/users/42", wantCode: 200, wantBody: "B GET /users/42"},
		{name: "regex does not match", method: "GET", path: "/users/abc", wantCode: 404},
		{name: "host with the listener's port", method: "GET", path: "/port", host: "port.example.com", wantCode: 200, wantBody: "B GET /port"},
		{name: "host with another port", method: "GET", path: "/other-port", host: "port.example.com", wantCode: 404},
		{name: "no route", method: "GET", path: "/nowhere", wantCode: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, baseURL(g)+tc.path, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			code, body := get(t, req)
			if code != tc.wantCode || (tc.wantBody != "" && body != tc.wantBody) {
				t.Errorf("got %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestLoadBalancingAndHealth(t *testing.T) {
	a, b := upstream(t, "A"), upstream(t, "B")
	dead := deadAddr(t)
	g := start(t)
	upID := id('c', 1)
	apply(t, g, map[string]any{
		"services": arr(service(1, "pool.upstream", 80, nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/")})),
		"upstreams": arr(map[string]any{"id": upID, "name": "pool.upstream",
			"healthchecks": map[string]any{
				"active": map[string]any{"http_path": "/health", "timeout": 0.5,
					"healthy":   map[string]any{"interval": 0, "successes": 1},
					"unhealthy": map[string]any{"interval": 0.05, "tcp_failures": 1, "http_failures": 1}},
				"passive": map[string]any{"unhealthy": map[string]any{"tcp_failures": 1}},
			}}),
		"targets": arr(
			map[string]any{"id": id('d', 1), "upstream": upID, "target": a.Listener.Addr().String()},
			map[string]any{"id": id('d', 2), "upstream": upID, "target": b.Listener.Addr().String()},
			map[string]any{"id": id('d', 3), "upstream": upID, "target": dead},
		),
	}, "lb")
	seen := map[string]int{}
	for i := range 30 {
		req, _ := http.NewRequest("GET", baseURL(g)+"/x", nil)
		code, body := get(t, req)
		if code != 200 {
			t.Fatalf("request %d: %d %q; a dead target must be retried elsewhere", i, code, body)
		}
		seen[body[:1]]++
	}
	if seen["A"] == 0 || seen["B"] == 0 {
		t.Errorf("traffic not balanced over both live targets: %v", seen)
	}
	st, ok := g.Health().Status(upID)
	if !ok {
		t.Fatal("upstream unknown to the health registry")
	}
	for _, ts := range st.Targets {
		if want := ts.Address != dead; (ts.Health == "HEALTHY") != want {
			t.Errorf("target %s is %s", ts.Address, ts.Health)
		}
	}

	// Kill B while traffic flows: requests keep succeeding (retries, then
	// the checks take B out) and only A serves afterwards.
	b.Close()
	deadline := time.Now().Add(3 * time.Second)
	onlyA := 0
	for onlyA < 10 && time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", baseURL(g)+"/x", nil)
		code, body := get(t, req)
		if code != 200 {
			t.Fatalf("request failed after a target died: %d %q", code, body)
		}
		if body[:1] == "A" {
			onlyA++
		} else {
			onlyA = 0
		}
	}
	if onlyA < 10 {
		t.Error("the dead target was not taken out of rotation")
	}
}

// testCert makes a self-signed certificate for names, in PEM.
func testCert(t *testing.T, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func TestTLSAndHTTP2(t *testing.T) {
	a := upstream(t, "A")
	ah, ap := hostPort(t, a)
	exactCert, exactKey := testCert(t, "api.example.com")
	wildCert, wildKey := testCert(t, "*.example.org")
	g := start(t)
	apply(t, g, map[string]any{
		"certificates": arr(
			map[string]any{"id": id('e', 1), "cert": exactCert, "key": exactKey},
			map[string]any{"id": id('e', 2), "cert": wildCert, "key": wildKey},
		),
		"snis": arr(
			map[string]any{"id": id('f', 1), "name": "api.example.com", "certificate": id('e', 1)},
			map[string]any{"id": id('f', 2), "name": "*.example.org", "certificate": id('e', 2)},
		),
		"services": arr(service(1, ah, ap, nil)),
		"routes": arr(
			route(1, 1, map[string]any{"paths": arr("/secure"), "protocols": arr("https"), "strip_path": false}),
		),
	}, "tls")
	_, tlsAddr := g.Addrs()

	for _, tc := range []struct{ sni, wantCN string }{
		{"api.example.com", "api.example.com"},
		{"shop.example.org", "*.example.org"},
		{"unknown.test", "localhost"},
	} {
		t.Run("sni "+tc.sni, func(t *testing.T) {
			conn, err := tls.Dial("tcp", tlsAddr.String(), &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tc.wantCN {
				t.Errorf("certificate CN %q, want %q", cn, tc.wantCN)
			}
		})
	}

	t.Run("http2", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(exactCert))
		tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "api.example.com"}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + tlsAddr.String() + "/secure/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "A GET /secure/x" {
			t.Errorf("got %s %d %q", resp.Proto, resp.StatusCode, body)
		}
	})

	t.Run("https-only route over plain http", func(t *testing.T) {
		req, _ := http.NewRequest("GET", baseURL(g)+"/secure/x", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 426 || resp.Header.Get("Upgrade") == "" || !strings.Contains(string(body), "Please use HTTPS protocol") {
			t.Errorf("got %d %v %q", resp.StatusCode, resp.Header, body)
		}
	})
}

func TestRejectedRevisionKeepsServing(t *testing.T) {
	a := upstream(t, "A")
	ah, ap := hostPort(t, a)
	g := start(t)
	good := map[string]any{
		"services": arr(service(1, ah, ap, nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/ok"), "strip_path": false})),
	}
	apply(t, g, good, "good")
	bad := map[string]any{
		"services": arr(service(1, ah, ap, nil)),
		"routes": arr(
			route(1, 1, map[string]any{"paths": arr("/ok"), "strip_path": false}),
			route(2, 1, map[string]any{"paths": arr("~/bad/(")}),
		),
		"plugins": arr(map[string]any{"id": id('p', 1), "name": "rate-limiting", "config": map[string]any{"minute": 1,
			"policy": "redis", "redis": map[string]any{"host": "127.0.0.1", "password": "{vault://env/gantry-gateway-missing}"}}}),
	}
	errs, err := g.Apply(context.Background(), bad, "bad")
	if !errors.Is(err, compile.ErrRejected) {
		t.Fatalf("Apply(bad) = %v", err)
	}
	var sawRoute, sawPlugin bool
	for _, e := range errs {
		sawRoute = sawRoute || (e.EntityType == "routes" && e.EntityID == id('b', 2) && e.EntityName == "route2")
		sawPlugin = sawPlugin || (e.EntityType == "plugins" && e.EntityID == id('p', 1) && e.Field == "config.redis.password")
	}
	if !sawRoute || !sawPlugin {
		t.Errorf("entity errors %+v lack the bad route or plugin", errs)
	}
	if h, _ := g.Current(); h != "good" {
		t.Errorf("Current = %q after a rejected revision", h)
	}
	req, _ := http.NewRequest("GET", baseURL(g)+"/ok", nil)
	if code, body := get(t, req); code != 200 || body != "A GET /ok" {
		t.Errorf("old configuration stopped serving: %d %q", code, body)
	}
}

// Under constant load, swapping configurations fails no request, a request
// in flight finishes on its old configuration, and that configuration is
// closed only after it has.
func TestSwapUnderLoad(t *testing.T) {
	a, b := upstream(t, "A"), upstream(t, "B")
	ah, ap := hostPort(t, a)
	bh, bp := hostPort(t, b)
	g := start(t)
	cfgFor := func(host string, port float64) map[string]any {
		return map[string]any{
			"services": arr(service(1, host, port, nil)),
			"routes":   arr(route(1, 1, map[string]any{"paths": arr("/"), "strip_path": false})),
			"plugins":  arr(map[string]any{"id": id('p', 1), "name": "correlation-id", "config": map[string]any{}}),
		}
	}
	apply(t, g, cfgFor(ah, ap), "a")
	first := g.cur.Load()

	slow := make(chan string, 1)
	go func() {
		resp, err := client.Get(baseURL(g) + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	// Let the slow request reach the upstream on the first generation.
	for first.refs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	var failures, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 2}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(baseURL(g) + "/load")
				total.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || (string(body) != "A GET /load" && string(body) != "B GET /load") {
					failures.Add(1)
				}
			}
		}()
	}
	for i := range 20 {
		if i%2 == 0 {
			apply(t, g, cfgFor(bh, bp), fmt.Sprintf("b%d", i))
		} else {
			apply(t, g, cfgFor(ah, ap), fmt.Sprintf("a%d", i))
		}
		if i == 0 {
			select {
			case <-first.closed:
				t.Error("the first configuration was closed while a request still used it")
			default:
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got := <-slow; got != "200 A GET /slow" {
		t.Errorf("in-flight request across swaps: %s", got)
	}
	select {
	case <-first.closed:
	case <-time.After(2 * time.Second):
		t.Error("the first configuration was never closed after draining")
	}
	if failures.Load() != 0 || total.Load() < 20 {
		t.Errorf("%d of %d requests failed during swaps", failures.Load(), total.Load())
	}
}

func TestPlugins(t *testing.T) {
	a := upstream(t, "A")
	ah, ap := hostPort(t, a)
	g := start(t)
	cfg := map[string]any{
		"services":            arr(service(1, ah, ap, nil)),
		"routes":              arr(route(1, 1, map[string]any{"paths": arr("/"), "strip_path": false})),
		"consumers":           arr(map[string]any{"id": id('c', 1), "username": "alice"}),
		"keyauth_credentials": arr(map[string]any{"id": id('k', 1), "consumer": id('c', 1), "key": "alice-key"}),
		"plugins": arr(
			map[string]any{"id": id('p', 1), "name": "key-auth", "route": id('b', 1), "config": map[string]any{"key_names": arr("apikey")}},
			map[string]any{"id": id('p', 2), "name": "rate-limiting", "config": map[string]any{"minute": 3, "policy": "local", "limit_by": "consumer"}},
		),
	}
	apply(t, g, cfg, "p1")
	do := func(key string) (int, string) {
		req, _ := http.NewRequest("GET", baseURL(g)+"/x", nil)
		if key != "" {
			req.Header.Set("apikey", key)
		}
		return get(t, req)
	}
	if code, _ := do(""); code != 401 {
		t.Errorf("no key: %d, want 401", code)
	}
	if code, _ := do("wrong"); code != 401 {
		t.Errorf("wrong key: %d, want 401", code)
	}
	for i := range 3 {
		if code, body := do("alice-key"); code != 200 || body != "A GET /x" {
			t.Fatalf("request %d with key: %d %q", i, code, body)
		}
	}
	if code, _ := do("alice-key"); code != 429 {
		t.Errorf("4th request in the minute: %d, want 429", code)
	}
	// Counters live outside the compiled configuration: a new revision
	// does not reset them.
	apply(t, g, cfg, "p2")
	if code, _ := do("alice-key"); code != 429 {
		t.Errorf("after a swap: %d, want 429 (rate-limit counters reset)", code)
	}
}

func TestCloseIsGraceful(t *testing.T) {
	a := upstream(t, "A")
	ah, ap := hostPort(t, a)
	g := start(t)
	apply(t, g, map[string]any{
		"services": arr(service(1, ah, ap, nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/"), "strip_path": false})),
	}, "c")
	gen := g.cur.Load()
	done := make(chan string, 1)
	go func() {
		resp, err := client.Get(baseURL(g) + "/slow")
		if err != nil {
			done <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(body)
	}()
	for gen.refs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := <-done; got != "A GET /slow" {
		t.Errorf("in-flight request during Close: %q", got)
	}
	select {
	case <-gen.closed:
	default:
		t.Error("configuration not closed by Close")
	}
	if _, err := g.Apply(context.Background(), map[string]any{}, "late"); err == nil {
		t.Error("Apply after Close succeeded")
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewChecksOptions(t *testing.T) {
	if _, err := New(Options{ShutdownTimeout: -1}); err == nil {
		t.Error("negative timeout accepted")
	}
	g, err := New(Options{ProxyListen: Off, ProxyTLSListen: Off})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p, s := g.Addrs(); p != nil || s != nil {
		t.Errorf("listeners bound while off: %v %v", p, s)
	}
	if err := g.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

// TestCloseForcesAfterTimeout checks that Close does not wait past
// ShutdownTimeout for a request stuck on its upstream: the plain listener's
// connections are closed and Close reports the deadline.
func TestCloseForcesAfterTimeout(t *testing.T) {
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer stuck.Close()
	defer close(release)
	sh, sp := hostPort(t, stuck)
	g, err := New(Options{ProxyListen: "127.0.0.1:0", ProxyTLSListen: Off, ShutdownTimeout: 200 * time.Millisecond,
		LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	apply(t, g, map[string]any{
		"services": arr(service(1, sh, sp, nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/")})),
	}, "stuck")
	gen := g.cur.Load()
	failed := make(chan error, 1)
	go func() {
		resp, err := client.Get(baseURL(g) + "/x")
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	for gen.refs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := g.Close(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the shutdown deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v with ShutdownTimeout 200ms", took)
	}
	select {
	case err := <-failed:
		if err == nil {
			t.Error("the stuck request got a response after a forced Close")
		}
	case <-time.After(3 * time.Second):
		t.Error("the stuck request's connection was not closed")
	}
}

// TestPassiveHealthTakesOutFailingTarget checks passive health checks on
// HTTP statuses through the gateway: a target answering 500 is counted on
// every response it gives and leaves rotation after http_failures of them;
// Kong relays those 500s (statuses are not retried), then only the healthy
// target serves.
func TestPassiveHealthTakesOutFailingTarget(t *testing.T) {
	a := upstream(t, "A")
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "F broken", http.StatusInternalServerError)
	}))
	defer failing.Close()
	g := start(t)
	upID := id('c', 1)
	const failures = 3
	apply(t, g, map[string]any{
		"services": arr(service(1, "pool.upstream", 80, nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/")})),
		"upstreams": arr(map[string]any{"id": upID, "name": "pool.upstream",
			"healthchecks": map[string]any{
				"passive": map[string]any{"unhealthy": map[string]any{"http_failures": float64(failures)}},
			}}),
		"targets": arr(
			map[string]any{"id": id('d', 1), "upstream": upID, "target": a.Listener.Addr().String()},
			map[string]any{"id": id('d', 2), "upstream": upID, "target": failing.Listener.Addr().String()},
		),
	}, "passive")
	fails := 0
	for i := range 20 {
		req, _ := http.NewRequest("GET", baseURL(g)+"/x", nil)
		code, body := get(t, req)
		switch {
		case code == 500 && strings.HasPrefix(body, "F broken"):
			fails++
		case code == 200 && strings.HasPrefix(body, "A"):
		default:
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if fails != failures {
		t.Errorf("the failing target answered %d requests, want exactly http_failures = %d", fails, failures)
	}
	st, ok := g.Health().Status(upID)
	if !ok {
		t.Fatal("upstream unknown to the health registry")
	}
	for _, ts := range st.Targets {
		if want := ts.Address == failing.Listener.Addr().String(); (ts.Health == "UNHEALTHY") != want {
			t.Errorf("target %s is %s", ts.Address, ts.Health)
		}
	}
}

// TestHashOnCookie checks Kong's hash_on cookie through the gateway: a
// client without the cookie gets one minted (on hash_on_cookie_path) and
// sticks to one target when it sends it back; the cookie is not set again.
func TestHashOnCookie(t *testing.T) {
	a, b, c := upstream(t, "A"), upstream(t, "B"), upstream(t, "C")
	g := start(t)
	upID := id('c', 1)
	apply(t, g, map[string]any{
		"services": arr(service(1, "sticky.upstream", 80, nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/")})),
		"upstreams": arr(map[string]any{"id": upID, "name": "sticky.upstream", "algorithm": "consistent-hashing",
			"hash_on": "cookie", "hash_on_cookie": "sticky", "hash_on_cookie_path": "/c"}),
		"targets": arr(
			map[string]any{"id": id('d', 1), "upstream": upID, "target": a.Listener.Addr().String()},
			map[string]any{"id": id('d', 2), "upstream": upID, "target": b.Listener.Addr().String()},
			map[string]any{"id": id('d', 3), "upstream": upID, "target": c.Listener.Addr().String()},
		),
	}, "sticky")
	firsts := map[string]bool{}
	for range 12 {
		resp, err := client.Get(baseURL(g) + "/c/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var cookie *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "sticky" {
				cookie = ck
			}
		}
		if resp.StatusCode != 200 || cookie == nil || cookie.Value == "" || cookie.Path != "/c" {
			t.Fatalf("first request: %d, Set-Cookie %q; want a sticky cookie on path /c", resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
		first := string(body[:1])
		firsts[first] = true
		for i := range 3 {
			req, _ := http.NewRequest("GET", baseURL(g)+"/c/x", nil)
			req.AddCookie(&http.Cookie{Name: "sticky", Value: cookie.Value})
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := string(body[:1]); got != first {
				t.Fatalf("request %d with cookie %s went to %s, the first to %s", i, cookie.Value, got, first)
			}
			if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Fatalf("the cookie was set again: %q", sc)
			}
		}
	}
	if len(firsts) < 2 {
		t.Errorf("12 minted cookies all hashed to %v; minted values must spread over the targets", firsts)
	}
}
