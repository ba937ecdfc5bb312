// Package h1client is the runtime's lean HTTP/1.1 upstream client: a pool of
// keep-alive connections per peer, the response-head parser, the response
// body reader and the request body writer. The proxy (internal/dp/proxy)
// writes the request head itself, with Kong's semantics, and drives the
// exchange on a [Conn].
//
// It deliberately does not use net/http's Transport: its two goroutines per
// connection and channel hand-offs cost more CPU per request than the whole
// proxy budget allows. Here the request's own goroutine writes the request
// and reads the response, from buffers owned by the connection, so an
// exchange allocates nothing in steady state.
//
// A connection is reused only when nothing about the last exchange is in
// doubt: its response was read to the end of its framing, no byte beyond
// it is buffered, and the framing itself was one both sides read the same
// way (see [Conn.Release]). An idle connection that became readable or was
// closed while pooled is dropped before reuse ([Pool.Get]). Together these
// keep one request from ever reading the answer to another.
package h1client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Transport. Zero values take the defaults noted on
// each field, which follow Kong's upstream keep-alive settings.
type Options struct {
	// MaxIdlePerHost bounds the idle keep-alive connections kept per pool
	// (Kong: upstream_keepalive_pool_size, default 512 per worker; here
	// default 128 per process as nginx's keepalive 128 in the bench).
	MaxIdlePerHost int
	// IdleTimeout closes connections idle longer than this
	// (Kong: upstream_keepalive_idle_timeout, default 60s).
	IdleTimeout time.Duration
	// MaxRequestsPerConn closes a connection after this many requests
	// (Kong: upstream_keepalive_max_requests, default 10000). Negative
	// means unlimited.
	MaxRequestsPerConn int
	// ReadBufferSize is the per-connection response reader size in bytes;
	// it bounds the length of one response header line (default 16 KiB).
	ReadBufferSize int
	// WriteBufferSize is the per-connection request writer size in bytes
	// (default 8 KiB).
	WriteBufferSize int
	// MaxHeaderBytes bounds a response head as a whole, in bytes: the
	// status line and fields of the final head plus those of any interim
	// (1xx) heads before it. It bounds a chunked body's trailer section
	// too. Default 64 KiB. nginx, and so Kong, bound the head by
	// proxy_buffer_size, one page (4 or 8 KiB) unless raised; deployments
	// commonly raise it for large cookies, so the default here is roomier,
	// and a head over it is Kong's 502 all the same.
	MaxHeaderBytes int
	// MaxHeaderFields bounds the number of field lines of a response head
	// (interim heads included) and of a trailer section. Default 1,000:
	// nginx bounds fields only through the bytes above, and upstreams that
	// set many cookies send well over HAProxy's 101 (tune.http.maxhdr); the
	// bound keeps the per-field bookkeeping of one response small.
	MaxHeaderFields int
	// Dial replaces net.Dialer.DialContext (tests, alternative stacks).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Defaults of the Options bounds.
const (
	DefaultMaxHeaderBytes  = 64 << 10
	DefaultMaxHeaderFields = 1000
)

// Transport is the connection pool: one pool of idle keep-alive connections
// per key (a peer address, and TLS settings). It outlives configuration
// swaps, and is safe for concurrent use.
type Transport struct {
	opts Options // immutable after New

	// mu guards pools, h2 and closed. Lookups take the read lock only.
	mu     sync.RWMutex
	pools  map[string]*Pool
	h2     map[string]*http.Transport // gRPC clients by settings key
	closed bool
}

// New checks opts, fills defaults and returns a Transport.
func New(opts Options) (*Transport, error) {
	if opts.MaxIdlePerHost < 0 || opts.IdleTimeout < 0 || opts.ReadBufferSize < 0 || opts.WriteBufferSize < 0 ||
		opts.MaxHeaderBytes < 0 || opts.MaxHeaderFields < 0 {
		return nil, errors.New("h1client: options must not be negative")
	}
	if opts.MaxIdlePerHost == 0 {
		opts.MaxIdlePerHost = 128
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.MaxRequestsPerConn == 0 {
		opts.MaxRequestsPerConn = 10000
	}
	if opts.ReadBufferSize == 0 {
		opts.ReadBufferSize = 16 << 10
	}
	if opts.WriteBufferSize == 0 {
		opts.WriteBufferSize = 8 << 10
	}
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.MaxHeaderFields == 0 {
		opts.MaxHeaderFields = DefaultMaxHeaderFields
	}
	if opts.Dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		opts.Dial = d.DialContext
	}
	return &Transport{opts: opts, pools: make(map[string]*Pool)}, nil
}

// Close closes every idle connection and makes later gets dial-and-close
// (connections in use are closed when released).
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	pools, h2 := t.pools, t.h2
	t.pools, t.h2 = make(map[string]*Pool), nil
	t.mu.Unlock()
	for _, p := range pools {
		p.closeAll()
	}
	for _, h := range h2 {
		h.CloseIdleConnections()
	}
	return nil
}

