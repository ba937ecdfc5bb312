package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ServerOptions tune the plain-HTTP/1.1 server loop of [Proxy.Serve]. Zero
// values take the defaults noted on each field, which follow nginx's (and so
// Kong's) client-side settings.
type ServerOptions struct {
	// Handler serves each request; nil means the Proxy itself. It sees an
	// ordinary *http.Request and an http.ResponseWriter that also
	// implements http.Flusher and http.Hijacker. As with net/http it must
	// not use either after returning; unlike net/http, the Request, its
	// URL and Header map are reused for the connection's next request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head once its first byte
	// arrived (nginx client_header_timeout). Default 60s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request
	// for this long (nginx keepalive_timeout). Default 75s.
	IdleTimeout time.Duration
	// BodyTimeout bounds each wait for request body bytes (nginx
	// client_body_timeout). Default 60s.
	BodyTimeout time.Duration
	// WriteTimeout bounds each wait while sending response bytes (nginx
	// send_timeout). Default 60s.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers, in bytes. A
	// longer request line is answered 414, longer headers 494 (nginx's
	// "Request Header Or Cookie Too Large", which Kong answers). Default
	// 64 KiB.
	MaxHeaderBytes int
	// Logger receives handler panics. Default: the Proxy's logger, or
	// discard for NewServer.
	Logger *slog.Logger
}

func (o *ServerOptions) check() error {
	if o.ReadHeaderTimeout < 0 || o.IdleTimeout < 0 || o.BodyTimeout < 0 || o.WriteTimeout < 0 || o.MaxHeaderBytes < 0 {
		return errors.New("proxy: server options must not be negative")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 60*time.Second)
	def(&o.IdleTimeout, 75*time.Second)
	def(&o.BodyTimeout, 60*time.Second)
	def(&o.WriteTimeout, 60*time.Second)
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	return nil
}

// Server is the HTTP/1.1 server loop of [Proxy.Serve] on its own, for a
// caller that puts its own handler in front of the proxy, such as a gateway
// that swaps Proxy generations behind one listener. It is safe for
// concurrent use.
type Server struct {
	opts ServerOptions // immutable after NewServer; Handler is set

	idPrefix [16]byte      // random per server, hex: ids of the errors it answers
	idSeq    atomic.Uint64 // error id counter

	shutdown atomic.Bool // set once by Shutdown; never cleared

	// mu guards listeners and conns.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
}

// NewServer checks opts (Handler is required), fills defaults and returns a
// Server.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Handler == nil {
		return nil, errors.New("proxy: ServerOptions.Handler is required")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, listeners: make(map[net.Listener]struct{}), conns: make(map[*serverConn]struct{})}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	hex.Encode(s.idPrefix[:], rnd[:])
	return s, nil
}

// Connection states, for Shutdown to tell idle connections from busy ones.
const (
	connIdle   int32 = iota // waiting for the first byte of a request
	connActive              // reading, serving or finishing a request
	connClosed              // closed by Shutdown while idle
)

// Serve accepts connections on ln and serves plain HTTP/1.1 on each with
// the proxy's own server loop instead of net/http's: no background read
// goroutine per connection, pooled per-connection request state, and read
// and write deadlines refreshed at most about once a second. It handles
// keep-alive, HTTP/1.0, Content-Length and chunked request bodies,
// Expect: 100-continue, and answers malformed requests itself (400, 414,
// 494, 501, 505). Use net/http's server for TLS listeners (HTTP/2).
//
// Serve blocks until ln fails or Shutdown is called, and then returns
// http.ErrServerClosed. It may be called for several listeners. Requests
// go to Options.Server.Handler, or to the Proxy itself.
func (p *Proxy) Serve(ln net.Listener) error { return p.srv.Serve(ln) }

// Shutdown stops Serve gracefully; see [Server.Shutdown].
func (p *Proxy) Shutdown(ctx context.Context) error { return p.srv.Shutdown(ctx) }

