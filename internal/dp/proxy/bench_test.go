package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/ratelimiting"
)

// fastResponder answers each request head (GET, no body) with resp, with
// as little work as possible so benchmarks measure the proxy.
func fastResponder(resp string) func(c net.Conn, br *bufio.Reader) {
	rb := []byte(resp)
	return func(c net.Conn, br *bufio.Reader) {
		for {
			for {
				l, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(l) <= 2 {
					break
				}
			}
			if _, err := c.Write(rb); err != nil {
				return
			}
		}
	}
}

// discardWriter is a minimal http.ResponseWriter reused across requests.
type discardWriter struct {
	h      http.Header
	status int
	n      int
	// snap, when set, names a header whose value WriteHeader copies into
	// snapped: values set by plugins live in memory released with the
	// request, so they are only valid until the response is flushed.
	snap, snapped string
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(s int) {
	d.status = s
	if d.snap != "" {
		d.snapped = strings.Clone(d.h.Get(d.snap))
	}
}
func (d *discardWriter) Flush() {}
func (d *discardWriter) Write(b []byte) (int, error) {
	d.n += len(b)
	return len(b), nil
}
func (d *discardWriter) reset() { clear(d.h); d.status, d.n = 0, 0 }

func benchProxy(tb testing.TB) (*Proxy, *http.Request) { return benchProxyAnalytics(tb, true) }

// benchProxyAnalytics is benchProxy with analytics on or off.
func benchProxyAnalytics(tb testing.TB, analytics bool) (*Proxy, *http.Request) {
	up := newRawUpstream(tb, fastResponder(okResp))
	tr, err := h1client.New(h1client.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	// Analytics is on, as in the runtime: the budgets include it.
	opts := Options{Transport: tr, Config: staticCfg(serviceFor(tb, up.addr()))}
	if analytics {
		opts.Analytics = newAggregator(tb)
	}
	p, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	r, _ := http.NewRequest("GET", "http://gw.example/bench", nil)
	r.RequestURI = "/bench"
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "wrk")
	r.Header.Set("Accept", "*/*")
	return p, r
}

// TestProxyPathAllocs is the allocation budget of the proxy's own work per
// request (net/http's server excluded): the request id string and the one
// backing array of response header values. Header map entries are reused
// by the discard writer, as net/http reuses nothing there either way.
func TestProxyPathAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("loopback round trips; the race detector changes allocation counts")
	}
	p, r := benchProxy(t)
	w := &discardWriter{h: make(http.Header)}
	p.ServeHTTP(w, r)
	if w.status != 200 || w.n != 64 {
		t.Fatalf("warm-up: status %d, %d bytes", w.status, w.n)
	}
	allocs := testing.AllocsPerRun(500, func() {
		w.reset()
		p.ServeHTTP(w, r)
	})
	if w.status != 200 || w.n != 64 {
		t.Fatalf("status %d, %d bytes", w.status, w.n)
	}
	const budget = 2
	if allocs > budget {
		t.Errorf("allocs per request = %v, budget %d", allocs, budget)
	}
	t.Logf("allocs per proxied request (proxy path only): %v", allocs)
}

// BenchmarkProxyPath measures the proxy path alone: handler plus a real
// loopback upstream round trip, without the client-side HTTP server.
func BenchmarkProxyPath(b *testing.B) {
	p, r := benchProxy(b)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		p.ServeHTTP(w, r)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkProxyPathAnalytics is BenchmarkProxyPath with analytics off and
// on, side by side: the cost of recording each request.
func BenchmarkProxyPathAnalytics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			p, r := benchProxyAnalytics(b, on)
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				p.ServeHTTP(w, r)
			}
			if w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}

// BenchmarkEndToEnd measures a whole proxied request in process: a raw
// keep-alive client writes a request to the server running the proxy
// (net/http's, then Serve's), which calls a loopback upstream. Client and
// upstream cost are included.
func BenchmarkEndToEnd(b *testing.B) {
	for _, sk := range serverKinds {
		b.Run(string(sk), func(b *testing.B) { benchEndToEnd(b, sk, false) })
	}
}

// BenchmarkEndToEndPlugins is BenchmarkEndToEnd with key-auth (1,000
// consumers) and rate-limiting on the route.
func BenchmarkEndToEndPlugins(b *testing.B) {
	for _, sk := range serverKinds {
		b.Run(string(sk), func(b *testing.B) { benchEndToEnd(b, sk, true) })
	}
}

func benchEndToEnd(b *testing.B, sk serverKind, plugins bool) {
	do := endToEnd(b, sk, plugins)
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}

// TestEndToEndAllocs is the allocation budget of a whole proxied request
// behind the runtime's own server loop (client and upstream goroutines are
// allocation-free): the request head string, the request's context and
// its watch registration (the context itself is the connection's), the
// request id and the response header values.
func TestEndToEndAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("loopback round trips; the race detector changes allocation counts")
	}
	for _, plugins := range []bool{false, true} {
		t.Run(fmt.Sprintf("plugins=%v", plugins), func(t *testing.T) {
			do := endToEnd(t, ownLoop, plugins)
			do()
			allocs := testing.AllocsPerRun(500, do)
			const budget = 5
			if allocs > budget {
				t.Errorf("allocs per request = %v, budget %d", allocs, budget)
			}
			t.Logf("allocs per proxied request (server loop + proxy): %v", allocs)
		})
	}
}

