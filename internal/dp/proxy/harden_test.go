package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/requesttransformer"
)

// headUpstream records the raw header lines of every request it receives
// and answers each with okResp.
type headUpstream struct {
	*rawUpstream
	mu    sync.Mutex
	heads [][]string // guarded by mu: the field lines of each request, in order
}

func newHeadUpstream(t testing.TB) *headUpstream {
	hu := &headUpstream{}
	hu.rawUpstream = newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			var lines []string
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				l = strings.TrimSuffix(l, "\r\n")
				if l == "" {
					break
				}
				lines = append(lines, l)
			}
			hu.mu.Lock()
			hu.heads = append(hu.heads, lines[1:]) // without the request line
			hu.mu.Unlock()
			if _, err := io.WriteString(c, okResp); err != nil {
				return
			}
		}
	})
	return hu
}

// last returns the field lines of the last request.
func (hu *headUpstream) last() []string {
	hu.mu.Lock()
	defer hu.mu.Unlock()
	return hu.heads[len(hu.heads)-1]
}

// fieldNames returns the names of lines, in order.
func fieldNames(lines []string) []string {
	var names []string
	for _, l := range lines {
		name, _, _ := strings.Cut(l, ":")
		names = append(names, name)
	}
	return names
}

// TestUnderscoreHeadersDropped checks that header names with underscores,
// which could pass for the identity headers plugins set (nginx and so Kong
// drop them: underscores_in_headers off), do not reach the upstream, and
// that the request's headers are written in one deterministic order.
func TestUnderscoreHeadersDropped(t *testing.T) { bothServers(t, testUnderscoreHeadersDropped) }

func testUnderscoreHeadersDropped(t *testing.T, sk serverKind) {
	hu := newHeadUpstream(t)
	env := newEnv(t, sk, staticCfg(serviceFor(t, hu.addr())), h1client.Options{})
	var first []string
	for i := range 20 {
		req, _ := http.NewRequest("GET", env.url+"/", nil)
		req.Header["X_Consumer_Username"] = []string{"admin"}
		req.Header["X-Consumer-Username"] = []string{"alice"}
		for _, h := range []string{"Zeta", "Alpha", "Mid", "Beta", "Omega", "Gamma", "Delta", "Kappa"} {
			req.Header.Set("X-"+h, h)
		}
		resp, _ := do(t, env.client, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		lines := hu.last()
		for _, l := range lines {
			if name, _, _ := strings.Cut(l, ":"); strings.Contains(name, "_") {
				t.Fatalf("request %d: %q reached the upstream", i, l)
			}
		}
		if !slices.Contains(lines, "X-Consumer-Username: alice") {
			t.Fatalf("request %d: X-Consumer-Username missing upstream: %q", i, lines)
		}
		names := fieldNames(lines)
		if i == 0 {
			first = names
			continue
		}
		if !slices.Equal(names, first) {
			t.Fatalf("request %d: header order\n%q\nfirst request:\n%q", i, names, first)
		}
	}

	// With AllowUnderscoreHeaders they pass, as with nginx's
	// underscores_in_headers on.
	cfg := staticCfg(serviceFor(t, hu.addr()))
	cfg.AllowUnderscoreHeaders = true
	if err := env.p.Store(cfg); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", env.url+"/", nil)
	req.Header["X_Custom"] = []string{"kept"}
	do(t, env.client, req)
	var kept bool
	for _, l := range hu.last() {
		if name, v, _ := strings.Cut(l, ": "); strings.EqualFold(name, "X_Custom") && v == "kept" {
			kept = true
		}
	}
	if !kept {
		t.Errorf("X_Custom dropped with AllowUnderscoreHeaders: %q", hu.last())
	}
}

// TestUpstreamHeadLimits checks that an upstream's response head is bounded
// as a whole, in bytes and in fields, and not only line by line: a head
// over the bounds is Kong's 502.
func TestUpstreamHeadLimits(t *testing.T) { bothServers(t, testUpstreamHeadLimits) }

func testUpstreamHeadLimits(t *testing.T, sk serverKind) {
	fields := func(n, size int) string {
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\n")
		for i := range n - 1 {
			fmt.Fprintf(&b, "X-F-%06d: %s\r\n", i, strings.Repeat("a", size))
		}
		b.WriteString("Content-Length: 2\r\n\r\nok")
		return b.String()
	}
	tests := []struct {
		name   string
		resp   string
		status int
	}{
		{"1,000 fields", fields(1000, 10), 200},
		{"1,001 fields", fields(1001, 10), 502},
		{"5,000 short lines", fields(5000, 31), 502},
		{"64 KiB in 20 long lines", fields(20, 4000), 502},
		{"endless interim responses", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 20000) + fields(2, 1), 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRawUpstream(t, fixedResponder(tt.resp))
			env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{})
			resp, body := get(t, env.url+"/")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%d header fields relayed), want %d", resp.StatusCode, len(resp.Header), tt.status)
			}
			if tt.status == 502 && !strings.Contains(string(body), MsgBadGateway) {
				t.Errorf("body %q, want Kong's %q", body, MsgBadGateway)
			}
		})
	}
}

