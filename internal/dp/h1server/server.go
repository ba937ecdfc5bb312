// Package h1server is the runtime's HTTP/1.1 server loop: it accepts
// connections, parses request heads and bodies by RFC 9112 and hands each
// request to an http.Handler as ordinary net/http types, with per-connection
// state reused from one request to the next.
//
// What the parser accepts and refuses, rule by rule, is the conformance
// table in conformance_test.go; FuzzDifferential compares it with net/http's
// parser and lists, with their reasons, the places where the two differ on
// purpose.
package h1server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultMaxConns is the default Options.MaxConns. nginx's default of 512
// worker_connections counts upstream connections too, so a proxying worker
// holds about 256 clients, which Kong raises by default to the open-file
// limit (up to 16384 per worker). 10,000 clients need about 20,000 file
// descriptors with their upstream connections, within the hard limit of a
// modern Linux service (Go raises its soft limit to the hard one at start),
// and a few hundred MiB of buffers and goroutines.
const DefaultMaxConns = 10000

// Options tune the HTTP/1.1 server loop. Zero values take the defaults noted
// on each field, which follow nginx's (and so Kong's) client-side settings.
type Options struct {
	// Handler serves each request; it is required. It sees an
	// ordinary *http.Request and an http.ResponseWriter that also
	// implements http.Flusher and http.Hijacker. As with net/http it must
	// not use either after returning; unlike net/http, the Request, its
	// URL and Header map are reused for the connection's next request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request head in total, from its
	// first byte to its empty line, however the client spreads the bytes
	// (nginx client_header_timeout, net/http ReadHeaderTimeout). The wait
	// for that first byte is IdleTimeout. Default 60s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a connection that sends no (new) request for this
	// long (nginx keepalive_timeout). Default 75s.
	IdleTimeout time.Duration
	// BodyTimeout bounds each wait for request body bytes (nginx
	// client_body_timeout). Default 60s.
	BodyTimeout time.Duration
	// WriteTimeout bounds each wait while sending response bytes (nginx
	// send_timeout). Default 60s.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers, in bytes, and
	// separately a chunked body's trailer section. A longer request line is
	// answered 414, longer headers 494 (nginx's "Request Header Or Cookie
	// Too Large", which Kong answers). Default 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps the client connections served at once, across every
	// listener Serve runs and every listener wrapped by Server.Listener.
	// At the cap, accepting pauses until a connection closes: each
	// listener holds the one connection it accepted last, unserved, and
	// further clients wait in the kernel's listen backlog (and time out
	// there if the wait is long) rather than being accepted and closed at
	// once, so a burst is absorbed and file descriptors never run out.
	// Default DefaultMaxConns.
	MaxConns int
	// ErrorBody renders the body of an error the server answers itself
	// (400, 405, 414, 417, 494, 501, 505): msg is a fixed ASCII message, id
	// a hex request id. It appends to dst and returns the body and its
	// Content-Type. Default: msg and the id as plain text.
	ErrorBody func(dst []byte, msg, id string) (body []byte, contentType string)
	// Logger receives handler panics (with their stack) and accept errors,
	// and, at debug level, why a request was refused. Default: discard.
	Logger *slog.Logger
}

