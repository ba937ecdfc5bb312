package h1server

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkServe measures the server loop alone over loopback: a raw
// keep-alive client writes a GET and reads a 204 from a handler that does
// nothing else ("plain"), or that also watches its request's context as
// the upstream client does while it waits (context.AfterFunc, then stop:
// "watched").
func BenchmarkServe(b *testing.B) {
	noContent := func(w http.ResponseWriter) {
		w.Header()["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusNoContent)
	}
	for _, bc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"plain", func(w http.ResponseWriter, _ *http.Request) { noContent(w) }},
		{"watched", func(w http.ResponseWriter, r *http.Request) {
			stop := context.AfterFunc(r.Context(), func() {})
			stop()
			noContent(w)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := New(Options{Handler: bc.h})
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = srv.Serve(ln) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /bench?x=1 HTTP/1.1\r\nHost: gw\r\nUser-Agent: wrk\r\napikey: key-7\r\n\r\n")
			br := bufio.NewReaderSize(c, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				for {
					l, err := br.ReadSlice('\n')
					if err != nil {
						b.Fatal(err)
					}
					if len(l) <= 2 {
						break
					}
				}
			}
		})
	}
}
