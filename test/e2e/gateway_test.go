package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
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
		{"d", map[string]any{"name": "https-redirect", "paths": []string{"/moved"}, "protocols": []string{"https"}, "https_redirect_status_code": 308}},
		{"b", map[string]any{"name": "wildcard", "hosts": []string{"*.wild.example"}}},
		{"c", map[string]any{"name": "regex-low", "paths": []string{`~/r/\d+$`}, "strip_path": false}},
		{"d", map[string]any{"name": "regex-high", "paths": []string{`~/r/[0-9]+$`}, "strip_path": false, "regex_priority": 10}},
		// The same pair created in the other order, so that a tie broken
		// by age cannot pass for regex_priority.
		{"d", map[string]any{"name": "regex-high-2", "paths": []string{`~/s/[0-9]+$`}, "strip_path": false, "regex_priority": 10}},
		{"c", map[string]any{"name": "regex-low-2", "paths": []string{`~/s/\d+$`}, "strip_path": false}},
		{"c", map[string]any{"name": "regex-strip", "paths": []string{`~/items/(?<id>\d+)`}}},
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
		{name: "wildcard host", method: "GET", path: "/w", host: "api.wild.example", wantUpstream: "b", wantPath: "/w"},
		{name: "regex_priority decides between regex paths", method: "GET", path: "/r/5", wantUpstream: "d", wantPath: "/r/5"},
		{name: "regex_priority, created first", method: "GET", path: "/s/5", wantUpstream: "d", wantPath: "/s/5"},
		{name: "strip_path removes the regex match", method: "GET", path: "/items/42/rest", wantUpstream: "c", wantPath: "/rest", wantPrefix: "/items/42"},
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

	t.Run("https_redirect_status_code", func(t *testing.T) {
		// Kong redirects to https on the forwarded host (no port) with
		// the request URI as received.
		req := mustRequest(t, "GET", e.proxyURL("/moved/x?q=1"), nil)
		req.Host = "redirect.example:8000"
		res, body := e.send(t, req)
		want := "https://redirect.example/moved/x?q=1"
		if res.StatusCode != 308 || res.Header.Get("Location") != want {
			t.Fatalf("%d Location %q (%s), want 308 %q", res.StatusCode, res.Header.Get("Location"), body, want)
		}
	})
}

