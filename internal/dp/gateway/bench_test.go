package gateway

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/analytics"
)

// okResp is the upstream's answer in the benchmarks: 64 bytes, keep-alive,
// as the bench/ harness's nginx upstream sends.
const okResp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" +
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

var okRespBytes = []byte(okResp)

// rawUpstream answers every GET request head with okResp on a loopback
// listener, with as little work as possible so the benchmarks measure the
// gateway.
func rawUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
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
					if _, err := c.Write(okRespBytes); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// discardWriter is a minimal http.ResponseWriter reused across requests.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(s int)   { d.status = s }
func (d *discardWriter) Flush()              {}
func (d *discardWriter) Write(b []byte) (int, error) {
	d.n += len(b)
	return len(b), nil
}
func (d *discardWriter) reset() { clear(d.h); d.status, d.n = 0, 0 }

// benchGateway is a Gateway (no listeners) with one service and one route
// to a raw upstream, and a request for it.
func benchGateway(tb testing.TB) (*Gateway, *http.Request) {
	tb.Helper()
	host, port, _ := net.SplitHostPort(rawUpstream(tb))
	p, _ := strconv.Atoi(port)
	// Analytics is on, as in the runtime.
	agg, err := analytics.NewAggregator(analytics.AggregatorOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	g, err := New(Options{ProxyListen: Off, ProxyTLSListen: Off, LookupEnv: func(string) (string, bool) { return "", false },
		Analytics: agg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	if errs, err := g.Apply(context.Background(), map[string]any{
		"services": arr(service(1, host, float64(p), nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/")})),
	}, "bench"); err != nil {
		tb.Fatalf("Apply: %v %+v", err, errs)
	}
	r, _ := http.NewRequest("GET", "http://gw.example/bench", nil)
	r.RequestURI = "/bench"
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "wrk")
	return g, r
}

// TestGatewayLayerAllocs is the allocation budget of the gateway's own
// work per request, on top of the proxy's: none. Taking and dropping the
// generation reference and the protocol-rejection check must stay
// allocation free.
func TestGatewayLayerAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("loopback round trips; the race detector changes allocation counts")
	}
	g, r := benchGateway(t)
	w := &discardWriter{h: make(http.Header)}
	g.ServeHTTP(w, r)
	if w.status != 200 || w.n != 64 {
		t.Fatalf("warm-up: status %d, %d bytes", w.status, w.n)
	}
	gen := g.cur.Load()
	direct := testing.AllocsPerRun(500, func() {
		w.reset()
		gen.proxy.ServeHTTP(w, r)
	})
	through := testing.AllocsPerRun(500, func() {
		w.reset()
		g.ServeHTTP(w, r)
	})
	if w.status != 200 || w.n != 64 {
		t.Fatalf("status %d, %d bytes", w.status, w.n)
	}
	const budget = 0
	if through-direct > budget {
		t.Errorf("gateway layer allocs per request = %v (%v through the gateway, %v on the proxy alone), budget %d",
			through-direct, through, direct, budget)
	}
	if gen.refs.Load() != 0 {
		t.Errorf("generation references left after the requests: %d", gen.refs.Load())
	}
	t.Logf("allocs per request: %v through the gateway, %v on the proxy alone", through, direct)
}

// BenchmarkGatewayServeHTTP is one proxied request through the gateway
// layer (generation reference, route match, proxy) with a real loopback
// upstream, without a client-side server. Compare with
// BenchmarkGenerationProxy for the gateway's share.
func BenchmarkGatewayServeHTTP(b *testing.B) {
	g, r := benchGateway(b)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		g.ServeHTTP(w, r)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkGenerationProxy is BenchmarkGatewayServeHTTP without the gateway
// layer: the current generation's proxy called directly.
func BenchmarkGenerationProxy(b *testing.B) {
	g, r := benchGateway(b)
	gen := g.cur.Load()
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		gen.proxy.ServeHTTP(w, r)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkAcquireRelease is the generation reference alone, from every
// core at once: the contended atomic counter all requests share.
func BenchmarkAcquireRelease(b *testing.B) {
	g, _ := benchGateway(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.acquire().release()
		}
	})
}

// BenchmarkGatewayListener is a proxied request end to end through the
// plain listener (the proxy's server loop) on one keep-alive client
// connection, sequentially: client write, gateway, upstream, client read.
func BenchmarkGatewayListener(b *testing.B) {
	host, port, _ := net.SplitHostPort(rawUpstream(b))
	p, _ := strconv.Atoi(port)
	g, err := New(Options{ProxyListen: "127.0.0.1:0", ProxyTLSListen: Off, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	if err := g.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	if errs, err := g.Apply(context.Background(), map[string]any{
		"services": arr(service(1, host, float64(p), nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/")})),
	}, "bench"); err != nil {
		b.Fatalf("Apply: %v %+v", err, errs)
	}
	plain, _ := g.Addrs()
	c, err := net.Dial("tcp", plain.String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	req := []byte("GET /bench HTTP/1.1\r\nHost: gw.example\r\nUser-Agent: wrk\r\n\r\n")
	body := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(l) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(l, []byte("Content-Length: ")); ok {
				n = 0
				for _, ch := range bytes.TrimSpace(v) {
					n = n*10 + int(ch-'0')
				}
			}
		}
		if n != 64 {
			b.Fatalf("Content-Length %d", n)
		}
		if _, err := br.Read(body[:n]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLayerNoUpstream isolates the gateway layer's CPU from the
// loopback round trip, whose noise hides it in BenchmarkGatewayServeHTTP: a
// request no route matches (Kong's 404, router lookup included) served
// through the gateway and by the generation's proxy directly. The
// difference between the two is the gateway layer's share per request.
func BenchmarkLayerNoUpstream(b *testing.B) {
	g, r := benchGateway(b)
	miss := r.Clone(context.Background())
	miss.Host = "gw.example"
	miss.URL.Path, miss.RequestURI = "/bench", "/bench"
	if errs, err := g.Apply(context.Background(), map[string]any{
		"services": arr(service(1, "127.0.0.1", 9, nil)),
		"routes":   arr(route(1, 1, map[string]any{"paths": arr("/elsewhere")})),
	}, "miss"); err != nil {
		b.Fatalf("Apply: %v %+v", err, errs)
	}
	gen := g.cur.Load()
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"gateway", g}, {"proxy", gen.proxy}} {
		b.Run(bc.name, func(b *testing.B) {
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				bc.h.ServeHTTP(w, miss)
			}
			if w.status != 404 {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}
