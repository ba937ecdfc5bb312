package h1server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoHandler answers with what the server parsed, one fact per line, so
// tests can check the parser through the real connection loop.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "method=%s uri=%s path=%s query=%s host=%s proto=%s close=%v\n", r.Method, r.RequestURI, r.URL.Path, r.URL.RawQuery, r.Host, r.Proto, r.Close)
	fmt.Fprintf(&b, "cl=%d te=%v body=%q err=%v\n", r.ContentLength, r.TransferEncoding, body, err)
	fmt.Fprintf(&b, "x-test=%q ua=%q\n", r.Header.Values("X-Test"), r.Header.Get("User-Agent"))
	w.Header().Set("Content-Length", fmt.Sprint(b.Len()))
	_, _ = io.WriteString(w, b.String())
}

// serveTest starts a Server with opts and h on a loopback listener and
// returns its address; the server is shut down when the test ends.
func serveTest(t testing.TB, opts Options, h http.Handler) (string, *Server) {
	t.Helper()
	opts.Handler = h
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), srv
}

// exchange writes raw on a new connection and reads every response until
// the server closes or n responses arrived. closed reports whether the
// server ended the connection cleanly (EOF) after them.
func exchange(t *testing.T, addr, raw string, n int) (resps []*http.Response, bodies []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		// Nothing to wait for: end the client's side so that the server
		// sees EOF in the middle of what it read.
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	for len(resps) < n {
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			break
		}
		b, _ := io.ReadAll(resp.Body)
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
	// Did the server close the connection?
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = br.ReadByte()
	closed = errors.Is(err, io.EOF)
	return resps, bodies, closed
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServerParser(t *testing.T) {
	addr, _ := serveTest(t, Options{MaxHeaderBytes: 512}, http.HandlerFunc(echoHandler))
	long := strings.Repeat("a", 600)
	tests := []struct {
		name   string
		raw    string
		n      int
		status []int
		body   []string // substrings expected in each body
		closed bool
	}{
		{"simple GET, keep-alive", "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nuser-agent: t\r\n\r\n", 1, []int{200},
			[]string{"method=GET uri=/a/b?x=1 path=/a/b query=x=1 host=h proto=HTTP/1.1 close=false\ncl=0 te=[] body=\"\" err=<nil>\nx-test=[] ua=\"t\""}, false},
		{"pipelined requests", "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nX-Test: a\r\nx-test: b\r\n\r\n", 2, []int{200, 200},
			[]string{"path=/1", "path=/2 ", "x-test=[\"a\" \"b\"]"}, false},
		{"leading empty line ignored", "\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1, []int{200}, []string{"path=/x"}, false},
		{"escaped path decoded, raw URI kept", "GET /a%20b/%2F?q HTTP/1.1\r\nHost: h\r\n\r\n", 1, []int{200}, []string{"uri=/a%20b/%2F?q path=/a b// query=q"}, false},
		{"absolute form sets host", "GET http://abs.example/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", 1, []int{200}, []string{"path=/p query=q=1 host=abs.example"}, false},
		{"Content-Length body", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n", 2, []int{200, 200},
			[]string{"cl=5 te=[] body=\"hello\"", "path=/n"}, false},
		{"chunked body with extension and trailer", "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n", 1, []int{200},
			[]string{"cl=-1 te=[chunked] body=\"abc0123456789\" err=<nil>"}, false},
		{"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n", 1, []int{200}, []string{"proto=HTTP/1.0 close=true"}, true},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, []int{200}, []string{"close=false"}, false},
		{"Connection: close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 1, []int{200}, []string{"close=true"}, true},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 1, []int{400}, []string{"Bad request"}, true},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1, []int{400}, nil, true},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 1, []int{400}, nil, true},
		{"malformed request line", "GARBAGE\r\n\r\n", 1, []int{400}, nil, true},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 1, []int{400}, nil, true},
		{"bad method token", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 1, []int{400}, nil, true},
		{"HTTP/2 version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 1, []int{505}, nil, true},
		{"unknown version", "GET / FTP/1.0\r\nHost: h\r\n\r\n", 1, []int{400}, nil, true},
		{"header without colon", "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", 1, []int{400}, nil, true},
		{"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n", 1, []int{400}, nil, true},
		{"obsolete line folding", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n", 1, []int{400}, nil, true},
		{"control byte in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x01c\r\n\r\n", 1, []int{400}, nil, true},
		{"both Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1, []int{400}, nil, true},
		{"conflicting Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 1, []int{400}, nil, true},
		{"negative Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 1, []int{400}, nil, true},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 1, []int{400}, nil, true},
		{"unknown transfer coding before chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 1, []int{501}, nil, true},
		{"unknown expectation", "POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\na", 1, []int{417}, nil, true},
		{"headers too large", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + long + "\r\n\r\n", 1, []int{494}, []string{msgHeaderTooLarge}, true},
		{"request line too long", "GET /" + long + " HTTP/1.1\r\nHost: h\r\n\r\n", 1, []int{414}, nil, true},
		{"malformed chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 1, []int{200}, []string{"err=h1server: malformed chunked request body"}, true},
		{"truncated head then EOF", "GET / HTTP/1.1\r\nHost: h\r\n", 0, nil, nil, true},
		{"fragment stripped", "GET /f?q=1#frag HTTP/1.1\r\nHost: h\r\n\r\n", 1, []int{200}, []string{"uri=/f?q=1 path=/f query=q=1 "}, false},
		{"HTTP/1.2 served as HTTP/1.1", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 1, []int{200}, []string{"proto=HTTP/1.1 close=false"}, false},
		{"OPTIONS * answered by the server", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n", 2, []int{200, 200}, []string{"", "path=/next"}, false},
		{"CONNECT refused", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 1, []int{405}, []string{"Method not allowed"}, true},
		{"chunk-size line with a bare LF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 1, []int{200}, []string{"err=h1server: malformed chunked request body: a line ends without CRLF"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resps, bodies, closed := exchange(t, addr, tt.raw, tt.n)
			if len(resps) != len(tt.status) {
				t.Fatalf("%d responses, want %d (%v)", len(resps), len(tt.status), bodies)
			}
			for i, resp := range resps {
				if resp.StatusCode != tt.status[i] {
					t.Errorf("response %d: status %d, want %d: %q", i, resp.StatusCode, tt.status[i], bodies[i])
				}
				if i < len(tt.body) && !strings.Contains(bodies[i], tt.body[i]) {
					t.Errorf("response %d: body %q does not contain %q", i, bodies[i], tt.body[i])
				}
				if resp.Header.Get("Date") == "" {
					t.Errorf("response %d: no Date header", i)
				}
			}
			if closed != tt.closed {
				t.Errorf("connection closed = %v, want %v", closed, tt.closed)
			}
		})
	}
}

// TestServerResponseFraming checks how the writer frames what handlers
// write: declared lengths, chunked when unknown, close for HTTP/1.0,
// nothing for HEAD, and short bodies closing the connection.
func TestServerResponseFraming(t *testing.T) {
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/len":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		case "/stream":
			_, _ = io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part2")
		case "/empty":
		case "/short":
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "abc")
		case "/inject":
			w.Header().Set("X-Evil", "a\r\nSet-Cookie: x=1")
			w.WriteHeader(204)
		case "/upgrade-required":
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "TLS/1.2, HTTP/1.1")
			w.Header().Set("Content-Length", "2")
			w.WriteHeader(426)
			_, _ = io.WriteString(w, "no")
		case "/early-hints":
			w.Header().Set("Link", "</s.css>; rel=preload")
			w.WriteHeader(103)
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "ok")
		}
	}))
	tests := []struct {
		name, raw string
		status    int
		body      string
		wantHdr   map[string]string
		closed    bool
	}{
		{"declared length", "GET /len HTTP/1.1\r\nHost: h\r\n\r\n", 200, "hello", map[string]string{"Content-Length": "5"}, false},
		{"chunked when unknown", "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n", 200, "part1,part2", map[string]string{"Transfer-Encoding": ""}, false},
		{"HTTP/1.0 unknown length closes", "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, "part1,part2", map[string]string{"Connection": "close"}, true},
		{"nothing written gets length 0", "GET /empty HTTP/1.1\r\nHost: h\r\n\r\n", 200, "", map[string]string{"Content-Length": "0"}, false},
		{"HEAD sends no body", "HEAD /len HTTP/1.1\r\nHost: h\r\n\r\n", 200, "", map[string]string{"Content-Length": "5"}, false},
		{"short body closes", "GET /short HTTP/1.1\r\nHost: h\r\n\r\n", 200, "abc", nil, true},
		{"CR/LF in values neutralised", "GET /inject HTTP/1.1\r\nHost: h\r\n\r\n", 204, "", map[string]string{"Set-Cookie": "", "X-Evil": "a  Set-Cookie: x=1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			_, _ = io.WriteString(c, tt.raw)
			br := bufio.NewReader(c)
			method := "GET"
			if strings.HasPrefix(tt.raw, "HEAD") {
				method = "HEAD"
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if tt.name != "short body closes" && err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			for k, v := range tt.wantHdr {
				got := resp.Header.Get(k)
				switch k {
				case "Transfer-Encoding":
					got = strings.Join(resp.TransferEncoding, ",")
					v = "chunked"
				case "Connection": // net/http reports it as Close
					got = fmt.Sprint(resp.Close)
					v = fmt.Sprint(v == "close")
				}
				if got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err = br.ReadByte()
			if closed := errors.Is(err, io.EOF); closed != tt.closed {
				t.Errorf("closed = %v (%v), want %v", closed, err, tt.closed)
			}
		})
	}
	t.Run("handler's Connection header kept", func(t *testing.T) {
		for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
			resps, bodies, _ := exchange(t, addr, "GET /upgrade-required "+proto+"\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"+
				"GET /len "+proto+"\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", 2)
			if len(resps) != 2 || resps[0].StatusCode != 426 || bodies[0] != "no" || resps[1].StatusCode != 200 {
				t.Fatalf("%s: got %d responses %q; the connection must stay usable", proto, len(resps), bodies)
			}
			want := "Upgrade"
			if proto == "HTTP/1.0" {
				want = "Upgrade, keep-alive"
			}
			if got := resps[0].Header.Values("Connection"); len(got) != 1 || got[0] != want || resps[0].Header.Get("Upgrade") != "TLS/1.2, HTTP/1.1" {
				t.Errorf("%s: Connection %q, Upgrade %q; want %q", proto, got, resps[0].Header.Get("Upgrade"), want)
			}
		}
	})
	t.Run("103 early hints then 200", func(t *testing.T) {
		resps, bodies, _ := exchange(t, addr, "GET /early-hints HTTP/1.1\r\nHost: h\r\n\r\n", 2)
		// http.ReadResponse returns the interim response first.
		if len(resps) < 2 || resps[0].StatusCode != 103 || resps[0].Header.Get("Link") == "" || resps[1].StatusCode != 200 || bodies[1] != "ok" {
			t.Errorf("got %d responses: %v %q", len(resps), resps, bodies)
		}
	})
}

func TestServerExpectContinue(t *testing.T) {
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(413)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		_, _ = w.Write(b)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "PUT /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	// The server must ask for the body before the client sends it.
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim line %q, %v", line, err)
	}
	_, _ = br.ReadString('\n')
	_, _ = io.WriteString(c, "data")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "data" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	// A handler that answers without reading gets no 100, and the
	// connection closes since the client may or may not send the body.
	_, _ = io.WriteString(c, "PUT /reject HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("reject: %v %v", resp, err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("connection not closed after an unread expected body: %v", err)
	}
}

func TestServerTimeouts(t *testing.T) {
	addr, _ := serveTest(t, Options{IdleTimeout: 150 * time.Millisecond, ReadHeaderTimeout: 150 * time.Millisecond},
		http.HandlerFunc(echoHandler))
	tests := []struct {
		name string
		send string
	}{
		{"idle keep-alive connection", "GET / HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"incomplete head", "GET / HTTP/1.1\r\nHo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			start := time.Now()
			_, _ = io.WriteString(c, tt.send)
			n, _ := io.Copy(io.Discard, c) // until the server closes
			el := time.Since(start)
			if el < 100*time.Millisecond || el > 2*time.Second {
				t.Errorf("closed after %v, want about 150ms", el)
			}
			if tt.name == "incomplete head" && n != 0 {
				t.Errorf("got %d bytes for an incomplete head", n)
			}
		})
	}
}

func TestServerGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int64
	srv, err := New(Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started.Add(1)
			<-release
		}
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
	})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// An idle keep-alive connection, and one with a request in flight.
	idle, _ := net.Dial("tcp", addr)
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
	ibr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(ibr, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle warm-up: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(ibr, 2))
	busy, _ := net.Dial("tcp", addr)
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// The idle connection is closed at once.
	if _, err := ibr.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	// New connections are refused.
	time.Sleep(20 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	// The in-flight request completes, with Connection: close.
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok" || !resp.Close {
		t.Errorf("in-flight: %d %q close=%v", resp.StatusCode, b, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestServerShutdownDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	addr, srv := serveTest(t, Options{}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded with a request stuck", err)
	}
}

// TestServerCloseAfterDeadline checks that Close ends what a Shutdown past
// its deadline left: the stuck request's connection, and an idle keep-alive
// one, and that Serve returns.
func TestServerCloseAfterDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv, err := New(Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-block
		}
	})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, _ = io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded with a request stuck", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	busy.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := busy.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("busy connection still open after Close: read %d, %v", n, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