// TestGatewayForwardedHeaders checks the X-Forwarded-* headers the upstream
// gets, with and without --trusted-ips covering the client: the client's
// X-Forwarded-For is always extended with its address; its other
// X-Forwarded-* values are passed on only when it is trusted.
func TestGatewayForwardedHeaders(t *testing.T) {
	up := newEcho(t, "up")
	client := http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host": {"edge.example"}, "X-Forwarded-Port": {"8443"}, "X-Forwarded-Prefix": {"/outer"}}
	tests := []struct {
		name    string
		trusted []string
		want    func(port string) map[string]string
	}{
		{"untrusted client", nil, func(port string) map[string]string {
			return map[string]string{"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "http",
				"X-Forwarded-Host": "fwd.example", "X-Forwarded-Port": port, "X-Forwarded-Prefix": "/fwd", "X-Real-Ip": "127.0.0.1"}
		}},
		{"trusted client", []string{"--trusted-ips", "127.0.0.0/8"}, func(string) map[string]string {
			return map[string]string{"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https",
				"X-Forwarded-Host": "edge.example", "X-Forwarded-Port": "8443", "X-Forwarded-Prefix": "/outer"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newGatewayEnv(t, "forwarded", tt.trusted...)
			e.create(t, "services", map[string]any{"name": "up", "url": up.URL})
			e.create(t, "services/up/routes", map[string]any{"name": "fwd", "paths": []string{"/fwd"}})
			e.converge(t)
			req := mustRequest(t, "GET", e.proxyURL("/fwd/x"), nil)
			req.Host = "fwd.example"
			for k, v := range client {
				req.Header[k] = v
			}
			res, body := e.send(t, req)
			if res.StatusCode != 200 {
				t.Fatalf("%d %s", res.StatusCode, body)
			}
			s := decodeSeen(t, body)
			_, port, _ := net.SplitHostPort(e.rt.proxy)
			for k, v := range tt.want(port) {
				if got := strings.Join(s.Header[k], ", "); got != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestGatewayErrorFormats checks the gateway's own error answers follow
// the client's Accept header as Kong's do: JSON by default, HTML, XML or
// plain text when asked, each carrying the message and the request id.
func TestGatewayErrorFormats(t *testing.T) {
	e := newGatewayEnv(t, "errors")
	tests := []struct {
		accept, wantType string
	}{
		{"", "application/json"},
		{"text/html", "text/html"},
		{"application/xml", "application/xml"},
		{"text/plain", "text/plain"},
		{"text/html;q=0.5, text/plain", "text/plain"},
		{"*/*", "application/json"},
	}
	for _, tt := range tests {
		t.Run("Accept "+tt.accept, func(t *testing.T) {
			req := mustRequest(t, "GET", e.proxyURL("/nowhere"), nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			res, body := e.send(t, req)
			mt, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";")
			if res.StatusCode != 404 || mt != tt.wantType || !strings.Contains(body, "no Route matched with those values") {
				t.Fatalf("%d %s %q, want 404 %s with the message", res.StatusCode, res.Header.Get("Content-Type"), body, tt.wantType)
			}
			// The id is 32 hex digits, labelled request_id (requestid
			// in Kong's XML template).
			if !regexp.MustCompile(`(?i)request_?id.{0,8}[0-9a-f]{32}`).MatchString(body) {
				t.Errorf("no request id in %q", body)
			}
		})
	}
}

// TestGatewayUpstreamHealth balances over an upstream of three weighted
// targets configured through the API, then kills one under load. What is
// asserted: the weights show exactly in the split of 400 requests (within
// 15%, the balancer is a deterministic weighted round-robin); not one
// client request fails while the target stops accepting (attempts it
// refuses are retried on another target, which Kong's service.retries
// makes invisible; a target dying mid-request is a subtest of its own);
// once the active checker reports it unhealthy, a server brought back on
// its address that fails the health probe gets no proxied request; when
// the probe passes again, it is back in rotation. Passive checks and an
// upstream with no healthy target follow.
func TestGatewayUpstreamHealth(t *testing.T) {
	e := newGatewayEnv(t, "health")
	targets := map[string]*httptest.Server{}
	weights := map[string]int{"t1": 100, "t2": 200, "t3": 100}
	for name := range weights {
		targets[name] = newEcho(t, name)
	}
	e.create(t, "upstreams", map[string]any{"name": "pool", "healthchecks": map[string]any{
		"active": map[string]any{
			"http_path": "/health", "timeout": 1,
			"healthy":   map[string]any{"interval": 0.2, "successes": 1},
			"unhealthy": map[string]any{"interval": 0.2, "tcp_failures": 1, "http_failures": 1, "timeouts": 1},
		},
	}})
	for name, w := range weights {
		e.create(t, "upstreams/pool/targets", map[string]any{"target": hostPort(targets[name]), "weight": w})
	}
	e.create(t, "services", map[string]any{"name": "pool", "host": "pool", "port": 80})
	e.create(t, "services/pool/routes", map[string]any{"name": "pool", "paths": []string{"/pool"}})
	e.converge(t)
	url := e.proxyURL("/pool/x")

	t.Run("weights", func(t *testing.T) {
		var res loadResult
		runLoad(e.client, url, 4, 400, nil, &res)
		ok, failures, byUp := res.snapshot()
		if ok != 400 {
			t.Fatalf("%d of 400 requests succeeded: %v", ok, failures)
		}
		for name, w := range weights {
			want := 400 * w / 400
			if got := byUp[name]; got < want*85/100 || got > want*115/100 {
				t.Errorf("target %s (weight %d) got %d of 400 requests, want about %d; split %v", name, w, got, want, byUp)
			}
		}
	})

	t.Run("a dead target leaves rotation", func(t *testing.T) {
		dead := targets["t3"]
		addr := hostPort(dead)
		var res loadResult
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { runLoad(e.client, url, 4, 20000, stop, &res); close(done) }()
		defer func() { close(stop); <-done }()

		time.Sleep(300 * time.Millisecond)
		// The target stops accepting: requests it is serving finish, new
		// connections are refused. (A target dying mid-request is the
		// subtest "a target that drops requests mid-way".)
		dead.Close()
		waitLog(t, e.rt.proc, regexp.MustCompile(`target health changed.*target=`+regexp.QuoteMeta(addr)+`.*health=UNHEALTHY`), 10*time.Second)

		// Back on the same address, a server that fails the probe and
		// would name itself in any proxied answer.
		var probes atomic.Int64
		zombieHealthy := atomic.Bool{}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("rebinding the dead target's address: %v", err)
		}
		zombie := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				probes.Add(1)
				if !zombieHealthy.Load() {
					w.WriteHeader(500)
				}
				return
			}
			echoHandler("zombie").ServeHTTP(w, r)
		}))
		zombie.Listener.Close()
		zombie.Listener = ln
		zombie.Start()
		defer zombie.Close()

		waitFor(t, "probes of the unhealthy target", func() bool { return probes.Load() >= 3 })
		ok, failures, byUp := res.snapshot()
		if len(failures) > 0 {
			t.Fatalf("%d client requests failed while the target died: %v", len(failures), failures)
		}
		if byUp["zombie"] != 0 {
			t.Fatalf("%d requests went to a target failing its health checks", byUp["zombie"])
		}
		if ok < 100 {
			t.Fatalf("only %d requests went through under load", ok)
		}

		// The probe passes again: after healthy.successes the target is
		// back in rotation.
		zombieHealthy.Store(true)
		waitLog(t, e.rt.proc, regexp.MustCompile(`target health changed.*target=`+regexp.QuoteMeta(addr)+`.*health=HEALTHY`), 10*time.Second)
		waitFor(t, "traffic on the recovered target", func() bool { _, _, byUp := res.snapshot(); return byUp["zombie"] > 0 })
		if _, failures, _ := res.snapshot(); len(failures) > 0 {
			t.Fatalf("%d client requests failed: %v", len(failures), failures)
		}
		t.Logf("split under load before the recovery: %v", byUp)
	})

	t.Run("passive checks take a failing target out", func(t *testing.T) {
		// Kong does not retry on an HTTP status: the client sees each 500
		// the target answers until http_failures of them mark it
		// unhealthy; from then on it gets nothing.
		var hits atomic.Int64
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.WriteHeader(500)
		}))
		defer bad.Close()
		good := newEcho(t, "good")
		e.create(t, "upstreams", map[string]any{"name": "flaky", "healthchecks": map[string]any{
			"passive": map[string]any{"unhealthy": map[string]any{"http_failures": 2, "http_statuses": []int{500}}},
		}})
		e.create(t, "upstreams/flaky/targets", map[string]any{"target": hostPort(bad)})
		e.create(t, "upstreams/flaky/targets", map[string]any{"target": hostPort(good)})
		e.create(t, "services", map[string]any{"name": "flaky", "host": "flaky"})
		e.create(t, "services/flaky/routes", map[string]any{"name": "flaky", "paths": []string{"/flaky"}})
		e.converge(t)
		statuses := map[int]int{}
		for range 40 {
			res, _ := e.send(t, mustRequest(t, "GET", e.proxyURL("/flaky"), nil))
			statuses[res.StatusCode]++
		}
		if hits.Load() != 2 || statuses[500] != 2 || statuses[200] != 38 {
			t.Fatalf("the failing target got %d requests, the client saw %v; want 2 and 2 of 500", hits.Load(), statuses)
		}
		waitLog(t, e.rt.proc, regexp.MustCompile(`target health changed.*target=`+regexp.QuoteMeta(hostPort(bad))+`.*health=UNHEALTHY.*passive`), 5*time.Second)
	})

	t.Run("a target that drops requests mid-way", func(t *testing.T) {
		// It accepts, reads the request head and closes without an
		// answer. nginx's proxy_next_upstream (error, timeout; idempotent
		// methods) sends such a GET to the next target, so Kong's clients
		// see no failure.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var dropped atomic.Int64
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					buf := make([]byte, 4096)
					if n, _ := c.Read(buf); n > 0 {
						dropped.Add(1)
					}
				}()
			}
		}()
		e.create(t, "upstreams", map[string]any{"name": "dropping"})
		e.create(t, "upstreams/dropping/targets", map[string]any{"target": ln.Addr().String()})
		e.create(t, "upstreams/dropping/targets", map[string]any{"target": hostPort(newEcho(t, "steady"))})
		e.create(t, "services", map[string]any{"name": "dropping", "host": "dropping"})
		e.create(t, "services/dropping/routes", map[string]any{"name": "dropping", "paths": []string{"/dropping"}})
		e.converge(t)
		statuses := map[int]int{}
		for range 10 {
			res, _ := e.send(t, mustRequest(t, "GET", e.proxyURL("/dropping"), nil))
			statuses[res.StatusCode]++
		}
		if dropped.Load() == 0 {
			t.Fatal("no request reached the dropping target; the test proves nothing")
		}
		if statuses[200] != 10 {
			t.Fatalf("GETs the target dropped after reading them: client saw %v, want 10 of 200", statuses)
		}
	})

	t.Run("no healthy target", func(t *testing.T) {
		// One target that refuses connections: the first failure marks
		// it unhealthy, then the balancer has no peer to give.
		e.create(t, "upstreams", map[string]any{"name": "gone", "healthchecks": map[string]any{
			"passive": map[string]any{"unhealthy": map[string]any{"tcp_failures": 1}},
		}})
		e.create(t, "upstreams/gone/targets", map[string]any{"target": freeAddr(t)})
		e.create(t, "services", map[string]any{"name": "gone", "host": "gone", "retries": 0})
		e.create(t, "services/gone/routes", map[string]any{"name": "gone", "paths": []string{"/gone"}})
		e.converge(t)
		res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/gone"), nil))
		if res.StatusCode != 502 {
			t.Fatalf("first request to a refusing target: %d %s, want 502", res.StatusCode, body)
		}
		res, body = e.send(t, mustRequest(t, "GET", e.proxyURL("/gone"), nil))
		var msg kongError
		if err := json.Unmarshal([]byte(body), &msg); err != nil {
			t.Fatalf("%d %q is not a Kong error body: %v", res.StatusCode, body, err)
		}
		if res.StatusCode != 503 || msg.Message != "failure to get a peer from the ring-balancer" || msg.RequestID == "" {
			t.Fatalf("no healthy target: %d %s, want 503 failure to get a peer from the ring-balancer", res.StatusCode, body)
		}
	})
}

