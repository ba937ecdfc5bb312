package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// TransportOptions configures a Transport. Zero values take the defaults
// noted on each field, which follow Kong's upstream keep-alive settings.
type TransportOptions struct {
	// MaxIdlePerHost bounds the idle keep-alive connections kept per peer
	// address (Kong: upstream_keepalive_pool_size, default 512 per worker;
	// here default 128 per process as nginx's keepalive 128 in the bench).
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
	// Dial replaces net.Dialer.DialContext (tests, alternative stacks).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Transport is the lean HTTP/1.1 upstream client's connection pool: one pool
// of idle keep-alive connections per peer address. It outlives
// configuration swaps (pools are keyed by address, not by Config), and is
// safe for concurrent use.
type Transport struct {
	opts TransportOptions // immutable after NewTransport

	// mu guards pools, h2 and closed. Lookups take the read lock only.
	mu     sync.RWMutex
	pools  map[string]*hostPool
	h2     map[string]*http.Transport // grpc(s) clients by TLS settings
	closed bool
}

// NewTransport checks opts, fills defaults and returns a Transport.
func NewTransport(opts TransportOptions) (*Transport, error) {
	if opts.MaxIdlePerHost < 0 || opts.IdleTimeout < 0 || opts.ReadBufferSize < 0 || opts.WriteBufferSize < 0 {
		return nil, errors.New("proxy: transport options must not be negative")
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
	if opts.Dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		opts.Dial = d.DialContext
	}
	return &Transport{opts: opts, pools: make(map[string]*hostPool)}, nil
}

// Close closes every idle connection and makes later gets dial-and-close
// (connections in use are closed when released).
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	pools, h2 := t.pools, t.h2
	t.pools, t.h2 = make(map[string]*hostPool), nil
	t.mu.Unlock()
	for _, p := range pools {
		p.closeAll()
	}
	for _, h := range h2 {
		h.CloseIdleConnections()
	}
	return nil
}

// IdleConns reports the idle connections pooled for addr (tests, metrics).
func (t *Transport) IdleConns(addr string) int {
	t.mu.RLock()
	p := t.pools[addr]
	t.mu.RUnlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// poolFor returns the pool of connections to addr for svc: plain
// connections are pooled by address, TLS ones by address and TLS settings.
func (t *Transport) poolFor(addr string, svc *Service) *hostPool {
	if svc.tlsConfig == nil {
		return t.pool(addr, addr, nil)
	}
	return t.pool(addr+"|"+svc.poolKey, addr, svc.tlsConfig)
}

func (t *Transport) pool(key, addr string, tlsConfig *tls.Config) *hostPool {
	t.mu.RLock()
	p := t.pools[key]
	t.mu.RUnlock()
	if p != nil {
		return p
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p = t.pools[key]; p == nil {
		p = &hostPool{t: t, addr: addr, tls: tlsConfig}
		if !t.closed {
			t.pools[key] = p
		} else {
			p.closed = true
		}
	}
	return p
}

// hostPool holds the idle connections to one peer address (with one set
// of TLS settings).
type hostPool struct {
	t    *Transport  // immutable
	addr string      // immutable
	tls  *tls.Config // immutable; nil for plain connections

	// mu guards idle and closed. idle is a LIFO stack: the most recently
	// used connection is reused first (its socket is warmest and least
	// likely closed by the peer); idle[0] is the oldest and expires first.
	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

// get returns an idle connection (reused=true) or dials a new one.
func (p *hostPool) get(ctx context.Context, connectTimeout time.Duration) (*upConn, error) {
	now := time.Now()
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleSince) < p.t.opts.IdleTimeout {
			p.mu.Unlock()
			c.reused = true
			return c, nil
		}
		// The newest is expired, so all older ones are too.
		old := p.idle
		p.idle = p.idle[:0]
		p.mu.Unlock()
		c.nc.Close()
		for i, o := range old {
			o.nc.Close()
			old[i] = nil
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return p.dial(ctx, connectTimeout)
}

func (p *hostPool) dial(ctx context.Context, connectTimeout time.Duration) (*upConn, error) {
	dctx, cancel := context.WithTimeout(ctx, connectTimeout)
	nc, err := p.t.opts.Dial(dctx, "tcp", p.addr)
	cancel()
	if err != nil {
		return nil, &dialError{addr: p.addr, err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Request heads are written in one flush; Nagle would only delay them.
		tc.SetNoDelay(true)
	}
	if p.tls != nil {
		tc := tls.Client(nc, p.tls)
		hctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, &dialError{addr: p.addr, err: fmt.Errorf("tls handshake: %w", err)}
		}
		nc = tc
	}
	return &upConn{
		nc:   nc,
		pool: p,
		br:   bufio.NewReaderSize(nc, p.t.opts.ReadBufferSize),
		bw:   bufio.NewWriterSize(nc, p.t.opts.WriteBufferSize),
	}, nil
}

// put returns c to the pool, or closes it when the pool is full or closed.
func (p *hostPool) put(c *upConn) {
	c.requests++
	if max := p.t.opts.MaxRequestsPerConn; max > 0 && c.requests >= max {
		c.nc.Close()
		return
	}
	c.idleSince = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.t.opts.MaxIdlePerHost {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

func (p *hostPool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// upConn is one upstream HTTP/1.1 connection. It is owned by exactly one
// request between get and put/close.
type upConn struct {
	nc   net.Conn
	pool *hostPool
	br   *bufio.Reader
	bw   *bufio.Writer

	reused    bool      // taken from the idle pool for the current request
	requests  int       // requests completed on this connection
	idleSince time.Time // when it was last put back

	// hdrCache remembers the previous response's header lines so that an
	// identical line (same upstream, same headers: the common case) reuses
	// the strings instead of allocating them again.
	hdrCache []cachedLine
}

// cachedLine is one remembered response header line.
type cachedLine struct {
	raw   []byte // the line as received, without CRLF
	name  string // canonical header name
	value string
}

func (c *upConn) close() { c.nc.Close() }

// stale reports whether an idle connection was closed (or sent unexpected
// bytes) while pooled, with one non-blocking MSG_PEEK. It is only worth its
// syscall for requests that cannot be replayed on a fresh connection.
func (c *upConn) stale() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	raw := c.nc
	if tc, ok := raw.(*tls.Conn); ok {
		// A close_notify or any other record waiting on the socket means
		// the upstream is done with this connection.
		raw = tc.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var dead bool
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		dead = n > 0 || (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN)
		return true
	})
	return dead
}

// dialError marks a failure to connect: nothing was sent, so the attempt is
// always safe to retry.
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string { return fmt.Sprintf("connect to %s: %v", e.addr, e.err) }
func (e *dialError) Unwrap() error { return e.err }