// Serve is [Proxy.Serve] for the Server's handler.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Resource exhaustion (EMFILE and the like): wait, then retry,
			// as net/http does.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.opts.Logger.Debug("accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := s.newServerConn(nc)
		s.mu.Lock()
		if s.shutdown.Load() {
			s.mu.Unlock()
			nc.Close()
			return http.ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops Serve gracefully: it closes the listeners, closes idle
// keep-alive connections, lets in-flight requests finish (their connections
// close after the response), and waits until every connection is gone or
// ctx ends, returning ctx's error in that case. A hijacked connection is
// waited for while its handler runs (the proxy's WebSocket tunnel runs in
// the handler, so a tunnel gets until ctx ends, as nginx's graceful quit
// gives upgraded connections worker_shutdown_timeout), and forgotten once
// the handler returns. Serve cannot be used again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.state.CompareAndSwap(connIdle, connClosed) {
				c.nc.Close()
			}
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close stops Serve at once: it closes the listeners and every connection,
// idle or busy (requests in flight fail), as net/http's Server.Close does.
// Use it after a Shutdown whose context ended. Unlike net/http it also
// closes hijacked connections whose handler is still running (a proxied
// WebSocket), so nothing outlives the server.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown.Store(true)
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.state.Store(connClosed)
		c.nc.Close()
	}
	return errors.Join(errs...)
}

// connReader is the connection's read side under its bufio.Reader. Before a
// read that reaches the socket it moves the read deadline to now+timeout,
// but only when that moves it by more than a slack, so a busy keep-alive
// connection changes its deadline about once a second, not per request.
type connReader struct {
	nc       net.Conn  // nil in parser tests: no deadlines
	src      io.Reader // nc, or the test input
	timeout  time.Duration
	deadline time.Time
}

func (r *connReader) Read(b []byte) (int, error) {
	if r.nc != nil && r.timeout > 0 {
		r.deadline = refreshDeadline(r.nc.SetReadDeadline, r.deadline, r.timeout)
	}
	return r.src.Read(b)
}

// connWriter is connReader's counterpart for writes.
type connWriter struct {
	nc       net.Conn
	dst      io.Writer
	timeout  time.Duration
	deadline time.Time
}

func (w *connWriter) Write(b []byte) (int, error) {
	if w.nc != nil && w.timeout > 0 {
		w.deadline = refreshDeadline(w.nc.SetWriteDeadline, w.deadline, w.timeout)
	}
	return w.dst.Write(b)
}

// refreshDeadline sets now+timeout when it differs from the current
// deadline by more than min(timeout/8, 1s), and returns the deadline in
// force.
func refreshDeadline(set func(time.Time) error, cur time.Time, timeout time.Duration) time.Time {
	want := time.Now().Add(timeout)
	slack := min(timeout/8, time.Second)
	if d := want.Sub(cur); d > slack || d < -slack {
		set(want)
		return want
	}
	return cur
}

// serverConn is one client connection of Serve and the request state it
// reuses from one request to the next.
type serverConn struct {
	s     *Server
	h     http.Handler
	opts  *ServerOptions
	nc    net.Conn
	rd    connReader
	wr    connWriter
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32 // connIdle, connActive or connClosed

	ctx    context.Context
	cancel context.CancelFunc
	remote string

	// Reused per request. base carries the connection's context, which a
	// plain struct reset would lose.
	base    http.Request
	req     http.Request
	url     url.URL
	hdr     http.Header
	vals    []string
	scratch []byte     // the raw request head
	lines   []headLine // parsed header line offsets into scratch
	body    reqBody
	w       respWriter

	hijacked bool
}

// headLine locates one header line's name and value in the head.
type headLine struct{ name0, name1, val0, val1 int }

func (s *Server) newServerConn(nc net.Conn) *serverConn {
	c := &serverConn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Responses are written in one flush; Nagle would only delay them.
		tc.SetNoDelay(true)
	}
	c.init(nc, nc, nc)
	return c
}

// init sets up the reusable state; nc may be nil (parser tests).
func (c *serverConn) init(nc net.Conn, src io.Reader, dst io.Writer) {
	c.opts = &c.s.opts
	c.h = c.opts.Handler
	c.rd = connReader{nc: nc, src: src}
	c.wr = connWriter{nc: nc, dst: dst, timeout: c.opts.WriteTimeout}
	c.br = bufio.NewReaderSize(&c.rd, 4<<10)
	c.bw = bufio.NewWriterSize(&c.wr, 4<<10)
	// As net/http does, requests carry the local address: routes whose hosts name a port match
	// on it.
	base := context.Background()
	if nc != nil {
		base = context.WithValue(base, http.LocalAddrContextKey, nc.LocalAddr())
	}
	c.ctx, c.cancel = context.WithCancel(base)
	c.base = *(&http.Request{}).WithContext(c.ctx)
	c.hdr = make(http.Header, 16)
	c.vals = make([]string, 0, 32)
	c.scratch = make([]byte, 0, 1024)
	c.lines = make([]headLine, 0, 32)
	c.body.c = c
	c.w.c = c
	c.w.hdr = make(http.Header, 16)
}