// TestGatewayTLS adds certificates and SNIs through the API and checks the
// TLS listener: each SNI gets its certificate (exact and wildcard), an
// unknown one the default certificate; routes match on SNI; h2 is
// negotiated by ALPN when offered and HTTP/1.1 otherwise.
func TestGatewayTLS(t *testing.T) {
	e := newGatewayEnv(t, "tls")
	ca := newTestCA(t)
	certA, keyA := ca.issue(t, "a.example")
	certB, keyB := ca.issue(t, "*.b.example")
	// One certificate with its SNIs inline, one with an SNI entity
	// created on its own.
	ca1 := e.create(t, "certificates", map[string]any{"cert": certA, "key": keyA, "snis": []string{"a.example"}})
	cb := e.create(t, "certificates", map[string]any{"cert": certB, "key": keyB})
	e.create(t, "snis", map[string]any{"name": "*.b.example", "certificate": map[string]any{"id": cb["id"]}})

	ups := map[string]string{}
	for _, name := range []string{"a", "b", "any"} {
		ups[name] = hostPort(newEcho(t, name))
		e.create(t, "services", map[string]any{"name": name, "url": "http://" + ups[name]})
	}
	e.create(t, "services/a/routes", map[string]any{"name": "sni-a", "protocols": []string{"https"}, "snis": []string{"a.example"}, "paths": []string{"/"}})
	e.create(t, "services/b/routes", map[string]any{"name": "sni-b", "protocols": []string{"https"}, "snis": []string{"x.b.example"}, "paths": []string{"/"}})
	e.create(t, "services/any/routes", map[string]any{"name": "secure", "protocols": []string{"https"}, "paths": []string{"/secure"}, "strip_path": false})
	e.converge(t)

	tests := []struct {
		name, sni, path string
		h2              bool
		wantCN          string // "" means the gateway's default certificate
		wantUpstream    string
	}{
		{name: "exact SNI over h2", sni: "a.example", path: "/hello", h2: true, wantCN: "a.example", wantUpstream: "a"},
		{name: "exact SNI over HTTP/1.1", sni: "a.example", path: "/hello", wantCN: "a.example", wantUpstream: "a"},
		{name: "wildcard SNI over h2", sni: "x.b.example", path: "/hello", h2: true, wantCN: "*.b.example", wantUpstream: "b"},
		{name: "unknown SNI gets the default certificate", sni: "unknown.example", path: "/secure", h2: true, wantUpstream: "any"},
		// Kong ranks routes by how many kinds of criteria they set
		// before path length: SNI and path beat a longer path alone.
		{name: "SNI and path beat a longer path", sni: "a.example", path: "/secure", wantCN: "a.example", wantUpstream: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{ServerName: tt.sni, RootCAs: ca.pool}
			if tt.wantCN == "" {
				cfg.InsecureSkipVerify = true
			}
			tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: tt.h2}
			if !tt.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			res, err := client.Get("https://" + e.tlsAddr + tt.path)
			if err != nil {
				t.Fatalf("GET with SNI %s: %v", tt.sni, err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, b)
			}
			peer := res.TLS.PeerCertificates[0]
			ours := peer.CheckSignatureFrom(ca.cert) == nil
			if tt.wantCN != "" && (!ours || peer.Subject.CommonName != tt.wantCN) {
				t.Fatalf("peer certificate %q (ours: %v), want %q", peer.Subject.CommonName, ours, tt.wantCN)
			}
			if tt.wantCN == "" && ours {
				t.Fatalf("unknown SNI got our certificate %q, want the default one", peer.Subject.CommonName)
			}
			wantProto, wantALPN := "HTTP/1.1", ""
			if tt.h2 {
				wantProto, wantALPN = "HTTP/2.0", "h2"
			}
			if res.Proto != wantProto || res.TLS.NegotiatedProtocol != wantALPN {
				t.Fatalf("proto %s ALPN %q, want %s %q", res.Proto, res.TLS.NegotiatedProtocol, wantProto, wantALPN)
			}
			s := decodeSeen(t, string(b))
			if s.Upstream != tt.wantUpstream || s.Path != tt.path {
				t.Fatalf("upstream %s saw %s, want %s %s", s.Upstream, s.Path, tt.wantUpstream, tt.path)
			}
			if got := strings.Join(s.Header["X-Forwarded-Proto"], ","); got != "https" {
				t.Errorf("X-Forwarded-Proto = %q, want https", got)
			}
		})
	}

	t.Run("rotation and removal", func(t *testing.T) {
		peer := func(sni string) *x509.Certificate {
			t.Helper()
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.tlsAddr,
				&tls.Config{ServerName: sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("TLS dial with SNI %s: %v", sni, err)
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0]
		}
		before := peer("a.example")
		certA2, keyA2 := ca.issue(t, "a.example")
		if code, out := e.admin(t, "PATCH", "certificates/"+ca1["id"].(string), map[string]any{"cert": certA2, "key": keyA2}); code != 200 {
			t.Fatalf("rotate the certificate: %d %v", code, out)
		}
		e.converge(t)
		if after := peer("a.example"); after.SerialNumber.Cmp(before.SerialNumber) == 0 || after.Subject.CommonName != "a.example" {
			t.Fatalf("after rotation the SNI still gets serial %v", after.SerialNumber)
		}
		if code, out := e.admin(t, "DELETE", "snis/*.b.example", nil); code != 204 {
			t.Fatalf("delete the SNI: %d %v", code, out)
		}
		e.converge(t)
		if got := peer("x.b.example"); got.CheckSignatureFrom(ca.cert) == nil {
			t.Fatalf("a deleted SNI still gets its certificate %q", got.Subject.CommonName)
		}
	})

	// Kong ignores SNIs on plain HTTP: the https-only route still
	// matches by path, and the answer is the protocol upgrade.
	res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/hello"), nil))
	if res.StatusCode != 426 || !strings.Contains(body, "Please use HTTPS protocol") {
		t.Fatalf("plain HTTP on an SNI route: %d %s, want 426", res.StatusCode, body)
	}
}

