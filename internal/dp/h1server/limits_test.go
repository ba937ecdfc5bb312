package h1server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServerSlowHead checks that ReadHeaderTimeout bounds the whole head
// from its first byte, however the client spreads the bytes, while the
// wait for that first byte is IdleTimeout.
func TestServerSlowHead(t *testing.T) {
	const rht = 300 * time.Millisecond
	addr, _ := serveTest(t, Options{ReadHeaderTimeout: rht, IdleTimeout: 5 * time.Second}, http.HandlerFunc(echoHandler))
	trickle := func(t *testing.T, first, drip string) time.Duration {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(4 * time.Second))
		start := time.Now()
		_, _ = io.WriteString(c, first)
		closed := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, c)
			close(closed)
		}()
		for i := 0; ; i++ {
			select {
			case <-closed:
				return time.Since(start)
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := io.WriteString(c, drip[i%len(drip):i%len(drip)+1]); err != nil {
				<-closed
				return time.Since(start)
			}
		}
	}
	for _, tt := range []struct{ name, first, drip string }{
		{"request line a byte at a time", "G", "ET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
		{"header fields a byte at a time", "GET / HTTP/1.1\r\nHost: h\r\n", "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if el := trickle(t, tt.first, tt.drip); el < rht-50*time.Millisecond || el > rht+700*time.Millisecond {
				t.Errorf("connection closed after %v; want about ReadHeaderTimeout (%v) from the first byte", el, rht)
			}
		})
	}
	t.Run("idle wait before the head is IdleTimeout", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(4 * time.Second))
		time.Sleep(rht + 200*time.Millisecond)
		_, _ = io.WriteString(c, "GET /late HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request after an idle wait longer than ReadHeaderTimeout: %v %v", resp, err)
		}
	})
}

// TestServerLingeringClose checks that a response ending the connection
// while the client is still sending (an early 401 before an unread body, a
// 400 for a bad head followed by more bytes) reaches the client whole: the
// server half-closes and reads what still comes instead of closing with
// unread bytes, which resets the connection and drops whatever of the
// response the client has not received yet.
func TestServerLingeringClose(t *testing.T) {
	page := bytes.Repeat([]byte("denied "), 1<<17) // 896 KiB: more than the socket buffers hold
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		w.WriteHeader(401)
		_, _ = w.Write(page)
	}))
	for _, tt := range []struct {
		name, head string
		status     int
		body       []byte
	}{
		{"early response before a large body", "PUT /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 104857600\r\n\r\n", 401, page},
		{"error after a bad head", "PUT /upload HTTP/1.1\r\nHost: h\r\nBad Header: x\r\nContent-Length: 104857600\r\n\r\n", 400, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, tt.head)
			// The client keeps uploading (at 1.6 MB/s) until it has read the
			// answer, as curl and browsers do, and starts reading a little
			// after the server answered.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				chunk := bytes.Repeat([]byte("x"), 16<<10)
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
			defer wg.Wait()
			defer close(stop)
			time.Sleep(300 * time.Millisecond)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || err != nil {
				t.Fatalf("got %d, %d body bytes, %v; want %d", resp.StatusCode, len(body), err, tt.status)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body: %d bytes, want %d", len(body), len(tt.body))
			}
			// After the response the server sent its FIN: a clean EOF, not a
			// reset.
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Errorf("after the response: %v, want EOF", err)
			}
		})
	}
}