func (c *serverConn) serve() {
	defer c.close()
	defer func() {
		if e := recover(); e != nil && e != http.ErrAbortHandler {
			c.s.opts.Logger.Error("panic serving request", "remote", c.remote, "panic", e)
		}
	}()
	for {
		r, status, msg := c.readRequest()
		if r == nil {
			if status != 0 {
				c.writeServerError(status, msg)
			}
			return
		}
		c.w.reset(r)
		c.h.ServeHTTP(&c.w, r)
		if c.hijacked {
			return
		}
		if !c.finishRequest() {
			return
		}
		c.state.Store(connIdle)
		if c.s.shutdown.Load() {
			return
		}
	}
}

// close ends the connection (unless hijacked) and forgets it.
func (c *serverConn) close() {
	c.cancel()
	if !c.hijacked {
		c.nc.Close()
	}
	s := c.s
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// statusHeaderTooLarge is nginx's own 494 for request headers over its
// buffers, which Kong's error handler answers with "Request header or
// cookie too large"; Kong clients see it rather than RFC 6585's 431.
const statusHeaderTooLarge = 494

var (
	chunkedTE  = []string{"chunked"}
	continue11 = []byte("HTTP/1.1 100 Continue\r\n\r\n")
)

// readRequest reads and parses the next request head. It returns nil and
// a status to answer (0: just close) when there is no valid request.
func (c *serverConn) readRequest() (r *http.Request, status int, msg string) {
	c.rd.timeout = c.opts.IdleTimeout
	c.scratch = c.scratch[:0]
	c.lines = c.lines[:0]
	max := c.opts.MaxHeaderBytes
	first, active := true, false
	lineStart := 0
	reqLineEnd := -1
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(frag) > 0 && !active {
			active = true
			if !c.state.CompareAndSwap(connIdle, connActive) {
				return nil, 0, "" // closed by Shutdown while idle
			}
			c.rd.timeout = c.opts.ReadHeaderTimeout
		}
		c.scratch = append(c.scratch, frag...)
		if len(c.scratch) > max {
			if reqLineEnd < 0 {
				return nil, http.StatusRequestURITooLong, "Request-URI Too Large"
			}
			return nil, statusHeaderTooLarge, MsgRequestTooBig
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(c.scratch) > 0 && !isNetTimeout(err) && err != io.EOF {
				return nil, http.StatusBadRequest, "Bad request"
			}
			return nil, 0, ""
		}
		end := len(c.scratch)
		line := trimCRLF(c.scratch[lineStart:end])
		if first {
			first = false
			if len(line) == 0 && lineStart == 0 && reqLineEnd < 0 {
				// RFC 9112 2.2: ignore an empty line before the request line.
				c.scratch = c.scratch[:0]
				first = true
				continue
			}
			reqLineEnd = lineStart + len(line)
			lineStart = end
			continue
		}
		if len(line) == 0 {
			break
		}
		c.lines = append(c.lines, headLine{name0: lineStart, val1: lineStart + len(line)})
		lineStart = end
	}
	return c.parseHead(reqLineEnd)
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseHead validates the head read into c.scratch and fills c.req. Header
// names are canonicalised in place first, so that the whole head becomes
// one string and every name and value is a substring of it: one
// allocation per request.
func (c *serverConn) parseHead(reqLineEnd int) (*http.Request, int, string) {
	b := c.scratch
	// Request line: method SP request-target SP HTTP-version.
	rl := b[:reqLineEnd]
	sp1 := bytes.IndexByte(rl, ' ')
	if sp1 <= 0 {
		return nil, http.StatusBadRequest, "Bad request"
	}
	sp2 := sp1 + 1 + bytes.IndexByte(rl[sp1+1:], ' ')
	if sp2 <= sp1+1 {
		return nil, http.StatusBadRequest, "Bad request"
	}
	for _, ch := range rl[:sp1] {
		if !isTokenChar(ch) {
			return nil, http.StatusBadRequest, "Bad request"
		}
	}
	for _, ch := range rl[sp1+1 : sp2] {
		if ch <= ' ' || ch == 0x7f {
			return nil, http.StatusBadRequest, "Bad request"
		}
	}
	var minor int
	switch v := rl[sp2+1:]; string(v) {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
		minor = 0
	default:
		if len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]) {
			return nil, http.StatusHTTPVersionNotSupported, "HTTP Version Not Supported"
		}
		return nil, http.StatusBadRequest, "Bad request"
	}
	for i := range c.lines {
		l := &c.lines[i]
		line := b[l.name0:l.val1]
		if line[0] == ' ' || line[0] == '\t' {
			return nil, http.StatusBadRequest, "Bad request" // obsolete line folding
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, http.StatusBadRequest, "Bad request"
		}
		name := line[:colon]
		upper := true
		for j, ch := range name {
			if !isTokenChar(ch) {
				return nil, http.StatusBadRequest, "Bad request"
			}
			// Canonical form, as textproto.CanonicalMIMEHeaderKey.
			if upper && 'a' <= ch && ch <= 'z' {
				name[j] = ch - ('a' - 'A')
			} else if !upper && 'A' <= ch && ch <= 'Z' {
				name[j] = ch + ('a' - 'A')
			}
			upper = ch == '-'
		}
		v0, v1 := colon+1, len(line)
		for v0 < v1 && (line[v0] == ' ' || line[v0] == '\t') {
			v0++
		}
		for v1 > v0 && (line[v1-1] == ' ' || line[v1-1] == '\t') {
			v1--
		}
		for _, ch := range line[v0:v1] {
			if (ch < ' ' && ch != '\t') || ch == 0x7f {
				return nil, http.StatusBadRequest, "Bad request"
			}
		}
		l.name1 = l.name0 + colon
		l.val0, l.val1 = l.name0+v0, l.name0+v1
	}

	s := string(b) // the one allocation
	r := &c.req
	*r = c.base
	r.Method = s[:sp1]
	r.RequestURI = s[sp1+1 : sp2]
	r.ProtoMajor, r.ProtoMinor = 1, minor
	r.Proto = "HTTP/1.1"
	if minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.RemoteAddr = c.remote
	clear(c.hdr)
	r.Header = c.hdr
	clear(c.vals[:cap(c.vals)])
	c.vals = c.vals[:0]

	var (
		hosts, cls, tes int
		host, cl, te    string
		keepAlive       = minor == 1
		connClose       bool
		expect          string
	)
	for _, l := range c.lines {
		name, value := s[l.name0:l.name1], s[l.val0:l.val1]
		switch name {
		case "Host":
			hosts++
			host = value
			continue // net/http moves it to Request.Host
		case "Content-Length":
			if cls > 0 && value != cl {
				return nil, http.StatusBadRequest, "Bad request"
			}
			cls++
			cl = value
		case "Transfer-Encoding":
			tes++
			te = value
			continue // reported in Request.TransferEncoding
		case "Connection":
			if hasToken(value, "close") {
				connClose = true
			} else if hasToken(value, "keep-alive") {
				keepAlive = true
			}
		case "Expect":
			expect = value
		}
		if old, ok := c.hdr[name]; ok {
			c.hdr[name] = append(old, value)
			continue
		}
		n := len(c.vals)
		c.vals = append(c.vals, value)
		c.hdr[name] = c.vals[n : n+1 : n+1]
	}
	if hosts > 1 || (hosts == 0 && minor == 1) || !validHost(host) {
		return nil, http.StatusBadRequest, "Bad request"
	}
	r.Host = host
	r.Close = connClose || !keepAlive

	// URL: origin-form paths made only of characters that need no escaping
	// are taken as they are; anything else goes through net/url.
	target := r.RequestURI
	path, query, hasQuery := target, "", false
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			path, query, hasQuery = target[:i], target[i+1:], true
			break
		}
	}
	c.url = url.URL{}
	if len(path) > 0 && path[0] == '/' && plainPath(path) {
		c.url.Path, c.url.RawQuery, c.url.ForceQuery = path, query, hasQuery && query == ""
		r.URL = &c.url
	} else {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return nil, http.StatusBadRequest, "Bad request"
		}
		r.URL = u
		if u.Host != "" {
			if !validHost(u.Host) {
				return nil, http.StatusBadRequest, "Bad request"
			}
			r.Host = u.Host // absolute-form wins over the Host header
		}
	}

	// Body framing (RFC 9112 6.3). Both headers at once is a smuggling
	// attempt or a broken client: refused.
	c.body.reset()
	r.Body, r.ContentLength = http.NoBody, 0
	switch {
	case tes > 0 && cls > 0:
		return nil, http.StatusBadRequest, "Bad request"
	case tes > 0:
		if tes > 1 || !equalFoldASCII(te, "chunked") {
			return nil, http.StatusNotImplemented, "Not Implemented"
		}
		if minor == 0 {
			return nil, http.StatusBadRequest, "Bad request"
		}
		r.TransferEncoding = chunkedTE
		r.ContentLength = -1
		c.body.chunked = true
		r.Body = &c.body
	case cls > 0:
		n, ok := parseLength(cl)
		if !ok {
			return nil, http.StatusBadRequest, "Bad request"
		}
		r.ContentLength = n
		if n > 0 {
			c.body.remain = n
			r.Body = &c.body
		}
	}
	if expect != "" {
		if !equalFoldASCII(expect, "100-continue") {
			return nil, http.StatusExpectationFailed, "Expectation Failed"
		}
		if r.Body != http.NoBody && minor == 1 {
			c.body.expect = true
		}
		delete(c.hdr, "Expect")
	}
	if r.Body != http.NoBody {
		c.rd.timeout = c.opts.BodyTimeout
	}
	return r, 0, ""
}