// mustRequest builds a request or fails the test.
func mustRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestGatewayReconfigureUnderLoad changes the configuration ten times
// through the API while four HTTP/1.1 workers and two h2 workers send
// requests, bounded to 30,000 in all. Every request must succeed; after
// each change the runtime converges to the control plane's expected hash,
// and the last change is what serves.
func TestGatewayReconfigureUnderLoad(t *testing.T) {
	e := newGatewayEnv(t, "reload")
	v1, v2 := newEcho(t, "v1"), newEcho(t, "v2")
	e.create(t, "services", map[string]any{"name": "load", "url": v1.URL})
	e.create(t, "services/load/routes", map[string]any{"name": "load", "paths": []string{"/load"}})
	e.converge(t)

	h2 := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	h2Client := &http.Client{Transport: h2, Timeout: 10 * time.Second}

	var plain, secure loadResult
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); runLoad(e.client, e.proxyURL("/load/x"), 4, 20000, stop, &plain) }()
	go func() { defer wg.Done(); runLoad(h2Client, "https://"+e.tlsAddr+"/load/x", 2, 10000, stop, &secure) }()
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	// The changes touch every layer a request crosses: the service's
	// address, routes, plugins, and an upstream's targets and weights.
	// A target is addressed by its id, known once created.
	var v2Target string
	changes := []struct {
		name   string
		method string
		path   func() string
		body   map[string]any
	}{
		{"switch the service to v2", "PATCH", fixed("services/load"), map[string]any{"url": v2.URL}},
		{"add a service and route", "POST", fixed("services"), map[string]any{"name": "other", "url": v1.URL}},
		{"add a path to the route", "PATCH", fixed("routes/load"), map[string]any{"paths": []string{"/load", "/load2"}}},
		{"add a plugin on the route", "POST", fixed("routes/load/plugins"), map[string]any{"name": "request-transformer",
			"config": map[string]any{"add": map[string]any{"headers": []string{"x-rev:4"}}}}},
		{"create an upstream", "POST", fixed("upstreams"), map[string]any{"name": "lb"}},
		{"add target v1", "POST", fixed("upstreams/lb/targets"), map[string]any{"target": hostPort(v1)}},
		{"add target v2", "POST", fixed("upstreams/lb/targets"), map[string]any{"target": hostPort(v2)}},
		{"balance the service over the upstream", "PATCH", fixed("services/load"), map[string]any{"host": "lb", "port": 80}},
		{"disable target v2 with weight 0", "PATCH", func() string { return "upstreams/lb/targets/" + v2Target }, map[string]any{"weight": 0}},
		{"delete the other service", "DELETE", fixed("services/other"), nil},
	}
	hashes := map[string]bool{}
	for _, c := range changes {
		time.Sleep(150 * time.Millisecond) // let load run on each revision
		code, out := e.admin(t, c.method, c.path(), c.body)
		if code/100 != 2 {
			t.Fatalf("%s: %d %v", c.name, code, out)
		}
		if c.name == "add target v2" {
			v2Target = out["id"].(string)
		}
		hashes[e.converge(t)] = true
	}
	time.Sleep(150 * time.Millisecond)
	stopLoad()
	if len(hashes) != len(changes) {
		t.Errorf("%d distinct hashes for %d changes", len(hashes), len(changes))
	}

	for name, res := range map[string]*loadResult{"HTTP/1.1": &plain, "h2": &secure} {
		ok, failures, byUp := res.snapshot()
		if len(failures) > 0 {
			t.Errorf("%s: %d requests failed during reconfiguration: %v", name, len(failures), failures)
		}
		// Both upstreams served: the switches took effect under load.
		if ok < 100 || byUp["v1"] == 0 || byUp["v2"] == 0 {
			t.Errorf("%s: %d requests succeeded, split %v", name, ok, byUp)
		}
		t.Logf("%s: %d requests, split %v", name, ok, byUp)
	}

	// The last revision serves: the added path, the plugin, and only
	// the target whose weight is not 0.
	for i := range 20 {
		res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/load2/y"), nil))
		if res.StatusCode != 200 {
			t.Fatalf("request %d after the changes: %d %s", i, res.StatusCode, body)
		}
		if s := decodeSeen(t, body); s.Upstream != "v1" || s.Path != "/y" || strings.Join(s.Header["X-Rev"], ",") != "4" {
			t.Fatalf("request %d after the changes: the upstream saw %+v", i, s)
		}
	}
}