// IdleConns reports the idle connections of the pool key (tests, metrics).
func (t *Transport) IdleConns(key string) int {
	t.mu.RLock()
	p := t.pools[key]
	t.mu.RUnlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Pool returns the pool of connections named key, dialing addr with
// tlsConfig (nil for plain TCP). Connections whose settings differ must
// use different keys; the key of plain connections is conventionally addr.
func (t *Transport) Pool(key, addr string, tlsConfig *tls.Config) *Pool {
	t.mu.RLock()
	p := t.pools[key]
	t.mu.RUnlock()
	if p != nil {
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p = t.pools[key]; p == nil {
		p = &Pool{t: t, addr: addr, tls: tlsConfig}
		if !t.closed {
			t.pools[key] = p
		} else {
			p.closed = true
		}
	}
	return p
}

// HTTP2 returns the HTTP/2 client (net/http's) for the gRPC services whose
// settings are named key: h2c when tlsConfig is nil. It is kept here, next
// to the HTTP/1.1 pools, so that one Transport owns every upstream
// connection across configuration swaps and Close closes them all; its
// connections multiplex requests, so one client per settings is enough.
func (t *Transport) HTTP2(key string, tlsConfig *tls.Config) *http.Transport {
	t.mu.RLock()
	h := t.h2[key]
	t.mu.RUnlock()
	if h != nil {
		return h
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.h2[key]; h != nil {
		return h
	}
	h = &http.Transport{
		DialContext:         t.opts.Dial,
		MaxIdleConnsPerHost: t.opts.MaxIdlePerHost,
		IdleConnTimeout:     t.opts.IdleTimeout,
		ForceAttemptHTTP2:   true,
		Protocols:           new(http.Protocols),
	}
	if tlsConfig != nil {
		h.TLSClientConfig = tlsConfig.Clone()
		h.Protocols.SetHTTP2(true)
	} else {
		h.Protocols.SetUnencryptedHTTP2(true)
	}
	if t.h2 == nil {
		t.h2 = make(map[string]*http.Transport)
	}
	t.h2[key] = h
	return h
}

// Pool holds the idle connections to one peer address (with one set of TLS
// settings).
type Pool struct {
	t    *Transport  // immutable
	addr string      // immutable
	tls  *tls.Config // immutable; nil for plain connections

	// mu guards idle and closed. idle is a LIFO stack: the most recently
	// used connection is reused first (its socket is warmest and least
	// likely closed by the peer); idle[0] is the oldest and expires first.
	mu     sync.Mutex
	idle   []*Conn
	closed bool
}

// Get returns an idle connection (Reused reports true) or dials a new one.
// Every idle connection is checked before reuse, whatever the request: one
// that became readable or was closed while pooled is closed and skipped.
func (p *Pool) Get(ctx context.Context, connectTimeout time.Duration) (*Conn, error) {
	now := time.Now()
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleSince) >= p.t.opts.IdleTimeout {
			// The newest is expired, so all older ones are too.
			old := p.idle
			p.idle = p.idle[:0]
			p.mu.Unlock()
			_ = c.nc.Close()
			for i, o := range old {
				_ = o.nc.Close()
				old[i] = nil
			}
			p.mu.Lock()
			continue
		}
		p.mu.Unlock()
		if c.stale() {
			_ = c.nc.Close()
			p.mu.Lock()
			continue
		}
		c.reused, c.started = true, now
		return c, nil
	}
	p.mu.Unlock()
	c, err := p.Dial(ctx, connectTimeout)
	if err == nil {
		c.started = now
	}
	return c, err
}

// Dial opens a new connection, bypassing the idle ones: for a retry after a
// reused connection failed, and for upgrades, which are never pooled.
func (p *Pool) Dial(ctx context.Context, connectTimeout time.Duration) (*Conn, error) {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, connectTimeout)
	nc, err := p.t.opts.Dial(dctx, "tcp", p.addr)
	cancel()
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	raw := nc
	if tc, ok := nc.(*net.TCPConn); ok {
		// Request heads are written in one flush; Nagle would only delay them.
		_ = tc.SetNoDelay(true)
	}
	if p.tls != nil {
		tc := tls.Client(nc, p.tls)
		hctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, &DialError{Addr: p.addr, Err: fmt.Errorf("tls handshake: %w", err)}
		}
		nc = tc
	}
	c := &Conn{
		nc:      nc,
		pool:    p,
		started: start,
		dialed:  true,
		br:      bufio.NewReaderSize(nc, p.t.opts.ReadBufferSize),
		bw:      bufio.NewWriterSize(nc, p.t.opts.WriteBufferSize),
	}
	_, c.isTLS = nc.(*tls.Conn)
	c.fd = socketFD(raw)
	c.interruptFn = c.interrupt
	return c, nil
}