func isDigit(ch byte) bool { return '0' <= ch && ch <= '9' }

// isTokenChar reports whether ch may appear in an RFC 9110 token.
func isTokenChar(ch byte) bool { return ch < 0x80 && tokenTable[ch] }

// plainPath reports whether p has only characters that a URL path keeps
// unescaped, so that url.URL{Path: p} is what net/url would parse.
func plainPath(p string) bool { return allIn(&pathTable, p) }

// validHost accepts the characters a Host header may carry (reg-name,
// IPv4, bracketed IPv6, port), as net/http's check does.
func validHost(h string) bool { return allIn(&hostTable, h) }

var (
	tokenTable = alnumAnd("!#$%&'*+-.^_`|~")
	pathTable  = alnumAnd("-._~!$&'()*+,;=:@/")
	hostTable  = alnumAnd("-._~!$&'()*+,;=:[]%")
)

// alnumAnd returns the table of the ASCII letters and digits and the bytes of extra.
func alnumAnd(extra string) (t [128]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch] = true
		t[ch-'a'+'A'] = true
	}
	for _, ch := range extra {
		t[ch] = true
	}
	return
}

// allIn reports whether every byte of s is ASCII and set in t.
func allIn(t *[128]bool, s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x80 || !t[ch] {
			return false
		}
	}
	return true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// maxDrain is how much of an unread request body is read and discarded to