// fixed is a change's path that does not depend on earlier changes.
func fixed(path string) func() string { return func() string { return path } }

// TestGatewayHashing balances with consistent hashing configured through
// the API: on a header or a cookie, every request of one user reaches one
// target and users spread over more than one; on a cookie the client lacks,
// the gateway sets one and the client that sends it back sticks.
func TestGatewayHashing(t *testing.T) {
	e := newGatewayEnv(t, "hashing")
	for _, u := range []map[string]any{
		{"name": "by-header", "hash_on": "header", "hash_on_header": "x-user"},
		{"name": "by-cookie", "hash_on": "cookie", "hash_on_cookie": "sticky", "hash_on_cookie_path": "/c"},
	} {
		name := u["name"].(string)
		e.create(t, "upstreams", u)
		for i := range 3 {
			e.create(t, "upstreams/"+name+"/targets", map[string]any{"target": hostPort(newEcho(t, fmt.Sprintf("%s-%d", name, i)))})
		}
		e.create(t, "services", map[string]any{"name": name, "host": name})
	}
	e.create(t, "services/by-header/routes", map[string]any{"name": "h", "paths": []string{"/h"}})
	e.create(t, "services/by-cookie/routes", map[string]any{"name": "c", "paths": []string{"/c"}})
	e.converge(t)

	// sticks sends five requests per user, each user's key set by set,
	// and checks each user stays on one target and the users spread over
	// more than one.
	sticks := func(t *testing.T, path string, set func(*http.Request, string)) {
		used := map[string]bool{}
		for u := range 12 {
			first := ""
			for i := range 5 {
				req := mustRequest(t, "GET", e.proxyURL(path), nil)
				set(req, fmt.Sprintf("user-%d", u))
				res, body := e.send(t, req)
				if res.StatusCode != 200 {
					t.Fatalf("%d %s", res.StatusCode, body)
				}
				got := decodeSeen(t, body).Upstream
				if i == 0 {
					first = got
				} else if got != first {
					t.Fatalf("user-%d went to %s then %s", u, first, got)
				}
			}
			used[first] = true
		}
		if len(used) < 2 {
			t.Fatalf("12 users all hashed to %v", used)
		}
	}
	t.Run("header", func(t *testing.T) {
		sticks(t, "/h/x", func(r *http.Request, user string) { r.Header.Set("X-User", user) })
	})
	t.Run("cookie the client sends", func(t *testing.T) {
		sticks(t, "/c/x", func(r *http.Request, user string) { r.AddCookie(&http.Cookie{Name: "sticky", Value: user}) })
	})

	t.Run("cookie the gateway sets", func(t *testing.T) {
		res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/c/x"), nil))
		var cookie *http.Cookie
		for _, c := range res.Cookies() {
			if c.Name == "sticky" {
				cookie = c
			}
		}
		if res.StatusCode != 200 || cookie == nil || cookie.Value == "" || cookie.Path != "/c" {
			t.Fatalf("first request: %d, cookies %v; want a sticky cookie on path /c", res.StatusCode, res.Header.Values("Set-Cookie"))
		}
		first := decodeSeen(t, body).Upstream
		for i := range 10 {
			req := mustRequest(t, "GET", e.proxyURL("/c/x"), nil)
			req.AddCookie(&http.Cookie{Name: "sticky", Value: cookie.Value})
			res, body := e.send(t, req)
			if got := decodeSeen(t, body).Upstream; res.StatusCode != 200 || got != first {
				t.Fatalf("request %d with the cookie went to %s, the first to %s", i, got, first)
			}
			if res.Header.Get("Set-Cookie") != "" {
				t.Fatalf("the cookie was set again: %s", res.Header.Get("Set-Cookie"))
			}
		}
	})
}

