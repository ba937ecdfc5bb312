package h1client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a loopback TCP server whose connections are served by fn, one
// goroutine each; it counts accepted connections.
type upstream struct {
	ln    net.Listener
	conns atomic.Int64
}

func newUpstream(t testing.TB, fn func(c net.Conn, br *bufio.Reader)) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{ln: ln}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				fn(c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return u
}

// answering answers every request on a connection with the next of resps
// (the last one repeated).
func answering(resps ...string) func(c net.Conn, br *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, resps[min(i, len(resps)-1)]); err != nil {
				return
			}
		}
	}
}

func newTransport(t testing.TB, opts Options) *Transport {
	t.Helper()
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// exchange sends a bodiless request with method on a connection of p and
// reads the whole response; it returns the connection, not yet released.
func exchange(t testing.TB, p *Pool, method string) (*Conn, *Head, string, error) {
	t.Helper()
	c, err := p.Get(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bw := c.Begin(context.Background(), time.Second, time.Second)
	_, _ = fmt.Fprintf(bw, "%s / HTTP/1.1\r\nHost: x\r\n\r\n", method)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	h := &Head{}
	if _, err := c.ReadHead(h, method); err != nil {
		return c, h, "", err
	}
	var b Body
	b.Init(c, h, time.Second)
	var body []byte
	buf := make([]byte, 64)
	for {
		p, err := b.Next(buf)
		body = append(body, p...)
		if errors.Is(err, io.EOF) {
			return c, h, string(body), nil
		}
		if err != nil {
			return c, h, string(body), err
		}
	}
}

// TestReleaseRules checks when a connection goes back to the pool: only
// after a response read to the end of a framing both ends agree on, with
// nothing after it.
func TestReleaseRules(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
	tests := []struct {
		name   string
		method string
		resp   string
		pooled bool
	}{
		{"Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"bytes after Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + smuggled, false},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true},
		{"bytes after chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + smuggled, false},
		{"empty body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
		{"HEAD with Content-Length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true},
		{"HEAD with a body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", true},
		{"204 with a body", "GET", "HTTP/1.1 204 No Content\r\n\r\n" + smuggled, false},
		{"204 with Content-Length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false},
		{"304 with Content-Length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", true},
		{"304 with a body", "GET", "HTTP/1.1 304 Not Modified\r\n\r\n" + smuggled, false},
		{"1xx with Content-Length", "GET", "HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"1xx", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"Transfer-Encoding and Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"until close", "GET", "HTTP/1.1 200 OK\r\n\r\nok", false},
		{"Connection: close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"HTTP/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true},
		{"HTTP/1.0 chunked", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"101", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
				answering(tt.resp)(c, br)
			})
			tr := newTransport(t, Options{})
			p := tr.Pool("k", up.ln.Addr().String(), nil)
			c, _, _, err := exchange(t, p, tt.method)
			if err != nil && !strings.Contains(tt.resp, "\r\n\r\nok") {
				t.Fatal(err)
			}
			// Let bytes sent after the answer arrive.
			time.Sleep(10 * time.Millisecond)
			c.Release()
			if n := tr.IdleConns("k"); (n == 1) != tt.pooled {
				t.Errorf("idle connections after the exchange: %d, want pooled=%v", n, tt.pooled)
			}
		})
	}
}

// TestReleaseNeedsTheWholeBody checks that a connection whose body was not
// read to its end is closed, not pooled.
func TestReleaseNeedsTheWholeBody(t *testing.T) {
	up := newUpstream(t, answering("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"))
	tr := newTransport(t, Options{})
	p := tr.Pool("k", up.ln.Addr().String(), nil)
	c, err := p.Get(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bw := c.Begin(context.Background(), time.Second, time.Second)
	bw.WriteString("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.Flush()
	var h Head
	if _, err := c.ReadHead(&h, "GET"); err != nil {
		t.Fatal(err)
	}
	c.Release()
	if n := tr.IdleConns("k"); n != 0 {
		t.Errorf("%d idle connections after an unread body", n)
	}
}

// TestGetDropsStaleIdle checks that an idle connection that received bytes
// or was closed while pooled is not handed out again, whatever the
// request.
func TestGetDropsStaleIdle(t *testing.T) {
	for _, tt := range []struct {
		name  string
		after func(c net.Conn)
	}{
		{"bytes while idle", func(c net.Conn) { _, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED") }},
		{"closed while idle", func(c net.Conn) { c.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				time.Sleep(5 * time.Millisecond)
				tt.after(c)
				answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")(c, br)
			})
			tr := newTransport(t, Options{})
			p := tr.Pool("k", up.ln.Addr().String(), nil)
			c, _, _, err := exchange(t, p, "GET")
			if err != nil {
				t.Fatal(err)
			}
			c.Release()
			if n := tr.IdleConns("k"); n != 1 {
				t.Fatalf("%d idle connections after a clean exchange", n)
			}
			time.Sleep(30 * time.Millisecond)
			c, err = p.Get(context.Background(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Reused() {
				t.Error("Get reused the stale connection")
			}
		})
	}
}

// TestTLSStaleIdle checks the same under TLS, where a record read along
// with the response sits in the TLS layer, not on the socket.
func TestTLSStaleIdle(t *testing.T) {
	// httptest's TLS server only lends its certificate.
	srv := httptest.NewTLSServer(nil)
	t.Cleanup(srv.Close)
	// The upstream writes its answer and the stray response as two TLS
	// records at once, so that one socket read takes both.
	tl := tls.NewListener(mustListen(t), srv.TLS)
	t.Cleanup(func() { tl.Close() })
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					if i == 0 {
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED")
					}
				}
			}()
		}
	}()
	tr := newTransport(t, Options{})
	p := tr.Pool("k", tl.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	c, err := p.Get(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bw := c.Begin(context.Background(), time.Second, time.Second)
	bw.WriteString("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.Flush()
	time.Sleep(30 * time.Millisecond) // both records arrive before the first read
	var h Head
	if _, err := c.ReadHead(&h, "GET"); err != nil {
		t.Fatal(err)
	}
	var b Body
	b.Init(c, &h, time.Second)
	buf := make([]byte, 64)
	for {
		if _, err := b.Next(buf); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	c.Release()
	c, err = p.Get(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Reused() {
		t.Error("Get reused a TLS connection holding a stray record")
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestHeadLimits checks the bounds of a whole response head, interim heads
// included, in bytes and fields.
func TestHeadLimits(t *testing.T) {
	head := func(fields, size int) string {
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\n")
		for i := range fields - 1 {
			fmt.Fprintf(&b, "X-%04d: %s\r\n", i, strings.Repeat("v", size))
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		return b.String()
	}
	// 17 bytes of status line, 2 of blank line, 19 of Content-Length.
	const fixed = 17 + 2 + 19
	tests := []struct {
		name string
		opts Options
		resp string
		err  error
	}{
		{"fields at the bound", Options{MaxHeaderFields: 10}, head(10, 1), nil},
		{"fields over the bound", Options{MaxHeaderFields: 10}, head(11, 1), ErrHeadTooLarge},
		{"bytes at the bound", Options{MaxHeaderBytes: fixed + 4*(8+10+2)}, head(5, 10), nil},
		{"bytes over the bound", Options{MaxHeaderBytes: fixed + 4*(8+10+2) - 1}, head(5, 10), ErrHeadTooLarge},
		{"interim heads count", Options{MaxHeaderBytes: 1000}, strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 40) + head(1, 0), ErrHeadTooLarge},
		{"default fields", Options{}, head(1001, 1), ErrHeadTooLarge},
		{"default fields at the bound", Options{}, head(1000, 1), nil},
		{"default bytes", Options{MaxHeaderFields: 1 << 20}, head(2000, 40), ErrHeadTooLarge},
		{"one line over the read buffer", Options{ReadBufferSize: 64}, head(2, 100), ErrHeadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, answering(tt.resp))
			p := newTransport(t, tt.opts).Pool("k", up.ln.Addr().String(), nil)
			c, _, _, err := exchange(t, p, "GET")
			c.Close()
			if !errors.Is(err, tt.err) {
				t.Errorf("err %v, want %v", err, tt.err)
			}
		})
	}
}

// TestChunkedFraming checks chunked bodies: CRLF only on every framing
// line, and a trailer section bounded like a head.
func TestChunkedFraming(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name string
		opts Options
		body string
		want string
		err  error
	}{
		{"well formed", Options{}, "2\r\nok\r\n3;ext=1\r\n!!!\r\n0\r\nX-T: 1\r\n\r\n", "ok!!!", nil},
		{"size with trailing space", Options{}, "2 \r\nok\r\n0\r\n\r\n", "ok", nil},
		{"bare LF after the size", Options{}, "2\nok\r\n0\r\n\r\n", "", ErrMalformed},
		{"bare LF after the data", Options{}, "2\r\nok\n0\r\n\r\n", "ok", ErrMalformed},
		{"data longer than its size", Options{}, "2\r\nokk\r\n0\r\n\r\n", "ok", ErrMalformed},
		{"bare LF after the last chunk", Options{}, "2\r\nok\r\n0\n\r\n", "ok", ErrMalformed},
		{"bare LF in the trailers", Options{}, "2\r\nok\r\n0\r\nX-T: 1\n\r\n", "ok", ErrMalformed},
		{"bare LF at the end", Options{}, "2\r\nok\r\n0\r\n\n", "ok", ErrMalformed},
		{"trailer fields at the bound", Options{MaxHeaderFields: 3}, "2\r\nok\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", "ok", nil},
		{"trailer fields over the bound", Options{MaxHeaderFields: 3}, "2\r\nok\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", "ok", ErrTrailerTooLarge},
		{"trailer bytes over the bound", Options{MaxHeaderBytes: 100}, "2\r\nok\r\n0\r\nA: " + strings.Repeat("a", 100) + "\r\n\r\n", "ok", ErrTrailerTooLarge},
		{"endless trailers", Options{}, "2\r\nok\r\n0\r\n" + strings.Repeat("X-T: 1\r\n", 100_000) + "\r\n", "ok", ErrTrailerTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, answering(head+tt.body))
			tr := newTransport(t, tt.opts)
			p := tr.Pool("k", up.ln.Addr().String(), nil)
			c, _, body, err := exchange(t, p, "GET")
			if body != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("body %q, err %v; want %q, %v", body, err, tt.want, tt.err)
			}
			c.Release()
			if n := tr.IdleConns("k"); (n == 1) != (tt.err == nil) {
				t.Errorf("%d idle connections after err %v", n, err)
			}
		})
	}
}

// TestLongLineBeforeShortOnes is the regression test of the header-line
// cache: a line too long to be cached, followed by short ones, once
// panicked with an index out of range.
func TestLongLineBeforeShortOnes(t *testing.T) {
	long := strings.Repeat("c", 600)
	resps := []string{
		"HTTP/1.1 200 OK\r\nX-Long: " + long + "\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\nX-Long: " + long + "\r\nX-C: 3\r\nContent-Length: 2\r\n\r\nok",
	}
	up := newUpstream(t, answering(resps...))
	p := newTransport(t, Options{}).Pool("k", up.ln.Addr().String(), nil)
	want := [][]Field{
		{{"X-Long", long}, {"X-A", "1"}, {"X-B", "2"}, {"Content-Length", "2"}},
		{{"X-A", "1"}, {"X-Long", long}, {"X-C", "3"}, {"Content-Length", "2"}},
		{{"X-A", "1"}, {"X-Long", long}, {"X-C", "3"}, {"Content-Length", "2"}},
	}
	for i, w := range want {
		c, h, _, err := exchange(t, p, "GET")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(h.Fields) != fmt.Sprint(w) {
			t.Errorf("response %d: fields %v, want %v", i, h.Fields, w)
		}
		c.Release()
	}
}

// TestContextInterruptsWait checks that the end of an exchange's context
// ends the wait for the upstream at once, and that the connection is then
// closed instead of pooled.
func TestContextInterruptsWait(t *testing.T) {
	closed := make(chan struct{})
	up := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = http.ReadRequest(br)
		_, _ = br.ReadByte() // no answer; returns when the client closes
		close(closed)
	})
	tr := newTransport(t, Options{})
	p := tr.Pool("k", up.ln.Addr().String(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := p.Get(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bw := c.Begin(ctx, time.Second, 10*time.Second)
	bw.WriteString("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.Flush()
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	var h Head
	_, err = c.ReadHead(&h, "GET")
	if err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("ReadHead returned %v after %s, want an error soon after the cancellation", err, time.Since(start))
	}
	c.Release()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Error("the connection was not closed")
	}
	if n := tr.IdleConns("k"); n != 0 {
		t.Errorf("%d idle connections after an interrupted exchange", n)
	}
}

// TestWriteBody checks the request body writer: exact lengths, chunked
// framing, and a source that disagrees with its declared length.
func TestWriteBody(t *testing.T) {
	got := make(chan string, 1)
	up := newUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return
			}
			got <- fmt.Sprintf("%v %s", req.TransferEncoding, b)
			_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		}
	})
	p := newTransport(t, Options{}).Pool("k", up.ln.Addr().String(), nil)
	for _, tt := range []struct {
		name    string
		body    string
		length  int64
		chunked bool
		want    string
		err     bool
	}{
		{"fixed", "hello", 5, false, "[] hello", false},
		{"chunked", strings.Repeat("x", 70_000), -1, true, "[chunked] " + strings.Repeat("x", 70_000), false},
		{"longer than declared", "hello!", 5, false, "", true},
		{"shorter than declared", "hell", 5, false, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := p.Dial(context.Background(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			bw := c.Begin(context.Background(), time.Second, time.Second)
			if tt.chunked {
				bw.WriteString("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			} else {
				_, _ = fmt.Fprintf(bw, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", tt.length)
			}
			err = c.WriteBody(strings.NewReader(tt.body), tt.length, tt.chunked)
			var be *BodyReadError
			if tt.err {
				if !errors.As(err, &be) {
					t.Errorf("err %v, want a *BodyReadError", err)
				}
				return
			}
			if err != nil || c.Flush() != nil {
				t.Fatal(err)
			}
			if g := <-got; g != tt.want {
				t.Errorf("upstream got %.40q, want %.40q", g, tt.want)
			}
		})
	}
}

// TestOptionChecks checks New's validation.
func TestOptionChecks(t *testing.T) {
	for _, o := range []Options{{MaxIdlePerHost: -1}, {MaxHeaderBytes: -1}, {MaxHeaderFields: -1}, {ReadBufferSize: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// TestIdlePastReadTimeout checks that a connection idle for longer than the
// read timeout of its last exchange is still reused: the deadline that
// bounded that exchange must not make the idle check fail.
func TestIdlePastReadTimeout(t *testing.T) {
	up := newUpstream(t, answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	tr := newTransport(t, Options{})
	p := tr.Pool("k", up.ln.Addr().String(), nil)
	for i := range 2 {
		c, err := p.Get(context.Background(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 && !c.Reused() {
			t.Error("the idle connection was not reused after its last read deadline passed")
		}
		bw := c.Begin(context.Background(), time.Second, 20*time.Millisecond)
		bw.WriteString("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		var h Head
		if _, err := c.ReadHead(&h, "GET"); err != nil {
			t.Fatal(err)
		}
		var b Body
		b.Init(c, &h, 20*time.Millisecond)
		for {
			if _, err := b.Next(make([]byte, 8)); err != nil {
				break
			}
		}
		c.Release()
		time.Sleep(50 * time.Millisecond)
	}
}
