package h1server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/h1"
)

// TestServerAllocs is the allocation budget of the server loop alone per
// keep-alive request: the head string (the request's context is the
// connection's, reset per request).
func TestServerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	srv, err := New(Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = zeroLength
		w.WriteHeader(204)
	})})
	if err != nil {
		t.Fatal(err)
	}
	req := "GET /bench?x=1 HTTP/1.1\r\nHost: gw\r\nUser-Agent: wrk\r\napikey: key-7\r\n\r\n"
	in := &loopReader{data: []byte(req)}
	c := &serverConn{s: srv, remote: "127.0.0.1:1"}
	c.init(nil, in, io.Discard)
	c.state.Store(connIdle)
	run := func() {
		r, status, _ := c.readRequest()
		if r == nil {
			t.Fatalf("parse failed: %d", status)
		}
		c.w.reset(r)
		c.h.ServeHTTP(&c.w, r)
		c.endRequest()
		if keep, _ := c.finishRequest(); !keep {
			t.Fatal("connection not reusable")
		}
		c.state.Store(connIdle)
	}
	run()
	allocs := testing.AllocsPerRun(1000, run)
	const budget = 1
	if allocs > budget {
		t.Errorf("server loop allocs per request = %v, budget %d", allocs, budget)
	}
	t.Logf("server loop allocs per request: %v", allocs)
}

// loopReader returns data forever, one copy per Read.
type loopReader struct{ data []byte }

func (l *loopReader) Read(b []byte) (int, error) { return copy(b, l.data), nil }

// FuzzServerParser feeds arbitrary bytes to the request parser and body
// readers: they must never panic, and what they accept must be coherent.
func FuzzServerParser(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"GET http://x/y HTTP/1.0\r\n\r\n",
		"\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	srv, err := New(Options{Handler: http.NotFoundHandler(), MaxHeaderBytes: 1024})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &serverConn{s: srv, remote: "127.0.0.1:1"}
		c.init(nil, bytes.NewReader(data), io.Discard)
		for range 8 {
			r, status, _ := c.readRequest()
			if r == nil {
				if status != 0 && (status < 400 || status > 599) {
					t.Fatalf("status %d", status)
				}
				return
			}
			if r.Method == "" || r.URL == nil || r.ProtoMajor != 1 {
				t.Fatalf("incoherent request %+v", r)
			}
			if !h1.ValidHost(r.Host) {
				t.Fatalf("invalid host %q accepted", r.Host)
			}
			if _, ok := r.Header["Host"]; ok {
				t.Fatal("Host left in the header map")
			}
			n, err := io.Copy(io.Discard, r.Body)
			if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
				t.Fatalf("body %d bytes, Content-Length %d", n, r.ContentLength)
			}
			c.state.Store(connIdle)
		}
	})
}

// TestRequestContextReset: the connection's context, reused by each of its
// requests, is live again for the next request, cancelled at its end, and a
// stop function kept from an earlier request cannot remove a later
// request's registration.
func TestRequestContextReset(t *testing.T) {
	var (
		oldStop func() bool
		fired   = make(chan int, 4)
		errs    []error
	)
	n := 0
	srv, err := New(Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		ctx := r.Context()
		errs = append(errs, ctx.Err())
		i := n
		stop := context.AfterFunc(ctx, func() { fired <- i })
		if oldStop != nil && oldStop() {
			t.Errorf("request %d: a stop function of request %d removed a registration", i, i-1)
		}
		if i == 1 {
			if !stop() {
				t.Error("request 1: stop found nothing to stop")
			}
			oldStop = stop
		}
		w.Header()["Content-Length"] = zeroLength
		w.WriteHeader(204)
	})})
	if err != nil {
		t.Fatal(err)
	}
	serveKeepAlive(t, srv, 3, func(i int, r *http.Request) {
		if r.Context().Err() == nil {
			t.Errorf("request %d: context live after the request ended", i)
		}
	})
	for i, e := range errs {
		if e != nil {
			t.Errorf("request %d: context ended (%v) while its handler ran", i+1, e)
		}
	}
	got := map[int]bool{}
	for range 2 {
		select {
		case i := <-fired:
			got[i] = true
		case <-time.After(2 * time.Second):
			t.Fatalf("callbacks fired: %v; want requests 2 and 3", got)
		}
	}
	if !got[2] || !got[3] || got[1] {
		t.Errorf("callbacks fired for %v; want requests 2 and 3, not the stopped 1", got)
	}
}

// TestAfterFuncSeesItsRequest checks that a callback registered with the
// request context's AfterFunc method sees that request's ended context even
// when it runs late: the connection's next request waits for it. The context
// package registers each derived context (WithCancel, WithTimeout,
// context.AfterFunc) this way, and its callback reads Err: when it read the
// next request's live context (nil), it panicked with "missing cancel error"
// and took the runtime down. (A function given to context.AfterFunc itself
// runs in a goroutine of its own, after that callback; like the Request, the
// context must not be used once the handler returned.)
func TestAfterFuncSeesItsRequest(t *testing.T) {
	seen := make(chan error, 3)
	var got []error
	n := 0
	srv, err := New(Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if n > 1 {
			// The previous request's callback reports while this request is live.
			select {
			case err := <-seen:
				got = append(got, err)
			case <-time.After(2 * time.Second):
				t.Errorf("request %d: the previous request's callback did not run", n)
			}
		}
		// Registered as the context package registers a derived context's
		// cancel (which reads the parent's Err), slowed down so that the
		// next request would begin meanwhile.
		ctx := r.Context()
		ctx.(interface{ AfterFunc(func()) func() bool }).AfterFunc(func() {
			time.Sleep(20 * time.Millisecond)
			seen <- ctx.Err()
		})
		w.Header()["Content-Length"] = zeroLength
		w.WriteHeader(204)
	})})
	if err != nil {
		t.Fatal(err)
	}
	serveKeepAlive(t, srv, 3, nil)
	if len(got) != 2 {
		t.Fatalf("%d callbacks reported, want 2", len(got))
	}
	for i, err := range got {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("callback of request %d saw Err() = %v, want context.Canceled (its request had ended)", i+1, err)
		}
	}
}

// serveKeepAlive runs n requests of one keep-alive connection through srv's
// connection loop, calling ended (when set) after each request ended and
// before the next one begins.
func serveKeepAlive(t *testing.T, srv *Server, n int, ended func(i int, r *http.Request)) {
	t.Helper()
	in := &loopReader{data: []byte("GET / HTTP/1.1\r\nHost: gw\r\n\r\n")}
	c := &serverConn{s: srv, remote: "127.0.0.1:1"}
	c.init(nil, in, io.Discard)
	for i := 1; i <= n; i++ {
		c.state.Store(connIdle)
		r, status, _ := c.readRequest()
		if r == nil {
			t.Fatalf("parse failed: %d", status)
		}
		c.w.reset(r)
		c.h.ServeHTTP(&c.w, r)
		c.endRequest()
		if ended != nil {
			ended(i, r)
		}
		if keep, _ := c.finishRequest(); !keep {
			t.Fatal("connection not reusable")
		}
	}
}