func (o *Options) check() error {
	if o.ReadHeaderTimeout < 0 || o.IdleTimeout < 0 || o.BodyTimeout < 0 || o.WriteTimeout < 0 || o.MaxHeaderBytes < 0 || o.MaxConns < 0 {
		return errors.New("h1server: server options must not be negative")
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
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.ErrorBody == nil {
		o.ErrorBody = plainErrorBody
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// plainErrorBody is the default Options.ErrorBody.
func plainErrorBody(dst []byte, msg, id string) ([]byte, string) {
	dst = append(dst, msg...)
	dst = append(dst, "\nrequest_id: "...)
	dst = append(dst, id...)
	return append(dst, '\n'), "text/plain; charset=utf-8"
}

// Server is the HTTP/1.1 server loop in front of one handler (the runtime's
// gateway, which swaps proxy generations behind one listener, or a proxy on
// its own). It is safe for concurrent use.
type Server struct {
	opts Options // immutable after New; defaults filled

	idPrefix [16]byte      // random per server, hex: ids of the errors it answers
	idSeq    atomic.Uint64 // error id counter

	// slots holds one token per open client connection, MaxConns at most:
	// accepting takes one first, closing gives it back.
	slots chan struct{}

	shutdown atomic.Bool   // set once by Shutdown or Close; never cleared
	done     chan struct{} // closed with shutdown: wakes accept loops waiting for a slot
	doneOnce sync.Once

	// mu guards listeners and conns.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
}

// New checks opts (Handler is required), fills defaults and returns a
// Server.
func New(opts Options) (*Server, error) {
	if opts.Handler == nil {
		return nil, errors.New("h1server: Options.Handler is required")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, slots: make(chan struct{}, opts.MaxConns), done: make(chan struct{}),
		listeners: make(map[net.Listener]struct{}), conns: make(map[*serverConn]struct{})}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	hex.Encode(s.idPrefix[:], rnd[:])
	return s, nil
}

// Options returns the options in force, defaults filled in, so that a
// server on another listener can be given the same limits.
func (s *Server) Options() Options { return s.opts }

// Connection states, for Shutdown to tell idle connections from busy ones.
const (
	connIdle   int32 = iota // waiting for the first byte of a request
	connActive              // reading, serving or finishing a request
	connClosed              // closed by Shutdown while idle
)

// Serve accepts connections on ln and serves plain HTTP/1.1 on each with
// this package's server loop instead of net/http's: pooled per-connection
// request state, read and write deadlines refreshed at most about once a
// second, and no background read per request unless the request's
// context is watched. It handles keep-alive, HTTP/1.0, Content-Length and
// chunked request bodies, Expect: 100-continue, and answers itself what no
// handler should see: malformed requests (400, 414, 494, 501, 505),
// CONNECT (405, as nginx does: the runtime is no forward proxy) and the
// server-wide OPTIONS * (200, as net/http does).
//
// The request the handler sees follows net/http's conventions with two
// differences: RequestURI is the request-target as received without its
// fragment (a fragment is no part of a request-target, RFC 9112 3.2, and
// is never passed on; nginx strips it too), and a request of a higher
// HTTP/1 minor version is HTTP/1.1 (RFC 9112 2.3). Its context carries
// http.LocalAddrContextKey and is cancelled when the handler returns, and
// while the handler runs when the client closes the connection (checked
// once the body is read, for handlers that wait on the context for more
// than a few milliseconds).
//
// A response that ends the connection while the client may still be
// sending (an error for a bad request, an answer before the request body
// was read) is followed by a lingering close: the server half-closes,
// then reads and discards what still arrives (up to 2 s in total, 500 ms
// of silence, 16 MiB; nginx's lingering_close, lingering_time and
// lingering_timeout) so that closing with unread bytes does not reset the
// connection and destroy the response before the client has read it.
//
// At MaxConns open connections, serving a new one waits until one closes.
// Accept errors that
// pass (EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ECONNRESET, EINTR,
// timeouts, or a listener error reporting itself temporary) are retried
// after a pause of 5 ms doubling up to 1 s, as net/http does; any other
// error ends Serve and is returned.
//
// Serve blocks until ln fails or Shutdown is called, and then returns
// http.ErrServerClosed. It may be called for several listeners.
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
			if !retryAccept(err) {
				return err
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.opts.Logger.Warn("accept failed; retrying", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return http.ErrServerClosed
			}
			continue
		}
		backoff = 0
		// At MaxConns, wait for a slot with the connection in hand: a slot
		// taken before Accept would be held by an idle accept loop.
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			_ = nc.Close()
			return http.ErrServerClosed
		}
		c := s.newServerConn(nc)
		s.mu.Lock()
		if s.shutdown.Load() {
			s.mu.Unlock()
			_ = nc.Close()
			<-s.slots
			return http.ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// retryAccept reports whether an accept error passes: resource exhaustion,
// a connection aborted before it was accepted, an interrupted call, a
// timeout, or an error that says it is temporary (net.OpError does for the
// errors net/http retries on, and so may a wrapping listener).
func retryAccept(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
			syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN:
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var tmp interface{ Temporary() bool }
	return errors.As(err, &tmp) && tmp.Temporary()
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
	s.stop()
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
				_ = c.nc.Close()
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
	s.stop()
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.state.Store(connClosed)
		_ = c.nc.Close()
	}
	return errors.Join(errs...)
}

// stop marks the server shut down and wakes accept loops waiting for a
// connection slot.
func (s *Server) stop() {
	s.shutdown.Store(true)
	s.doneOnce.Do(func() { close(s.done) })
}

// Listener returns ln wrapped for a listener that another server runs (the
// gateway serves TLS and HTTP/2 with net/http): the connections it accepts
// share MaxConns with those of Serve, accepting waits at the cap as Serve
// does, and each write waits at most WriteTimeout (net/http's own
// WriteTimeout bounds a whole response instead), unless the serving server
// set a write deadline of its own. Closing the returned listener closes ln
// and the connection an Accept holds while it waits for a slot.
func (s *Server) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, s: s, done: make(chan struct{})}
}

// limitListener is the listener of Server.Listener.
type limitListener struct {
	net.Listener
	s         *Server
	closeOnce sync.Once
	done      chan struct{} // closed by Close
}

func (l *limitListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.s.slots <- struct{}{}:
	case <-l.done:
		_ = nc.Close()
		return nil, net.ErrClosed
	}
	return &limitConn{Conn: nc, s: l.s}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn is a connection accepted by a limitListener: it holds a slot
// until closed and refreshes its write deadline as connWriter does.
type limitConn struct {
	net.Conn
	s        *Server
	released atomic.Bool

	// mu guards the write deadline: the serving server may set one from
	// another goroutine than the one writing.
	mu       sync.Mutex
	deadline time.Time // the write deadline in force
	own      bool      // deadline is ours, not the serving server's
}

func (c *limitConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.own || c.deadline.IsZero() {
		c.deadline = refreshDeadline(c.Conn.SetWriteDeadline, c.deadline, c.s.opts.WriteTimeout)
		c.own = true
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *limitConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline, c.own = t, false
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *limitConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline, c.own = t, false
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *limitConn) Close() error {
	if c.released.CompareAndSwap(false, true) {
		<-c.s.slots
	}
	return c.Conn.Close()
}