// TestGatewayUpstreamTLS proxies to an HTTPS upstream configured through
// the API: verified against a CA certificate entity, with a client
// certificate entity for mTLS, SNI set to the service host; unverified
// when tls_verify is unset; refused (502) when verification is asked for
// without a CA that trusts the upstream.
func TestGatewayUpstreamTLS(t *testing.T) {
	e := newGatewayEnv(t, "upstream-tls")
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, "localhost", "127.0.0.1")
	pair, err := tls.X509KeyPair([]byte(srvCert), []byte(srvKey))
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sni", r.TLS.ServerName)
		if len(r.TLS.PeerCertificates) > 0 {
			w.Header().Set("X-Client-Cn", r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		echoHandler("tls").ServeHTTP(w, r)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool}
	up.StartTLS()
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	url := "https://localhost:" + port

	caEnt := e.create(t, "ca_certificates", map[string]any{"cert": ca.certPEM()})
	clientCert, clientKey := ca.issue(t, "gateway-client")
	clientEnt := e.create(t, "certificates", map[string]any{"cert": clientCert, "key": clientKey})
	for name, svc := range map[string]map[string]any{
		"verified":   {"url": url, "tls_verify": true, "ca_certificates": []any{caEnt["id"]}, "client_certificate": map[string]any{"id": clientEnt["id"]}},
		"unverified": {"url": url},
		"untrusted":  {"url": url, "tls_verify": true},
	} {
		svc["name"] = name
		e.create(t, "services", svc)
		e.create(t, "services/"+name+"/routes", map[string]any{"name": name, "paths": []string{"/" + name}})
	}
	e.converge(t)

	tests := []struct {
		path       string
		wantStatus int
		wantCN     string
	}{
		{"/verified/x", 200, "gateway-client"},
		{"/unverified/x", 200, ""},
		{"/untrusted/x", 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := e.send(t, mustRequest(t, "GET", e.proxyURL(tt.path), nil))
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("%d %s, want %d", res.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				if !strings.Contains(body, "An invalid response was received from the upstream server") {
					t.Fatalf("a failed upstream handshake: %s", body)
				}
				return
			}
			if sni, cn := res.Header.Get("X-Sni"), res.Header.Get("X-Client-Cn"); sni != "localhost" || cn != tt.wantCN {
				t.Fatalf("upstream saw SNI %q client certificate %q, want localhost %q", sni, cn, tt.wantCN)
			}
			if s := decodeSeen(t, body); s.Path != "/x" || s.Proto != "HTTP/1.1" {
				t.Fatalf("upstream saw %s %s", s.Proto, s.Path)
			}
		})
	}
}