// put returns c to the pool, or closes it when the pool is full or closed.
func (p *Pool) put(c *Conn) {
	c.requests++
	if limit := p.t.opts.MaxRequestsPerConn; limit > 0 && c.requests >= limit {
		_ = c.nc.Close()
		return
	}
	c.reused = false
	c.idleSince = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.t.opts.MaxIdlePerHost {
		p.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

func (p *Pool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

// exchange states of a Conn: how much of the current response was read.
const (
	stateRequest = iota // the request is being written, or its head awaited
	stateBody           // the head was read and a body follows
	stateDone           // the response was read to the end of its framing
)

// Conn is one upstream HTTP/1.1 connection. It is owned by exactly one
// request between Get (or Dial) and Release (or Close), and is not safe
// for concurrent use.
//
// An exchange on it: Begin, write the request head into the writer it
// returns, WriteBody, Flush, ReadHead, read the body with a [Body], then
// Release. Any error on the way leaves the connection fit only for Close.
type Conn struct {
	nc    net.Conn
	pool  *Pool
	br    *bufio.Reader
	bw    *bufio.Writer
	isTLS bool

	// fd is the socket's descriptor (under TLS too), for the non-blocking
	// peek of stale; -1 when the connection has none. peekBuf is the
	// peek's scratch.
	fd      int
	peekBuf [1]byte

	reused    bool      // taken from the idle pool for the current request
	dialed    bool      // dialed for the current request
	started   time.Time // when Get or Dial was called for the current request
	requests  int       // requests completed on this connection
	idleSince time.Time // when it was last put back

	// Exchange state, reset by Begin.
	state        int
	reusable     bool          // the response's framing lets the connection be reused
	writeTimeout time.Duration // refreshed before each body write
	readTimeout  time.Duration // for the response head
	// readArmed reports that Begin set the read deadline along with the
	// write one (equal timeouts, one timer) and no body was written since:
	// ReadHead need not set it again.
	readArmed bool
	// stop ends the watch of the exchange's context (context.AfterFunc);
	// interruptFn is c.interrupt, bound once per connection. interrupted
	// is set when the context ended the exchange: the connection is then
	// never reused.
	stop        func() bool
	interruptFn func()
	interrupted atomic.Bool

	// hdrCache remembers the previous response's header lines so that an
	// identical line (same upstream, same headers: the common case) reuses
	// the strings instead of allocating them again.
	hdrCache []cachedLine
}

// aLongTimeAgo is a deadline in the past: it makes blocked and later reads
// and writes fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// Reused reports whether c came from the idle pool for this request, so a
// failure before any response byte may be the peer closing it while idle.
func (c *Conn) Reused() bool { return c.reused }

// Started returns when the Get or Dial that returned c was called: the
// start of the try, dial included, for latency measures.
func (c *Conn) Started() time.Time { return c.started }

// Begin starts an exchange: ctx's end interrupts any later wait on c (the
// dial was already bounded by it), the request head is written into the
// returned writer within writeTimeout, as every body write is, and the
// response head must then arrive within readTimeout (see ReadHead).
func (c *Conn) Begin(ctx context.Context, writeTimeout, readTimeout time.Duration) *bufio.Writer {
	c.state, c.reusable, c.writeTimeout, c.readTimeout = stateRequest, false, writeTimeout, readTimeout
	if af, ok := ctx.(afterFuncer); ok {
		// The server loop's request context: registering with it directly
		// costs one allocation where context.AfterFunc costs five.
		c.stop = af.AfterFunc(c.interruptFn)
	} else if ctx.Done() != nil {
		c.stop = context.AfterFunc(ctx, c.interruptFn)
	}
	// A pooled connection was taken a moment ago; only a dial takes long
	// enough to need the clock read again.
	now := c.started
	if c.dialed {
		now, c.dialed = time.Now(), false
	}
	// Equal timeouts (Kong's defaults) share one runtime timer, set once:
	// writing a head takes microseconds, so the wait for the answer may
	// as well be counted from here, unless a body is written (WriteBody
	// disarms it).
	c.readArmed = writeTimeout == readTimeout
	if c.readArmed {
		_ = c.nc.SetDeadline(now.Add(writeTimeout))
	} else {
		_ = c.nc.SetWriteDeadline(now.Add(writeTimeout))
	}
	return c.bw
}

// afterFuncer is a context that runs a function when it ends, as the
// context package's own AfterFunc support expects (h1server's request
// context is one): stop reports whether it stopped f before it ran.
type afterFuncer interface {
	AfterFunc(f func()) (stop func() bool)
}

// interrupt ends the exchange from the watch of its context.
func (c *Conn) interrupt() {
	c.interrupted.Store(true)
	_ = c.nc.SetDeadline(aLongTimeAgo)
}

// unwatch ends the watch of the exchange's context. When the context ended
// first, the connection is marked interrupted.
func (c *Conn) unwatch() {
	if c.stop != nil {
		if !c.stop() {
			c.interrupted.Store(true)
		}
		c.stop = nil
	}
}

// Flush sends what was written of the request.
func (c *Conn) Flush() error {
	if err := c.bw.Flush(); err != nil {
		c.bw.Reset(c.nc)
		return &WriteError{Err: err}
	}
	return nil
}

// Release ends the exchange: c goes back to its pool when the response was
// read to the end of a framing without doubt and nothing else arrived,
// else it is closed. Either way the caller must not use c again.
func (c *Conn) Release() {
	c.unwatch()
	if c.state != stateDone || !c.reusable || c.br.Buffered() > 0 || c.interrupted.Load() {
		_ = c.nc.Close()
		return
	}
	c.pool.put(c)
}

// Close ends the exchange and closes the connection.
func (c *Conn) Close() {
	c.unwatch()
	_ = c.nc.Close()
}

// Hijack hands the connection over, after a 101 answer: the caller gets the
// network connection and the bytes buffered after the head (valid until
// the connection is read again), and closes nc when done.
func (c *Conn) Hijack() (nc net.Conn, buffered []byte) {
	c.unwatch()
	if n := c.br.Buffered(); n > 0 {
		buffered, _ = c.br.Peek(n)
		_, _ = c.br.Discard(n)
	}
	return c.nc, buffered
}

// stale reports whether an idle connection was closed, or received bytes,
// while pooled: either way it cannot carry another exchange. It costs one
// non-blocking MSG_PEEK on the socket, and under TLS a read of what the TLS
// layer already holds.
func (c *Conn) stale() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	if c.fd >= 0 && peekSocket(c.fd, c.peekBuf[:]) {
		return true
	}
	if c.isTLS {
		// A record the TLS layer read along with the last response (a
		// close_notify, or any data) is not on the socket any more: read
		// with a deadline already past, which returns at once unless it is
		// there.
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		c.readArmed = false
		_, err := c.br.Peek(1)
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return true
		}
	}
	return false
}