// TestServerPanicLogsStack checks that a handler panic is logged with its
// stack and closes the connection.
func TestServerPanicLogsStack(t *testing.T) {
	var mu sync.Mutex
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logged}, nil))
	addr, _ := serveTest(t, Options{Logger: log}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}))
	resps, _, closed := exchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1)
	if len(resps) != 0 || !closed {
		t.Errorf("got %d responses, closed=%v; want the connection dropped", len(resps), closed)
	}
	mu.Lock()
	out := logged.String()
	mu.Unlock()
	if !strings.Contains(out, "boom") || !strings.Contains(out, "TestServerPanicLogsStack") || !strings.Contains(out, "goroutine") {
		t.Errorf("panic logged without its stack: %q", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// flakyListener returns errs from Accept, one per call, before accepting
// from the wrapped listener.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestServerAcceptErrors checks that Serve waits and retries after
// resource exhaustion and aborted handshakes, and returns any other accept
// error instead of spinning on it.
func TestServerAcceptErrors(t *testing.T) {
	newSrv := func(t *testing.T) *Server {
		srv, err := New(Options{Handler: http.HandlerFunc(echoHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	acceptErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
	}
	t.Run("temporary errors are retried", func(t *testing.T) {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := &flakyListener{Listener: inner, errs: []error{acceptErr(syscall.EMFILE), acceptErr(syscall.ECONNABORTED), acceptErr(syscall.ENFILE)}}
		srv := newSrv(t)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		defer func() {
			_ = srv.Close()
			if err := <-done; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		}()
		resps, _, _ := exchange(t, inner.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1)
		if len(resps) != 1 || resps[0].StatusCode != 200 {
			t.Fatalf("no response after temporary accept errors")
		}
	})
	t.Run("other errors end Serve", func(t *testing.T) {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer inner.Close()
		boom := errors.New("listener broken")
		ln := &flakyListener{Listener: inner, errs: []error{boom}}
		srv := newSrv(t)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		select {
		case err := <-done:
			if !errors.Is(err, boom) {
				t.Errorf("Serve returned %v, want %v", err, boom)
			}
		case <-time.After(2 * time.Second):
			_ = srv.Close()
			if err := <-done; err == nil {
				t.Error("Serve returned no error")
			}
			t.Fatal("Serve kept retrying a permanent accept error")
		}
	})
}

// TestServerRequestContext checks the request's context: cancelled once
// the handler returned, and while the handler runs when the client goes
// away; and a handler watching it leaves pipelined requests intact.
func TestServerRequestContext(t *testing.T) {
	type seen struct {
		ctx   context.Context
		early error // ctx.Err() while the handler ran
	}
	seenc := make(chan seen, 4)
	gone := make(chan error, 1)
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch r.URL.Path {
		case "/wait":
			// A slow upstream: the handler waits on the context.
			select {
			case <-ctx.Done():
				gone <- ctx.Err()
			case <-time.After(3 * time.Second):
				gone <- nil
			}
			return
		case "/watch":
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		seenc <- seen{ctx, ctx.Err()}
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
	}))
	t.Run("cancelled when the request ends", func(t *testing.T) {
		resps, _, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1)
		if len(resps) != 1 {
			t.Fatal("no response")
		}
		s := <-seenc
		if s.early != nil {
			t.Errorf("context done while the handler ran: %v", s.early)
		}
		if s.ctx.Err() == nil {
			t.Error("request context still live after the request ended")
		}
		if v, _ := s.ctx.Value(http.LocalAddrContextKey).(net.Addr); v == nil || v.String() != addr {
			t.Errorf("LocalAddrContextKey = %v, want %s", v, addr)
		}
	})
	t.Run("cancelled when the client goes away", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		c.Close()
		if err := <-gone; err == nil {
			t.Error("handler's context not cancelled when the client closed the connection")
		} else if el := time.Since(start); el > time.Second {
			t.Errorf("cancelled %v after the client left", el)
		}
	})
	t.Run("watching handler, pipelined requests", func(t *testing.T) {
		resps, bodies, _ := exchange(t, addr, "GET /watch HTTP/1.1\r\nHost: h\r\n\r\nGET /watch HTTP/1.1\r\nHost: h\r\n\r\n", 2)
		if len(resps) != 2 || bodies[0] != "ok" || bodies[1] != "ok" {
			t.Fatalf("got %d responses %q", len(resps), bodies)
		}
		for range 2 {
			if s := <-seenc; s.early != nil {
				t.Errorf("context done while the handler ran: %v", s.early)
			}
		}
	})
	t.Run("next request sent while the handler waits", func(t *testing.T) {
		// The background read takes the next request's first byte; the
		// parser must still see it.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(c, "GET /watch HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(30 * time.Millisecond)
		_, _ = io.WriteString(c, "GET /watch HTTP/1.1\r\nHost: h\r\n\r\n")
		br := bufio.NewReader(c)
		for i := range 2 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
				t.Fatalf("response %d: %q", i, b)
			}
			if s := <-seenc; s.early != nil {
				t.Errorf("request %d: context done while the handler ran: %v", i, s.early)
			}
		}
	})
	t.Run("watching handler, next request after a pause", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		br := bufio.NewReader(c)
		for i := range 3 {
			_, _ = io.WriteString(c, "GET /watch HTTP/1.1\r\nHost: h\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != "ok" {
				t.Fatalf("request %d: %q", i, b)
			}
			if s := <-seenc; s.early != nil {
				t.Errorf("request %d: context done while the handler ran: %v", i, s.early)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestServerMaxConns checks the connection cap: at MaxConns open
// connections accepting pauses (a new client waits in the listen backlog),
// and resumes when one closes.
func TestServerMaxConns(t *testing.T) {
	addr, srv := serveTest(t, Options{MaxConns: 2}, http.HandlerFunc(echoHandler))
	if got := srv.Options().MaxConns; got != 2 {
		t.Fatalf("Options().MaxConns = %d", got)
	}
	request := func(c net.Conn, br *bufio.Reader) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if err := request(c, bufio.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetDeadline(time.Now().Add(300 * time.Millisecond))
	br := bufio.NewReader(third)
	if err := request(third, br); err == nil || !isTimeout(err) {
		t.Fatalf("third connection served over MaxConns 2: %v", err)
	}
	held[0].Close()
	third.SetDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("third connection not served once a slot freed: %v %v", resp, err)
	}
}

// TestServerListenerSharesLimits checks Server.Listener, for a listener
// another server runs: its connections and Serve's share MaxConns, and its
// writes time out after WriteTimeout.
func TestServerListenerSharesLimits(t *testing.T) {
	writeFailed := make(chan time.Duration, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/flood" {
			w.Header().Set("Content-Length", "2")
			_, _ = io.WriteString(w, "ok")
			return
		}
		start := time.Now()
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 1024 {
			if _, err := w.Write(chunk); err != nil {
				writeFailed <- time.Since(start)
				return
			}
		}
		writeFailed <- -1
	})
	plainAddr, srv := serveTest(t, Options{MaxConns: 1, WriteTimeout: 200 * time.Millisecond}, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := &http.Server{Handler: h}
	go func() { _ = other.Serve(srv.Listener(ln)) }()
	defer other.Close()
	otherAddr := ln.Addr().String()

	get := func(addr string, wait time.Duration) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(wait))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		resp.Body.Close()
		return c, nil
	}
	// Each listener's connection holds the one slot in turn.
	plain, err := get(plainAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var otherConn net.Conn
	go func() {
		var err error
		otherConn, err = get(otherAddr, 3*time.Second)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the other listener served past the shared cap: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	plain.Close()
	if err := <-done; err != nil {
		t.Fatalf("the other listener not served once the slot freed: %v", err)
	}
	if _, err := get(plainAddr, 300*time.Millisecond); err == nil || !isTimeout(err) {
		t.Fatalf("Serve served past the shared cap: %v", err)
	}
	otherConn.Close()

	// A client that does not read: the other server's writes fail after
	// about WriteTimeout once the socket buffers are full.
	c, err := net.Dial("tcp", otherAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
	_, _ = io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: h\r\n\r\n")
	select {
	case el := <-writeFailed:
		if el < 0 {
			t.Fatal("64 MiB written to a client that reads nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writes to a client that reads nothing did not time out")
	}
}

// TestRequestContextDerived checks the paths the context package takes
// for a request's context: derived contexts and context.AfterFunc are
// cancelled with it, and start no goroutine of their own while it lives.
func TestRequestContextDerived(t *testing.T) {
	gone := make(chan string, 4)
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/afterfunc":
			fired := make(chan struct{})
			stop := context.AfterFunc(r.Context(), func() { close(fired) })
			defer stop()
			select {
			case <-fired:
				gone <- "afterfunc"
			case <-time.After(3 * time.Second):
				gone <- "afterfunc not fired"
			}
		case "/child":
			ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
			defer cancel()
			select {
			case <-ctx.Done():
				gone <- "child"
			case <-time.After(3 * time.Second):
				gone <- "child not cancelled"
			}
		case "/body":
			b, _ := io.ReadAll(r.Body)
			select {
			case <-r.Context().Done():
				gone <- "body " + string(b)
			case <-time.After(3 * time.Second):
				gone <- "body: not cancelled"
			}
		case "/goroutines":
			var cancels []context.CancelFunc
			for range 100 {
				_, cancel := context.WithCancel(r.Context())
				cancels = append(cancels, cancel)
				stop := context.AfterFunc(r.Context(), func() {})
				cancels = append(cancels, func() { stop() })
			}
			// Count the goroutines the context package started to watch a
			// parent it cannot hook into, by their creator, rather than by
			// runtime.NumGoroutine: other connections' goroutines ending in
			// the meantime made a difference of counts go negative.
			n := contextWatchers()
			for _, c := range cancels {
				c()
			}
			w.Header().Set("Content-Length", "1")
			_, _ = io.WriteString(w, strconv.Itoa(min(n, 9)))
		}
	}))
	for _, tt := range []struct{ path, req, want string }{
		{"/afterfunc", "GET /afterfunc HTTP/1.1\r\nHost: h\r\n\r\n", "afterfunc"},
		{"/child", "GET /child HTTP/1.1\r\nHost: h\r\n\r\n", "child"},
		{"/body", "POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", "body abc"},
	} {
		t.Run("client leaves "+tt.path, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(c, tt.req)
			time.Sleep(100 * time.Millisecond)
			c.Close()
			if got := <-gone; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("no goroutine per derived context", func(t *testing.T) {
		_, bodies, _ := exchange(t, addr, "GET /goroutines HTTP/1.1\r\nHost: h\r\n\r\n", 1)
		if len(bodies) != 1 || bodies[0] != "0" {
			t.Errorf("goroutines started by 200 derived contexts: %q", bodies)
		}
	})
}

// contextWatchers reports how many live goroutines were started by the
// context package, which starts one per derived context whose parent it
// cannot propagate cancellation from directly.
func contextWatchers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "\ncreated by context.(*cancelCtx).propagateCancel")
		}
		buf = make([]byte, 2*len(buf))
	}
}