// TestGatewayTraffic sends what real clients send through the proxy: large
// request and response bodies, streamed without a length, over HTTP/1.1
// and h2; a WebSocket session; and an upstream slower than the service's
// read_timeout.
func TestGatewayTraffic(t *testing.T) {
	e := newGatewayEnv(t, "traffic")
	body := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, err := strconv.Atoi(r.URL.Query().Get("size")); err == nil {
			// A deterministic body of n bytes, streamed without a length.
			w.Header().Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(pattern(n))))
			w.(http.Flusher).Flush()
			_, _ = w.Write(pattern(n))
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		_, _ = fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	defer body.Close()
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, append([]byte("echo "), msg...)); err != nil {
				return
			}
		}
	}))
	defer ws.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()

	e.create(t, "services", map[string]any{"name": "body", "url": body.URL})
	e.create(t, "services/body/routes", map[string]any{"name": "body", "paths": []string{"/body"}})
	e.create(t, "services", map[string]any{"name": "ws", "url": ws.URL})
	e.create(t, "services/ws/routes", map[string]any{"name": "ws", "paths": []string{"/ws"}})
	e.create(t, "services", map[string]any{"name": "slow", "url": slow.URL, "read_timeout": 300, "retries": 0})
	e.create(t, "services/slow/routes", map[string]any{"name": "slow", "paths": []string{"/slow"}})
	e.converge(t)

	h2 := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	clients := []struct {
		name, base string
		client     *http.Client
		proto      string
	}{
		{"HTTP/1.1", "http://" + e.rt.proxy, e.client, "HTTP/1.1"},
		{"h2", "https://" + e.tlsAddr, &http.Client{Transport: h2, Timeout: 10 * time.Second}, "HTTP/2.0"},
	}
	const size = 3<<20 + 17 // 3 MiB and change: several flow-control windows
	for _, c := range clients {
		t.Run(c.name+" request body without a length", func(t *testing.T) {
			// Hide the length so that the body is chunked on HTTP/1.1
			// and unsized DATA frames on h2.
			req := mustRequest(t, "POST", c.base+"/body/up", io.MultiReader(bytes.NewReader(pattern(size))))
			res, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, _ := io.ReadAll(res.Body)
			want := fmt.Sprintf("%d %x", size, sha256.Sum256(pattern(size)))
			if res.StatusCode != 200 || string(got) != want || res.Proto != c.proto {
				t.Fatalf("%s %d %q, want %s 200 %q", res.Proto, res.StatusCode, got, c.proto, want)
			}
		})
		t.Run(c.name+" streamed response body", func(t *testing.T) {
			res, err := c.client.Get(c.base + "/body/down?size=" + strconv.Itoa(size))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, res.Body)
			if err != nil || n != size || fmt.Sprintf("%x", h.Sum(nil)) != res.Header.Get("X-Sum") {
				t.Fatalf("read %d bytes (%v), want %d with the upstream's checksum", n, err, size)
			}
		})
	}

	t.Run("WebSocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, res, err := websocket.Dial(ctx, "ws://"+e.rt.proxy+"/ws", nil)
		if err != nil {
			t.Fatalf("dial through the proxy: %v", err)
		}
		defer c.CloseNow()
		if res.StatusCode != 101 {
			t.Fatalf("handshake status %d", res.StatusCode)
		}
		for i := range 3 {
			msg := fmt.Sprintf("message %d", i)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != "echo "+msg {
				t.Fatalf("read %q (%v), want echo %s", got, err, msg)
			}
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Fatalf("close: %v", err)
		}
	})

	t.Run("upstream slower than read_timeout", func(t *testing.T) {
		start := time.Now()
		res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/slow"), nil))
		var msg kongError
		if err := json.Unmarshal([]byte(body), &msg); err != nil {
			t.Fatalf("%d %q is not a Kong error body: %v", res.StatusCode, body, err)
		}
		if res.StatusCode != 504 || msg.Message != "The upstream server is timing out" || msg.RequestID == "" {
			t.Fatalf("got %d %s, want 504 The upstream server is timing out", res.StatusCode, body)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("the 504 took %s; read_timeout is 300ms", took)
		}
	})
}

// pattern returns n deterministic bytes that do not repeat with a short
// period, so that a reordered or dropped chunk changes the checksum.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// TestGatewayRejectedRevision configures, through the API, a plugin the
// runtime cannot build (file-log into a directory that does not exist):
// the runtime keeps serving its previous revision, the control plane's
// nodes API shows the instance apply_failed with the reason, and the next
// good revision is applied.
func TestGatewayRejectedRevision(t *testing.T) {
	e := newGatewayEnv(t, "rejected")
	up := newEcho(t, "up")
	e.create(t, "services", map[string]any{"name": "up", "url": up.URL})
	e.create(t, "services/up/routes", map[string]any{"name": "ok", "paths": []string{"/ok"}})
	good := e.converge(t)
	node := func() map[string]any {
		code, out := e.cp.call(t, "GET", "/v2/runtime-groups/"+e.group+"/nodes", nil)
		data, _ := out["items"].([]any)
		if code != 200 || len(data) != 1 {
			t.Fatalf("nodes: %d %v", code, out)
		}
		return data[0].(map[string]any)
	}

	bad := e.create(t, "routes/ok/plugins", map[string]any{"name": "file-log",
		"config": map[string]any{"path": filepath.Join(t.TempDir(), "missing", "access.log")}})
	waitFor(t, "the control plane to see the failure", func() bool { return node()["status"] == "apply_failed" })
	n := node()
	if msg, _ := n["last_error"].(string); !strings.Contains(msg, "file-log") {
		t.Errorf("last_error %v does not name the plugin", n["last_error"])
	}
	if st := e.rt.getStatus(t); st["configuration_hash"] != good {
		t.Fatalf("the runtime left its good revision: %v", st)
	}
	for range 3 {
		if res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/ok/x"), nil)); res.StatusCode != 200 {
			t.Fatalf("the previous revision stopped serving: %d %s", res.StatusCode, body)
		}
	}

	if code, out := e.admin(t, "DELETE", "plugins/"+bad["id"].(string), nil); code != 204 {
		t.Fatalf("delete the plugin: %d %v", code, out)
	}
	e.create(t, "services/up/routes", map[string]any{"name": "new", "paths": []string{"/new"}})
	e.converge(t)
	waitFor(t, "the node in sync", func() bool { return node()["status"] == "in_sync" })
	if res, body := e.send(t, mustRequest(t, "GET", e.proxyURL("/new/x"), nil)); res.StatusCode != 200 {
		t.Fatalf("the next good revision: %d %s", res.StatusCode, body)
	}
}