// TestUpstreamTrailerLimits checks that the trailer section of a chunked
// upstream body is bounded like a head: an upstream cannot keep the proxy
// reading trailers. Streamed, the body is aborted; buffered for a body
// filter, the answer is Kong's 502.
func TestUpstreamTrailerLimits(t *testing.T) { bothServers(t, testUpstreamTrailerLimits) }

func testUpstreamTrailerLimits(t *testing.T, sk serverKind) {
	resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" +
		strings.Repeat("X-Trailer: some trailer value\r\n", 200_000) + "\r\n"
	up := newRawUpstream(t, fixedResponder(resp))
	svc := serviceFor(t, up.addr())

	t.Run("streamed", func(t *testing.T) {
		env := newEnv(t, sk, staticCfg(svc), h1client.Options{})
		res, err := env.client.Get(env.url + "/")
		if err != nil {
			return // aborted before the head reached the client
		}
		defer res.Body.Close()
		if b, err := io.ReadAll(res.Body); err == nil {
			t.Errorf("body %q read completely after 200,000 trailer fields; want it aborted", b)
		}
	})
	t.Run("buffered", func(t *testing.T) {
		set := phaseSet(t, &phaseRec{}, nil, &phaseCfg{Upper: true}, nil)
		env := newEnv(t, sk, &Config{Resolver: resolverFunc(func(_ *http.Request, m *Match) {
			m.Service, m.Plugins = svc, set.Route("r1")
		})}, h1client.Options{})
		res, body := get(t, env.url+"/")
		// The error body goes through the body filter too (upper-cased).
		if res.StatusCode != 502 || !strings.Contains(string(body), strings.ToUpper(MsgBadGateway)) {
			t.Errorf("got %d %q, want Kong's 502", res.StatusCode, body)
		}
	})
}

// TestPluginHeadersCannotInject checks that every header line written
// upstream goes through the one field writer: a request-transformer
// template fed from a percent-decoded query argument cannot end its line
// and add another, and a name that is not a token is not written.
func TestPluginHeadersCannotInject(t *testing.T) { bothServers(t, testPluginHeadersCannotInject) }