// keep the connection; beyond it the connection is closed instead.
const maxDrain = 256 << 10

// finishRequest completes the response and decides whether the connection
// can serve another request.
func (c *serverConn) finishRequest() bool {
	w := &c.w
	w.finish()
	if err := c.bw.Flush(); err != nil {
		return false
	}
	if w.closeAfter || c.req.Close {
		return false
	}
	b := &c.body
	if (b.chunked || b.remain > 0) && !b.done {
		if b.expect {
			// The client waits for 100 Continue that never came: whether
			// it sends the body now is unknown, so the framing is lost.
			return false
		}
		if !b.drain() {
			return false
		}
	}
	return true
}

// writeServerError answers a request the server itself rejects, then the
// connection is closed.
func (c *serverConn) writeServerError(status int, msg string) {
	var idb [32]byte
	n := c.s.idSeq.Add(1)
	copy(idb[:16], c.s.idPrefix[:])
	const digits = "0123456789abcdef"
	for i := 31; i >= 16; i-- {
		idb[i] = digits[n&15]
		n >>= 4
	}
	body := appendErrBody(make([]byte, 0, 128), fmtJSON, msg, string(idb[:]))
	bw := c.bw
	bw.WriteString(statusLine(status))
	bw.WriteString("Content-Type: application/json; charset=utf-8\r\nConnection: close\r\nServer: gantry\r\nDate: ")
	bw.WriteString(httpDate())
	bw.WriteString("\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	bw.WriteString("\r\n\r\n")
	bw.Write(body)
	bw.Flush()
}

// reqBody is the request body of a Serve connection, read straight from the
// connection's buffer: Content-Length bytes or chunked framing.
type reqBody struct {
	c       *serverConn
	remain  int64 // bytes left in the body (length) or current chunk
	chunked bool
	started bool // a chunk was read, so its CRLF precedes the next size
	expect  bool // 100 Continue is owed before the first read
	done    bool
	closed  bool
	err     error
}

func (b *reqBody) reset() {
	*b = reqBody{c: b.c}
}

var errBodyClosed = http.ErrBodyReadAfterClose

func (b *reqBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	return b.read(p)
}

func (b *reqBody) read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.expect {
		b.expect = false
		if !b.c.w.wroteHeader {
			b.c.bw.Write(continue11)
			if err := b.c.bw.Flush(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	if b.chunked && b.remain == 0 {
		if err := b.nextChunk(); err != nil {
			b.err = err
			return 0, err
		}
		if b.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 && !b.chunked {
		b.done = true
		return n, io.EOF
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	return n, nil
}

// nextChunk reads the CRLF closing the previous chunk and the next size
// line; a zero size consumes the trailer section and ends the body.
func (b *reqBody) nextChunk() error {
	br := b.c.br
	readLine := func() ([]byte, error) {
		l, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return nil, errMalformedChunk
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return trimCRLF(l), err
	}
	if b.started {
		l, err := readLine()
		if err != nil {
			return err
		}
		if len(l) != 0 {
			return errMalformedChunk
		}
	}
	b.started = true
	l, err := readLine()
	if err != nil {
		return err
	}
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		l = l[:i] // extensions are ignored
	}
	for len(l) > 0 && (l[len(l)-1] == ' ' || l[len(l)-1] == '\t') {
		l = l[:len(l)-1]
	}
	size, ok := chunkSize(l)
	if !ok {
		return errMalformedChunk
	}
	if size > 0 {
		b.remain = size
		return nil
	}
	for {
		l, err := readLine()
		if err != nil {
			return err
		}
		if len(l) == 0 {
			break
		}
	}
	b.done = true
	return nil
}

var errMalformedChunk = errors.New("proxy: malformed chunked request body")

func (b *reqBody) Close() error {
	b.closed = true
	return nil
}

// drain reads and discards up to maxDrain bytes of what the handler left
// unread; it reports whether the body ended, so the connection is reusable.
func (b *reqBody) drain() bool {
	var buf [4096]byte
	total := 0
	for total <= maxDrain {
		n, err := b.read(buf[:])
		total += n
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// respWriter is the http.ResponseWriter of a Serve connection, reused for
// each request. The head is serialised into the connection's buffer when
// WriteHeader is called, so later changes to the header map have no effect,
// as with net/http.
type respWriter struct {
	c   *serverConn
	req *http.Request
	hdr http.Header

	status      int
	wroteHeader bool
	bodyless    bool  // HEAD, 1xx, 204, 304: no body bytes go out
	length      int64 // declared Content-Length, -1 when none
	written     int64
	chunked     bool
	closeAfter  bool // the connection ends after this response
}

var (
	_ http.Flusher  = (*respWriter)(nil)
	_ http.Hijacker = (*respWriter)(nil)
)

func (w *respWriter) reset(r *http.Request) {
	clear(w.hdr)
	*w = respWriter{c: w.c, req: r, hdr: w.hdr, length: -1}
}

// Header implements http.ResponseWriter.
func (w *respWriter) Header() http.Header { return w.hdr }

// WriteHeader implements http.ResponseWriter. 1xx statuses other than 101
// are sent at once as interim responses.
func (w *respWriter) WriteHeader(code int) {
	if w.wroteHeader || w.c.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic("proxy: invalid WriteHeader code " + strconv.Itoa(code))
	}
	bw := w.c.bw
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		bw.WriteString(statusLine(code))
		w.writeFields(false)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	r := w.req
	w.bodyless = r.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code < 200
	if v := w.hdr["Content-Length"]; len(v) > 0 {
		if n, ok := parseLength(v[0]); ok {
			w.length = n
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
	if code == http.StatusNoContent || code < 200 {
		delete(w.hdr, "Content-Length")
		w.length = -1
	}
	if conn := w.hdr["Connection"]; len(conn) > 0 && hasTokenAny(conn, "close") {
		w.closeAfter = true
	}
	if !w.bodyless && w.length < 0 {
		if r.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true // HTTP/1.0: the body ends when the connection does
		}
	}
	if r.Close || w.c.s.shutdown.Load() {
		w.closeAfter = true
	}
	bw.WriteString(statusLine(code))
	w.writeFields(true)
	if _, ok := w.hdr["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	// A Connection header the handler set (Kong's 426 sends
	// "Connection: Upgrade") is kept, as net/http keeps it; the framing
	// tokens are the server's own.
	conn := w.hdr["Connection"]
	switch {
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case len(conn) > 0:
		bw.WriteString("Connection: ")
		for i, v := range conn {
			if i > 0 {
				bw.WriteString(", ")
			}
			writeFieldValue(bw, v)
		}
		if r.ProtoMinor == 0 && !hasTokenAny(conn, "keep-alive") {
			bw.WriteString(", keep-alive")
		}
		bw.WriteString("\r\n")
	case r.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
}

// writeFields writes the header map. Framing headers are the writer's own;
// names that could split the head are dropped and CR/LF in values become
// spaces, as net/http does.
func (w *respWriter) writeFields(final bool) {
	bw := w.c.bw
	for k, vv := range w.hdr {
		if final && (k == "Connection" || k == "Transfer-Encoding") {
			continue
		}
		if !validFieldName(k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeFieldValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

func writeFieldValue(bw *bufio.Writer, v string) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			for j := 0; j < len(v); j++ {
				ch := v[j]
				if ch == '\r' || ch == '\n' {
					ch = ' '
				}
				bw.WriteByte(ch)
			}
			return
		}
	}
	bw.WriteString(v)
}

// Write implements http.ResponseWriter.
func (w *respWriter) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.bodyless {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	var err error
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		p = p[:w.length-w.written]
		err = http.ErrContentLength
	}
	if len(p) == 0 {
		return 0, err
	}
	bw := w.c.bw
	if w.chunked {
		var hb [18]byte
		h := appendHex(hb[:0], len(p))
		h = append(h, '\r', '\n')
		bw.Write(h)
	}
	n, werr := bw.Write(p)
	w.written += int64(n)
	if w.chunked && werr == nil {
		_, werr = bw.WriteString("\r\n")
	}
	if werr != nil {
		w.closeAfter = true
		return n, werr
	}
	return n, err
}

// Flush implements http.Flusher: the head (200 if none was set) and every
// body byte written so far go to the client.
func (w *respWriter) Flush() {
	if w.c.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.c.bw.Flush(); err != nil {
		w.closeAfter = true
	}
}

// Hijack implements http.Hijacker. The returned reader holds bytes the
// client sent after the request head; deadlines are left as they are and
// no longer refreshed.
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if c.nc == nil {
		return nil, nil, errors.New("proxy: connection cannot be hijacked")
	}
	c.hijacked = true
	c.rd.timeout, c.wr.timeout = 0, 0
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

// finish ends the response after the handler returned.
func (w *respWriter) finish() {
	if !w.wroteHeader {
		if _, ok := w.hdr["Content-Length"]; !ok {
			w.hdr["Content-Length"] = zeroLength
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	} else if !w.bodyless && w.length >= 0 && w.written < w.length {
		// The client expects more bytes than were sent: only closing
		// tells it the response ended.
		w.closeAfter = true
	}
}

var zeroLength = []string{"0"}

// statusLines holds "HTTP/1.1 <code> <reason>\r\n" for every code.
var statusLines = func() (t [1000]string) {
	for code := 100; code < 1000; code++ {
		t[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
	}
	return
}()

func statusLine(code int) string { return statusLines[code] }

type dateEntry struct {
	sec int64
	s   string
}

var dateCache atomic.Pointer[dateEntry]

// httpDate returns the current time in IMF-fixdate, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if e := dateCache.Load(); e != nil && e.sec == sec {
		return e.s
	}
	e := &dateEntry{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(e)
	return e.s
}