// TestGatewayHTTP1Semantics drives the plain listener as HTTP/1.1 clients
// do: keep-alive reuse, pipelining, HEAD and bodiless statuses, Expect:
// 100-continue, Connection: close, and an oversized header.
func TestGatewayHTTP1Semantics(t *testing.T) {
	e := newGatewayEnv(t, "http1")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/head":
			w.Header().Set("Content-Length", "1234")
			if r.Method != "HEAD" {
				_, _ = w.Write(make([]byte, 1234))
			}
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		default:
			b, _ := io.ReadAll(r.Body)
			_, _ = fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
		}
	}))
	defer up.Close()
	e.create(t, "services", map[string]any{"name": "up", "url": up.URL})
	e.create(t, "services/up/routes", map[string]any{"name": "up", "paths": []string{"/"}})
	e.converge(t)

	t.Run("keep-alive over one connection", func(t *testing.T) {
		var dials atomic.Int64
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		tests := []struct {
			method, path string
			wantStatus   int
			wantLength   int64
			wantBody     string
		}{
			{"GET", "/a", 200, -1, "GET /a 0"},
			{"HEAD", "/head", 200, 1234, ""},
			{"GET", "/204", 204, -1, ""},
			{"GET", "/304", 304, -1, ""},
			{"GET", "/head", 200, 1234, string(make([]byte, 1234))},
			{"POST", "/b", 200, -1, "POST /b 0"},
		}
		for round := range 5 {
			for _, tt := range tests {
				res, err := client.Do(mustRequest(t, tt.method, e.proxyURL(tt.path), nil))
				if err != nil {
					t.Fatalf("%s %s: %v", tt.method, tt.path, err)
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != tt.wantStatus || string(b) != tt.wantBody {
					t.Fatalf("round %d %s %s: %d %q (%v), want %d %q", round, tt.method, tt.path, res.StatusCode, b, err, tt.wantStatus, tt.wantBody)
				}
				if tt.wantLength >= 0 && res.ContentLength != tt.wantLength {
					t.Fatalf("%s %s: Content-Length %d, want %d", tt.method, tt.path, res.ContentLength, tt.wantLength)
				}
			}
		}
		if n := dials.Load(); n != 1 {
			t.Fatalf("%d connections for 30 sequential requests, want 1", n)
		}
	})

	// raw sends data on a new connection and returns all it reads until
	// the server closes it or 3 s pass.
	raw := func(t *testing.T, data string) string {
		t.Helper()
		c, err := net.DialTimeout("tcp", e.rt.proxy, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, data); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(c)
		return string(b)
	}

	t.Run("pipelined requests answered in order", func(t *testing.T) {
		out := raw(t, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"+
			"POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
			"GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		i1, i2, i3 := strings.Index(out, "GET /p1 0"), strings.Index(out, "POST /p2 5"), strings.Index(out, "GET /p3 0")
		if i1 < 0 || i2 < i1 || i3 < i2 || strings.Count(out, "HTTP/1.1 200") != 3 {
			t.Fatalf("pipelined answers out of order or missing:\n%s", out)
		}
	})

	t.Run("Connection: close", func(t *testing.T) {
		// The connection must end after the answer: raw reads to EOF
		// and would time out otherwise.
		start := time.Now()
		out := raw(t, "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.Contains(out, "GET /c 0") || time.Since(start) > 2*time.Second {
			t.Fatalf("after %s: %q", time.Since(start), out)
		}
	})

	t.Run("Expect: 100-continue", func(t *testing.T) {
		tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		req := mustRequest(t, "POST", e.proxyURL("/e"), strings.NewReader(strings.Repeat("x", 4096)))
		req.Header.Set("Expect", "100-continue")
		start := time.Now()
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		// Without a 100 Continue the client would wait out its 5 s.
		if res.StatusCode != 200 || string(b) != "POST /e 4096" || time.Since(start) > 3*time.Second {
			t.Fatalf("after %s: %d %q", time.Since(start), res.StatusCode, b)
		}
	})

	t.Run("oversized header", func(t *testing.T) {
		req := mustRequest(t, "GET", e.proxyURL("/big"), nil)
		req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
		res, body := e.send(t, req)
		if !strings.Contains(body, "Request header or cookie too large") {
			t.Fatalf("%d %s, want 494 Request header or cookie too large", res.StatusCode, body)
		}
		if res.StatusCode != 494 {
			t.Fatalf("status %d, want 494", res.StatusCode)
		}
	})
}