// endToEnd starts the proxy behind the sk server with a loopback upstream
// and returns a function that sends one keep-alive request from a raw
// client and reads its 200 answer.
func endToEnd(tb testing.TB, sk serverKind, plugins bool) func() {
	up := newRawUpstream(tb, fastResponder(okResp))
	svc := serviceFor(tb, up.addr())
	cfg := staticCfg(svc)
	if plugins {
		chain := keyAuthRateLimit(tb, 1000).Route("r1")
		cfg = &Config{Resolver: resolverFunc(func(_ *http.Request, m *Match) {
			m.Service, m.RouteID, m.Plugins = svc, "r1", chain
		})}
	}
	env := newEnvOpts(tb, sk, Options{Config: cfg, Analytics: newAggregator(tb)}, h1client.Options{})
	c, err := net.Dial("tcp", env.addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	req := []byte("GET /bench HTTP/1.1\r\nHost: gw\r\nUser-Agent: wrk\r\napikey: key-7\r\n\r\n")
	br := bufio.NewReaderSize(c, 4096)
	return func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		// Read the head, then the 64-byte body.
		cl := 0
		var status [3]byte
		first := true
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				tb.Fatal(err)
			}
			if first {
				copy(status[:], l[9:12])
				first = false
			}
			if len(l) <= 2 {
				break
			}
			if bytes.HasPrefix(l, []byte("Content-Length: ")) {
				cl = 64
			}
		}
		if cl == 0 || string(status[:]) != "200" {
			tb.Fatalf("status %s, no Content-Length 64", status[:])
		}
		if _, err := br.Discard(cl); err != nil {
			tb.Fatal(err)
		}
	}
}

// keyAuthRateLimit compiles key-auth (header apikey, n consumers with keys
// key-0..key-n-1) and rate-limiting (local policy, limit never hit) for route
// r1, the plugin pair of the comparison harness.
func keyAuthRateLimit(tb testing.TB, n int) *plugin.Set {
	tb.Helper()
	opts := plugin.MemEnvOptions{}
	for i := range n {
		id := "c" + itoa(int64(i))
		opts.Consumers = append(opts.Consumers, plugin.Consumer{ID: id, Username: "user-" + itoa(int64(i))})
		opts.KeyAuths = append(opts.KeyAuths, plugin.KeyAuthCredential{ID: "k" + itoa(int64(i)), ConsumerID: id, Key: "key-" + itoa(int64(i))})
	}
	env, err := plugin.NewMemEnv(opts)
	if err != nil {
		tb.Fatal(err)
	}
	set, err := plugin.Compile(context.Background(), plugin.CompileOptions{
		Env:    env,
		Routes: []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}},
		Plugins: []plugin.PluginEntity{
			{ID: "p1", Name: keyauth.Name, Enabled: true, RouteID: "r1", Config: json.RawMessage(
				`{"key_names":["apikey"],"hide_credentials":false,"key_in_header":true,"key_in_query":true,"key_in_body":false,"run_on_preflight":true}`)},
			{ID: "p2", Name: ratelimiting.Name, Enabled: true, RouteID: "r1", Config: json.RawMessage(
				`{"second":1e12,"minute":1e12,"limit_by":"consumer","policy":"local","fault_tolerant":true,` +
					`"redis":{"port":6379,"timeout":2000,"database":0},"hide_client_headers":false,"error_code":429,` +
					`"error_message":"API rate limit exceeded","sync_rate":-1}`)},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { set.Close() })
	return set
}

// benchProxyPlugins is benchProxy with key-auth + rate-limiting on the route.
func benchProxyPlugins(tb testing.TB) (*Proxy, *http.Request) {
	p, r := benchProxy(tb)
	set := keyAuthRateLimit(tb, 1000)
	svc := p.Config().Resolver.(StaticResolver).Service
	chain := set.Route("r1")
	if err := p.Store(&Config{Resolver: resolverFunc(func(_ *http.Request, m *Match) {
		m.Service, m.RouteID, m.Plugins = svc, "r1", chain
	})}); err != nil {
		tb.Fatal(err)
	}
	r.Header.Set("Apikey", "key-7")
	return p, r
}

// TestProxyPathAllocsPlugins is the budget with key-auth + rate-limiting:
// the plugin phases add no allocation of their own.
func TestProxyPathAllocsPlugins(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("loopback round trips; the race detector changes allocation counts")
	}
	p, r := benchProxyPlugins(t)
	w := &discardWriter{h: make(http.Header), snap: "Ratelimit-Limit"}
	p.ServeHTTP(w, r)
	if w.status != 200 || w.n != 64 || w.snapped != "1000000000000" {
		t.Fatalf("warm-up: status %d, %d bytes, RateLimit-Limit %q", w.status, w.n, w.snapped)
	}
	w.snap = ""
	allocs := testing.AllocsPerRun(500, func() {
		w.reset()
		p.ServeHTTP(w, r)
	})
	if w.status != 200 || w.n != 64 {
		t.Fatalf("status %d, %d bytes", w.status, w.n)
	}
	const budget = 2
	if allocs > budget {
		t.Errorf("allocs per request with key-auth + rate-limiting = %v, budget %d", allocs, budget)
	}
	t.Logf("allocs per proxied request with key-auth + rate-limiting: %v", allocs)
	r.Header.Set("Apikey", "wrong")
	w.reset()
	p.ServeHTTP(w, r)
	if w.status != 401 {
		t.Errorf("wrong key: status %d, want 401", w.status)
	}
}

// BenchmarkProxyPathPlugins is BenchmarkProxyPath with key-auth (1,000
// consumers) and rate-limiting (local, never hit) on the route.
func BenchmarkProxyPathPlugins(b *testing.B) {
	p, r := benchProxyPlugins(b)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		p.ServeHTTP(w, r)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}