func testPluginHeadersCannotInject(t *testing.T, sk serverKind) {
	hu := newHeadUpstream(t)
	svc := serviceFor(t, hu.addr())
	env0, err := plugin.NewMemEnv(plugin.MemEnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"add":    map[string]any{"headers": []string{"X-Q:$(query_params.q)"}},
		"rename": map[string]any{"headers": []string{"X-Src:$(query_params.n)"}},
	})
	set, err := plugin.Compile(context.Background(), plugin.CompileOptions{Env: env0,
		Routes:  []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}},
		Plugins: []plugin.PluginEntity{{ID: "rt", Name: requesttransformer.Name, Enabled: true, RouteID: "r1", Config: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	env := newEnv(t, sk, &Config{Resolver: resolverFunc(func(r *http.Request, m *Match) {
		m.Service, m.Plugins = svc, set.Route("r1")
		// What any plugin could produce: a value with a NUL, a name that is
		// not a token.
		r.Header["X-Nul"] = []string{"a\x00b"}
		r.Header["Bad Name"] = []string{"v"}
	})}, h1client.Options{})
	resp, _ := get(t, env.url+"/?q=a%0d%0aX-Injected:%20yes&n=X-Renamed:%20x%0d%0aX-Injected2:%20yes", "X-Src", "src")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := hu.last()
	for _, l := range lines {
		if strings.HasPrefix(l, "X-Injected") || strings.HasPrefix(l, " X-Injected") || strings.HasPrefix(l, "Bad Name") ||
			strings.ContainsAny(l, "\r\x00") {
			t.Errorf("header line %q reached the upstream; all lines: %q", l, lines)
		}
	}
	if !slices.Contains(lines, "X-Q: a  X-Injected: yes") {
		t.Errorf("X-Q not written neutralised: %q", lines)
	}
	if !slices.Contains(lines, "X-Nul: a b") {
		t.Errorf("X-Nul not written neutralised: %q", lines)
	}
}

// TestChunkFramingStrict checks that chunk-size lines and chunk data
// terminators of upstream bodies must end with CRLF: a bare LF is a framing
// the proxy and the upstream could disagree on, so the body is aborted.
func TestChunkFramingStrict(t *testing.T) { bothServers(t, testChunkFramingStrict) }

func testChunkFramingStrict(t *testing.T, sk serverKind) {
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct{ name, body string }{
		{"chunk-size line", "2\nok\r\n0\r\n\r\n"},
		{"chunk terminator", "2\r\nok\n0\r\n\r\n"},
		{"last-chunk line", "2\r\nok\r\n0\n\r\n"},
		{"trailer line", "2\r\nok\r\n0\r\nX-T: 1\n\r\n"},
		{"final line", "2\r\nok\r\n0\r\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRawUpstream(t, fixedResponder(head+tt.body))
			env := newEnv(t, sk, staticCfg(serviceFor(t, up.addr())), h1client.Options{})
			res, err := env.client.Get(env.url + "/")
			if err != nil {
				return // aborted before the head reached the client
			}
			defer res.Body.Close()
			if b, err := io.ReadAll(res.Body); err == nil {
				t.Errorf("body %q relayed complete; want it aborted", b)
			}
		})
	}
}

// TestTraceNotAllowed checks that TRACE is answered 405 with Kong's error
// body unless the matched route lists the method, and never reaches the
// upstream.
func TestTraceNotAllowed(t *testing.T) { bothServers(t, testTraceNotAllowed) }

func testTraceNotAllowed(t *testing.T, sk serverKind) {
	up := newRawUpstream(t, fixedResponder(okResp))
	svc := serviceFor(t, up.addr())
	env := newEnv(t, sk, staticCfg(svc), h1client.Options{})
	req, _ := http.NewRequest("TRACE", env.url+"/", nil)
	resp, body := do(t, env.client, req)
	id := resp.Header.Get("X-Gantry-Request-Id")
	want := fmt.Sprintf("{\n  \"message\":%q,\n  \"request_id\":%q\n}", MsgMethodNotAllowed, id)
	if resp.StatusCode != 405 || string(body) != want || id == "" {
		t.Errorf("got %d %q, want 405 %q", resp.StatusCode, body, want)
	}
	if n := up.conns.Load(); n != 0 {
		t.Errorf("TRACE reached the upstream (%d connections)", n)
	}

	// A route that lists TRACE lets it through.
	for _, methods := range [][]string{{"TRACE"}, {"GET", "TRACE"}} {
		if err := env.p.Store(&Config{Resolver: resolverFunc(func(_ *http.Request, m *Match) {
			m.Service, m.Methods = svc, methods
		})}); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("TRACE", env.url+"/", nil)
		if resp, _ := do(t, env.client, req); resp.StatusCode != 200 {
			t.Errorf("route methods %v: TRACE got %d, want it proxied", methods, resp.StatusCode)
		}
	}
}

// TestClientCancelStopsUpstreamWait checks that the request's context
// bounds the wait for the upstream: a client that goes away frees the
// upstream connection at once instead of after read_timeout.
func TestClientCancelStopsUpstreamWait(t *testing.T) {
	closed := make(chan struct{}, 1)
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = readHead(br)
		_, _ = br.ReadByte() // never answers; returns when the proxy closes
		closed <- struct{}{}
	})
	svc := serviceFor(t, up.addr())
	svc.ReadTimeout = 10 * time.Second
	tr, err := h1client.New(h1client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	p, err := New(Options{Transport: tr, Config: staticCfg(svc)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("ServeHTTP returned %s after the request was cancelled (read_timeout %s)", took, svc.ReadTimeout)
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Error("the upstream connection was not closed after the cancellation")
	}
}