func TestServerPanicClosesConnection(t *testing.T) {
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	resps, _, closed := exchange(t, addr, "GET /panic HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 2)
	if len(resps) != 0 || !closed {
		t.Errorf("got %d responses, closed=%v; want the connection dropped", len(resps), closed)
	}
	resps, _, _ = exchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1)
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Error("server stopped serving after a panic")
	}
}

// TestServerAbortSendsWhatWasWritten: a handler that aborts after writing
// a head and part of a body (the proxy, when its upstream dies mid-body)
// leaves the client with those bytes and then the end of the connection, as
// nginx does, so the client sees a truncated response rather than nothing.
func TestServerAbortSendsWhatWasWritten(t *testing.T) {
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = w.Write([]byte("0123456789"))
		panic(http.ErrAbortHandler)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response head before the close: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "0123456789" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %d %q, %v; want 200, the 10 bytes written, then unexpected EOF", resp.StatusCode, body, err)
	}
}

func TestNewChecksOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a Handler succeeded")
	}
	if _, err := New(Options{Handler: http.NotFoundHandler(), IdleTimeout: -1}); err == nil {
		t.Error("negative IdleTimeout accepted")
	}
}

// TestServerHijack checks a hijack while the server reads the connection in
// the background (the handler waited on its context): the background read
// ends, its byte is not lost, and the connection has no read deadline left.
func TestServerHijack(t *testing.T) {
	addr, _ := serveTest(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		nc, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		msg := make([]byte, 10)
		if _, err := io.ReadFull(rw, msg); err != nil {
			return
		}
		rw.WriteString("got " + string(msg))
		_ = rw.Flush()
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	_, _ = io.WriteString(c, "hello")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	time.Sleep(50 * time.Millisecond)
	_, _ = io.WriteString(c, "world")
	got := make([]byte, 14)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "got helloworld" {
		t.Fatalf("after the hijack: %q %v", got, err)
	}
}
