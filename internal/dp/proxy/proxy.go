package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/accesslog"
	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/dp/h1"
	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/dp/h1server"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// copyBufSize is the size of the pooled body copy buffers. 32 KiB matches
// io.Copy's default and amortises syscalls for large bodies.
const copyBufSize = 32 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// Options configures a Proxy.
type Options struct {
	// Config is the initial configuration; it may be nil until the first
	// Store (requests then get 404 "no Route matched", as a runtime with no
	// configuration would, though readiness should keep traffic away).
	Config *Config
	// Transport is the upstream connection pool. Required: it is shared by
	// configuration generations and closed by its owner.
	Transport *h1client.Transport
	// HTTPPort and HTTPSPort are the listener ports reported as
	// X-Forwarded-Port for plain and TLS clients (e.g. "8000", "8443").
	HTTPPort, HTTPSPort string
	// Logger receives upstream failures at debug level. Default: discard.
	Logger *slog.Logger
	// Server tunes Serve, the plain-HTTP/1.1 server loop; zero values take
	// its defaults. Unused when the Proxy runs under net/http's server.
	Server h1server.Options
	// Analytics, when set, receives one record per request the proxy
	// answers (proxied, answered by a plugin or the router, or failed
	// upstream), once the handler is done with it; nil records nothing.
	// It is shared by configuration generations and owned by the caller.
	Analytics *analytics.Aggregator
	// AccessLog, when set, receives one entry per request the proxy
	// answers, queued off the request path; nil writes none. Shared by
	// configuration generations and owned by the caller.
	AccessLog *accesslog.Log
}

// Proxy is the runtime's HTTP handler: it resolves each request to a service
// through the current Config and proxies it over the Transport. It is safe
// for concurrent use; Store may be called at any time.
type Proxy struct {
	cfg       atomic.Pointer[Config] // the current configuration, swapped whole
	tr        *h1client.Transport
	httpPort  string
	httpsPort string
	log       *slog.Logger

	idPrefix [16]byte      // random per process, hex
	idSeq    atomic.Uint64 // request id counter

	srv *h1server.Server // the Serve loop; its handler defaults to the Proxy

	analytics *analytics.Aggregator // nil: no analytics
	accessLog *accesslog.Log        // nil: no access log
	// failures bounds the warnings logged for failed upstream requests.
	failures warnLimiter
}

// New checks opts and returns a Proxy.
func New(opts Options) (*Proxy, error) {
	if opts.Transport == nil {
		return nil, errors.New("proxy: Options.Transport is required")
	}
	if opts.Config != nil {
		if err := opts.Config.Check(); err != nil {
			return nil, err
		}
	}
	if opts.HTTPPort == "" {
		opts.HTTPPort = "8000"
	}
	if opts.HTTPSPort == "" {
		opts.HTTPSPort = "8443"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{tr: opts.Transport, httpPort: opts.HTTPPort, httpsPort: opts.HTTPSPort, log: opts.Logger,
		analytics: opts.Analytics, accessLog: opts.AccessLog}
	so := opts.Server
	if so.Handler == nil {
		so.Handler = p
	}
	if so.Logger == nil {
		so.Logger = opts.Logger
	}
	if so.ErrorBody == nil {
		so.ErrorBody = ServerErrorBody
	}
	srv, err := h1server.New(so)
	if err != nil {
		return nil, err
	}
	p.srv = srv
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	hex.Encode(p.idPrefix[:], rnd[:])
	if opts.Config != nil {
		p.cfg.Store(opts.Config)
	}
	return p, nil
}

// Store publishes cfg for all requests that start after it returns.
// cfg must not be modified afterwards.
func (p *Proxy) Store(cfg *Config) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	p.cfg.Store(cfg)
	return nil
}

// Config returns the current configuration (nil before the first Store).
func (p *Proxy) Config() *Config { return p.cfg.Load() }

// reqState is the per-request scratch space, pooled so that a request in
// steady state allocates none of it.
type reqState struct {
	cfg   *Config      // the configuration loaded for the request; nil before the first Store
	names *headerNames // the flavour of the response headers
	start time.Time    // when the request reached the proxy
	reqID string

	match Match
	fi    fwdInfo
	head  h1client.Head
	body  h1client.Body
	buf   []byte   // error bodies, ids
	hdrs  []header // the request's headers, sorted for the upstream head

	// Plugin phases; nil on the zero-plugin path.
	pc    *plugin.Ctx
	chain *plugin.Chain // the chain whose header and log phases run
	// upLatency is the time spent waiting for the upstream, for the log phase.
	upLatency time.Duration
	sent      int64 // response body bytes written, for the log phase
	// upStart is when the last try started (its dial or pooled connection),
	// headAt when its response head arrived: the latency headers.
	upStart, headAt time.Time
	// status is the status code sent to the client, for analytics; 0
	// until the response head is decided.
	status int
	// reqBytes is the client's request body length (Content-Length; 0
	// when chunked or absent), taken before plugins may change it.
	reqBytes int64

	// attempt is the balancer state across the request's tries.
	attempt Attempt
	// upAddr is the peer of the last try, for the access log.
	upAddr string
}

// pickPeer picks the peer address of the request's next try: the service's
// own address, or its balancer's choice.
func (st *reqState) pickPeer(svc *Service, r *http.Request) (string, error) {
	var addr string
	var err error
	switch b := svc.Balancer.(type) {
	case nil:
		addr = svc.addr
	case AttemptBalancer:
		addr, err = b.PickAttempt(r, &st.attempt)
	default:
		addr, err = b.Pick(r, st.attempt.Try)
	}
	if err == nil {
		st.upAddr = addr
	}
	return addr, err
}

// reportPeer ends the current try against addr with the upstream's status
// (its head arrived) or the error that ended it; see
// AttemptBalancer.ReportAttempt. A plain Balancer gets no report for a try
// that ended without a verdict, as before statuses were reported.
func (st *reqState) reportPeer(svc *Service, addr string, status int, err error) {
	switch b := svc.Balancer.(type) {
	case nil:
	case AttemptBalancer:
		b.ReportAttempt(&st.attempt, status, err)
	default:
		if status != 0 || err != nil {
			b.Report(addr, err)
		}
	}
}

var statePool = sync.Pool{New: func() any {
	return &reqState{head: h1client.Head{Fields: make([]h1client.Field, 0, 16)}, buf: make([]byte, 0, 512),
		hdrs: make([]header, 0, 32)}
}}

// newRequestID returns a 32-hex-digit id (like nginx's $request_id): a
// per-process random half and a counter half, unique without a syscall.
func (p *Proxy) newRequestID() string {
	n := p.idSeq.Add(1)
	var b [32]byte
	copy(b[:16], p.idPrefix[:])
	const digits = "0123456789abcdef"
	for i := 31; i >= 16; i-- {
		b[i] = digits[n&15]
		n >>= 4
	}
	return string(b[:])
}

// header names used for the configured flavour.
type headerNames struct{ reqID, upLatency, proxyLatency, respLatency string }

var (
	gantryNames = headerNames{"X-Gantry-Request-Id", "X-Gantry-Upstream-Latency", "X-Gantry-Proxy-Latency", "X-Gantry-Response-Latency"}
	kongNames   = headerNames{"X-Kong-Request-Id", "X-Kong-Upstream-Latency", "X-Kong-Proxy-Latency", "X-Kong-Response-Latency"}
)

func (c *Config) names() *headerNames {
	if c.KongHeaders {
		return &kongNames
	}
	return &gantryNames
}

// acquireCtx starts the plugin context of a request.
func (p *Proxy) acquireCtx(r *http.Request, st *reqState) *plugin.Ctx {
	pc := plugin.AcquireCtx(r)
	pc.Log.StartedAt = st.start
	pc.SetRequestID(st.reqID)
	if ip, err := netip.ParseAddr(hostOf(r.RemoteAddr)); err == nil {
		pc.ClientIP = ip.Unmap()
	}
	st.pc = pc
	return pc
}

// ServeHTTP proxies one request in three steps: prepare (configuration,
// routing and the plugin phases before the upstream), attempt (the tries
// against the upstream, up to a parsed response head) and relay (the
// response to the client). With plugins the phases run in Kong's order:
// rewrite (Config.Global, before routing), access (Match.Plugins, after
// routing; a short-circuit skips the upstream), header filter on the
// response before it is written, body filter when a collected plugin wants
// the body (the response is then buffered), and log once the response has
// been flushed to the client.
//
// With plugins, response header values may live in memory owned by the
// request's plugin context, which is reused once ServeHTTP returns: a
// ResponseWriter must have serialised the header by the time it is flushed
// (net/http's and Serve's do; the proxy flushes before the log phase).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := statePool.Get().(*reqState)
	defer p.release(st, r)
	st.start = time.Now()
	st.reqBytes = max(r.ContentLength, 0)
	svc := p.prepare(w, r, st)
	if svc == nil {
		return
	}
	if svc.grpc() {
		p.serveGRPC(w, r, st, svc)
		return
	}
	c, err := p.attempt(r, st, svc)
	if err != nil {
		var be *h1client.BodyReadError
		if errors.As(err, &be) {
			p.log.Debug("client body", "err", err)
			p.writeError(w, r, st, http.StatusBadRequest, MsgBadRequest)
			return
		}
		p.upstreamError(w, r, st, err)
		return
	}
	p.relay(w, r, st, svc, c)
}

// prepare runs what comes before the upstream: it loads the configuration,
// runs the global rewrite phase, routes the request, refuses TRACE unless
// the route allows it, runs the access phase and computes what the
// upstream request head needs. It returns the service to proxy to, or nil
// when the request was answered here.
func (p *Proxy) prepare(w http.ResponseWriter, r *http.Request, st *reqState) *Service {
	cfg := p.cfg.Load()
	st.cfg, st.names = cfg, &gantryNames
	if cfg != nil {
		st.names = cfg.names()
	}
	st.reqID = p.newRequestID()
	if cfg == nil {
		p.writeError(w, r, st, http.StatusNotFound, MsgNoRoute)
		return nil
	}
	if cfg.Global != nil {
		pc := p.acquireCtx(r, st)
		cfg.Global.Rewrite(pc)
		if pc.Exited() {
			st.chain = cfg.Global.NoRoute()
			p.writeExit(w, r, st)
			return nil
		}
	}
	cfg.Resolver.Resolve(r, &st.match)
	if st.match.Reject != nil {
		st.match.Reject.ServeHTTP(w, r)
		st.status = http.StatusOK
		if rs, ok := st.match.Reject.(RejectStatus); ok {
			st.status = rs.RejectStatus()
		}
		return nil
	}
	svc := st.match.Service
	if svc == nil {
		// As in Kong, the router fails before the access phase collects
		// any plugin, so no header or log phase runs for a 404.
		p.writeError(w, r, st, http.StatusNotFound, MsgNoRoute)
		return nil
	}
	if r.Method == http.MethodTrace && !slices.Contains(st.match.Methods, http.MethodTrace) {
		// nginx answers TRACE 405 itself; here a route that lists the
		// method lets it through.
		p.writeError(w, r, st, http.StatusMethodNotAllowed, MsgMethodNotAllowed)
		return nil
	}
	if chain := st.match.Plugins; chain != nil {
		pc := st.pc
		if pc == nil {
			pc = p.acquireCtx(r, st)
		}
		path, query, host := r.URL.Path, r.URL.RawQuery, r.Host
		st.chain = chain
		pc.URICaptures = st.match.URICaptures
		chain.Access(pc)
		if pc.Exited() {
			p.writeExit(w, r, st)
			return nil
		}
		// Plugins edit the request in place; the upstream request follows.
		if r.URL.Path != path {
			st.match.Path = r.URL.EscapedPath()
		} else if r.URL.RawQuery != query && st.match.Path == "" {
			st.match.Path = requestPath(r)
		}
		if r.Host != host {
			st.match.PreserveHost = true
		}
	}
	if !svc.prepared {
		p.log.Debug("unsupported service", "service", svc.Name, "err", ErrUnsupportedProtocol)
		p.writeError(w, r, st, http.StatusInternalServerError, MsgUnexpected)
		return nil
	}

	fi := &st.fi
	*fi = fwdInfo{reqIDName: st.names.reqID, reqID: st.reqID, via: !cfg.DisableVia, scheme: "http", port: p.httpPort,
		underscores: cfg.AllowUnderscoreHeaders}
	if r.TLS != nil {
		fi.scheme, fi.port = "https", p.httpsPort
	}
	fi.clientIP = hostOf(r.RemoteAddr)
	if len(cfg.TrustedIPs) > 0 {
		ip, _ := netip.ParseAddr(fi.clientIP)
		fi.trusted = cfg.trusted(ip)
	}
	fi.host = svc.hostHeader
	if st.match.PreserveHost && r.Host != "" {
		fi.host = r.Host
	}
	fi.upgrade = !svc.grpc() && r.ProtoMajor == 1 && h1.HasTokenAny(r.Header["Connection"], "upgrade") &&
		len(r.Header["Upgrade"]) > 0 && h1.HasToken(r.Header["Upgrade"][0], "websocket")
	return svc
}

// attempt sends the request to svc and reads the response head into
// st.head, trying again as Kong does: on a new pick after a connection
// failure, and for idempotent requests without a body after an error or
// a timeout before the head; on a new connection to the same peer when a
// pooled one turns out closed before answering. It returns the
// connection, whose body is still to be read, or the error that ended the
// last try; either way nothing was written to the client. The request's
// context bounds every dial and wait: once it ends, no try follows.
func (p *Proxy) attempt(r *http.Request, st *reqState, svc *Service) (*h1client.Conn, error) {
	ctx := r.Context()
	chunked := r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
	hasBody := chunked || r.ContentLength > 0
	replayable := !hasBody && isIdempotent(r.Method)
	var (
		addr  string
		pick  = true // pick a peer: the first try, or a retry after a failure
		fresh bool   // dial, bypassing the pool, after a pooled connection failed
	)
	for {
		if pick {
			var err error
			if addr, err = st.pickPeer(svc, r); err != nil {
				return nil, err
			}
			pick = false
		}
		pool := p.tr.Pool(svc.poolKeyFor(addr), addr, svc.tlsConfig)
		var c *h1client.Conn
		var err error
		if fresh || st.fi.upgrade {
			// Upgraded connections are never pooled, so never taken from it.
			c, err = pool.Dial(ctx, svc.ConnectTimeout)
		} else {
			c, err = pool.Get(ctx, svc.ConnectTimeout)
		}
		if err != nil {
			if ctx.Err() != nil {
				st.reportPeer(svc, addr, 0, nil) // the client went away: no verdict on the peer
				return nil, err
			}
			st.reportPeer(svc, addr, 0, err)
			if st.attempt.Try < svc.Retries {
				// Kong retries connection failures only, each on a new
				// pick, which the balancer steers away from tried peers.
				st.attempt.Try++
				pick, fresh = true, false
				continue
			}
			return nil, err
		}
		st.upStart = c.Started()
		got, err := p.roundTrip(ctx, c, r, st, svc, chunked)
		if err == nil {
			st.headAt = time.Now()
			st.upLatency = st.headAt.Sub(st.upStart)
			// Passive health counts the status the upstream answered,
			// before any plugin changes it.
			st.reportPeer(svc, addr, st.head.Status, nil)
			return c, nil
		}
		c.Close()
		var be *h1client.BodyReadError
		if errors.As(err, &be) || ctx.Err() != nil {
			// The client's fault or the client gone, not the peer's.
			st.reportPeer(svc, addr, 0, nil)
			return nil, err
		}
		if c.Reused() && !got && replayable && !isTimeout(err) {
			// The pooled connection was closed by the upstream as the
			// request went out: it never reached it, so send it again on
			// a new connection to the same peer.
			fresh = true
			continue
		}
		st.reportPeer(svc, addr, 0, err)
		if replayable && st.attempt.Try < svc.Retries {
			// nginx's proxy_next_upstream "error timeout", which Kong's
			// retries use: an idempotent request without a body that got
			// no complete response head (an error or a read timeout after
			// it was sent) goes to the next pick. Nothing reached the
			// client yet. Non-idempotent ones are retried only when the
			// connection failed, above.
			st.attempt.Try++
			pick, fresh = true, false
			continue
		}
		return nil, err
	}
}

// roundTrip writes the request on c and reads the response head into
// st.head. got reports whether any response byte arrived.
func (p *Proxy) roundTrip(ctx context.Context, c *h1client.Conn, r *http.Request, st *reqState, svc *Service, chunked bool) (got bool, err error) {
	bw := c.Begin(ctx, svc.WriteTimeout, svc.ReadTimeout)
	st.hdrs = writeRequestHead(bw, r, &st.match, &st.fi, chunked, st.hdrs)
	if err := c.WriteBody(r.Body, r.ContentLength, chunked); err != nil {
		return false, err
	}
	if err := c.Flush(); err != nil {
		return false, err
	}
	return c.ReadHead(&st.head, r.Method)
}

// relay answers the client from the upstream's response: the tunnel of an
// accepted upgrade, or the head through the header filter, then no body,
// the body buffered for body filters, or the body streamed. The
// connection goes back to its pool only when the exchange ended cleanly;
// the log phase runs last.
func (p *Proxy) relay(w http.ResponseWriter, r *http.Request, st *reqState, svc *Service, c *h1client.Conn) {
	h := &st.head
	if h.Status == http.StatusSwitchingProtocols {
		if st.fi.upgrade {
			p.tunnel(w, r, c, st, svc)
			return
		}
		// A 101 we did not ask for cannot be relayed.
		c.Close()
		p.upstreamError(w, r, st, h1client.ErrMalformed)
		return
	}
	p.writeResponseHead(w, st)
	status := h.Status
	if st.chain != nil {
		status = p.headerFilter(w, st, status)
	}
	if h.Bodyless {
		w.WriteHeader(status)
		p.finish(c, !st.fi.upgrade)
		p.logPhase(w, r, st, status)
		return
	}
	if st.chain != nil && st.chain.WantsBody(st.pc) {
		p.bufferedBody(w, r, c, st, svc, status)
		return
	}
	w.WriteHeader(status)
	st.body.Init(c, h, svc.ReadTimeout)
	ok := p.copyBody(w, st, h.Length < 0)
	p.finish(c, ok && !st.fi.upgrade)
	p.logPhase(w, r, st, status)
	if !ok {
		// The client already has a status line and part of the body; the
		// only honest signal left is to abort the response.
		panic(http.ErrAbortHandler)
	}
}

// requestPath returns the client's request path without the query.
func requestPath(r *http.Request) string {
	u := r.RequestURI
	if u == "" || u[0] != '/' {
		return r.URL.EscapedPath()
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	return u
}

// headerFilter runs the header phase on the response head already copied
// into w.Header() and returns the status to send (plugins may change it).
func (p *Proxy) headerFilter(w http.ResponseWriter, st *reqState, status int) int {
	pc := st.pc
	pc.Response.Status = status
	pc.Response.Header = w.Header()
	st.chain.HeaderFilter(pc)
	return pc.Response.Status
}

// maxBufferedBody bounds a response body buffered for body filters, in
// bytes. Larger bodies fail the request (502) rather than exhaust memory.
const maxBufferedBody = 64 << 20

// bufferedBody reads the whole upstream body, runs the body filters on it
// and writes the result with its new length.
func (p *Proxy) bufferedBody(w http.ResponseWriter, r *http.Request, c *h1client.Conn, st *reqState, svc *Service, status int) {
	h := &st.head
	st.body.Init(c, h, svc.ReadTimeout)
	bp := copyBufPool.Get().(*[]byte)
	var body []byte
	if h.Length > 0 && h.Length <= maxBufferedBody {
		body = make([]byte, 0, h.Length)
	}
	var err error
	for {
		var chunk []byte
		chunk, err = st.body.Next(*bp)
		body = append(body, chunk...)
		if err != nil || len(body) > maxBufferedBody {
			break
		}
	}
	copyBufPool.Put(bp)
	if len(body) > maxBufferedBody || !st.body.Done() {
		c.Close()
		if err == nil {
			err = errors.New("proxy: response body too large to buffer for body filters")
		}
		// Nothing was written yet: the upstream's head is replaced by an
		// error response.
		clear(w.Header())
		p.upstreamError(w, r, st, err)
		return
	}
	c.Release()
	pc := st.pc
	pc.Response.Body = body
	st.chain.BodyFilter(pc)
	p.writeFull(w, r, st, pc.Response.Status, pc.Response.Body)
}

// writeFull writes a complete response of known body, fixing its framing,
// then runs the log phase.
func (p *Proxy) writeFull(w http.ResponseWriter, r *http.Request, st *reqState, status int, body []byte) {
	wh := w.Header()
	delete(wh, "Transfer-Encoding")
	if status != http.StatusNoContent && status != http.StatusNotModified && status >= 200 {
		wh["Content-Length"] = []string{itoa(int64(len(body)))}
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead && len(body) > 0 {
		n, _ := w.Write(body)
		st.sent += int64(n)
	}
	p.logPhase(w, r, st, status)
}

// writeExit answers with the response a plugin produced (Kong's
// kong.response.exit): header filter on it, then the write, then log.
func (p *Proxy) writeExit(w http.ResponseWriter, r *http.Request, st *reqState) {
	pc := st.pc
	st.chain.HeaderFilter(pc)
	if st.chain.WantsBody(pc) {
		st.chain.BodyFilter(pc)
	}
	wh := w.Header()
	for k, v := range pc.Response.Header {
		wh[k] = v
	}
	if _, ok := wh[st.names.reqID]; !ok {
		wh[st.names.reqID] = []string{pc.RequestID()}
	}
	wh[st.names.respLatency] = []string{itoa(time.Since(st.start).Milliseconds())}
	p.writeFull(w, r, st, pc.Response.Status, pc.Response.Body)
}

// logPhase flushes the response to the client, then runs the log phase of
// the collected plugins, so logging never delays the client.
func (p *Proxy) logPhase(w http.ResponseWriter, r *http.Request, st *reqState, status int) {
	st.status = status
	pc := st.pc
	if pc == nil || st.chain == nil {
		return
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	l := &pc.Log
	l.Status = status
	l.ResponseSize = st.sent
	if r.ContentLength > 0 {
		l.RequestSize = r.ContentLength
	}
	l.RequestLatency = time.Since(l.StartedAt)
	l.UpstreamLatency = st.upLatency
	l.GatewayLatency = l.RequestLatency - l.UpstreamLatency
	if st.upLatency > 0 {
		l.UpstreamURI = st.match.Path
		if l.UpstreamURI == "" {
			l.UpstreamURI = requestPath(r)
		}
	}
	st.chain.Log(pc)
}

func (p *Proxy) release(st *reqState, r *http.Request) {
	if p.analytics != nil {
		p.record(st)
	}
	if p.accessLog != nil {
		p.logAccess(st, r)
	}
	if st.pc != nil {
		plugin.ReleaseCtx(st.pc)
	}
	st.pc, st.chain, st.upLatency, st.sent = nil, nil, 0, 0
	st.status, st.reqBytes = 0, 0
	st.cfg, st.names, st.reqID, st.upAddr = nil, nil, "", ""
	st.attempt = Attempt{}
	st.match = Match{}
	st.fi = fwdInfo{}
	st.body = h1client.Body{}
	st.head.Reset()
	clear(st.hdrs)
	st.hdrs = st.hdrs[:0]
	st.buf = st.buf[:0]
	statePool.Put(st)
}

// finish ends the exchange on c: back to its pool when reuse is allowed
// here and c itself finds the exchange clean (see h1client.Conn.Release),
// else closed.
func (p *Proxy) finish(c *h1client.Conn, reuse bool) {
	if reuse {
		c.Release()
	} else {
		c.Close()
	}
}

// writeResponseHead copies the upstream's end-to-end headers into w and
// adds Via, the request id and the latency headers.
func (p *Proxy) writeResponseHead(w http.ResponseWriter, st *reqState) {
	h := &st.head
	wh := w.Header()
	// One backing array for every value slice: one allocation instead of
	// one per header. Slices are capped so an Add reallocates instead of
	// writing into a neighbour.
	n := len(h.Fields) + 4
	vals := make([]string, n)
	i := 0
	for _, f := range h.Fields {
		if old, ok := wh[f.Name]; ok {
			wh[f.Name] = append(old, f.Value)
			continue
		}
		vals[i] = f.Value
		wh[f.Name] = vals[i : i+1 : i+1]
		i++
	}
	set := func(k, v string) {
		vals[i] = v
		wh[k] = vals[i : i+1 : i+1]
		i++
	}
	if st.fi.reqID != "" {
		set(st.names.reqID, st.fi.reqID)
	}
	if !st.cfg.DisableLatencyHeaders {
		set(st.names.upLatency, itoa(st.headAt.Sub(st.upStart).Milliseconds()))
		set(st.names.proxyLatency, itoa(st.upStart.Sub(st.start).Milliseconds()))
	}
	if !st.cfg.DisableVia {
		if h.Via != "" {
			set("Via", h.Via+", "+viaValue)
		} else {
			set("Via", viaValue)
		}
	} else if h.Via != "" {
		set("Via", h.Via)
	}
	if c := st.attempt.SetCookie; c != "" {
		wh["Set-Cookie"] = append(wh["Set-Cookie"], c)
	}
}

// copyBody streams the upstream body to the client. When flushEach is set
// (chunked or until-close bodies: streaming responses such as SSE) the client
// is flushed whenever no more upstream bytes are buffered, so data is not
// held back waiting for a full buffer. It reports false if either side
// failed.
func (p *Proxy) copyBody(w http.ResponseWriter, st *reqState, flushEach bool) bool {
	b := &st.body
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	for {
		chunk, err := b.Next(*bp)
		if len(chunk) > 0 {
			n, werr := w.Write(chunk)
			st.sent += int64(n)
			if werr != nil {
				return false
			}
			if flushEach && b.Buffered() == 0 {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		}
		if err != nil {
			if b.Done() {
				return true // io.EOF
			}
			p.log.Debug("upstream body", "err", err)
			return false
		}
	}
}

// upstreamError answers a failure before any response byte was sent, with
// Kong's status and message for its cause.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, st *reqState, err error) {
	status, msg := classify(err)
	if suppressed, ok := p.failures.allow(time.Now()); ok {
		svc := ""
		if st.match.Service != nil {
			svc = st.match.Service.ID
		}
		p.log.Warn("upstream request failed", "status", status, "cause", err.Error(), "upstream", st.upAddr,
			"service", svc, "route", st.match.RouteID, "request_id", st.reqID, "suppressed_since_last", suppressed)
	}
	p.writeError(w, r, st, status, msg)
}

func classify(err error) (int, string) {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, ErrNoPeer):
		return http.StatusServiceUnavailable, MsgNoPeer
	case errors.Is(err, ErrNameResolution), errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		return http.StatusServiceUnavailable, MsgNameFailed
	case isTimeout(err):
		return http.StatusGatewayTimeout, MsgTimeout
	}
	return http.StatusBadGateway, MsgBadGateway
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// writeError writes a Kong-shaped error response, negotiated on Accept.
// When plugins were collected for the request, the response goes through
// their header filter and log phases, as Kong's error handler does.
func (p *Proxy) writeError(w http.ResponseWriter, r *http.Request, st *reqState, status int, msg string) {
	f := negotiateErrFormat(r.Header)
	st.buf = appendErrBody(st.buf[:0], f, msg, st.reqID)
	wh := w.Header()
	wh["Content-Type"] = []string{errContentType[f]}
	wh["Content-Length"] = []string{itoa(int64(len(st.buf)))}
	wh["Server"] = []string{"gantry"}
	wh[st.names.reqID] = []string{st.reqID}
	wh[st.names.respLatency] = []string{itoa(time.Since(st.start).Milliseconds())}
	if st.chain != nil && st.pc != nil {
		status = p.headerFilter(w, st, status)
		pc := st.pc
		pc.Response.Body = st.buf
		if st.chain.WantsBody(pc) {
			st.chain.BodyFilter(pc)
		}
		p.writeFull(w, r, st, status, pc.Response.Body)
		return
	}
	w.WriteHeader(status)
	st.status = status
	if r.Method != http.MethodHead {
		n, _ := w.Write(st.buf)
		st.sent += int64(n)
	}
}

// RejectStatus is implemented by a Match.Reject handler that can tell the
// status it answers, for analytics; a handler without it counts as 200.
type RejectStatus interface {
	RejectStatus() int
}

// logAccess queues the finished request's access log entry.
func (p *Proxy) logAccess(st *reqState, r *http.Request) {
	e := accesslog.Entry{Time: st.start, RequestID: st.reqID, Method: r.Method, Path: requestPath(r), ClientIP: st.fi.clientIP,
		RouteID: st.match.RouteID, Status: st.status, Latency: time.Since(st.start), Upstream: st.upLatency,
		RequestBytes: st.reqBytes, ResponseBytes: st.sent, UpstreamAddr: st.upAddr}
	if e.ClientIP == "" {
		e.ClientIP = hostOf(r.RemoteAddr)
	}
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	if svc := st.match.Service; svc != nil {
		e.ServiceID = svc.ID
	}
	if pc := st.pc; pc != nil && pc.Consumer != nil {
		e.ConsumerID = pc.Consumer.ID
	}
	p.accessLog.Record(&e)
}

// warnLimiter lets through at most warnBurst warnings per second and counts the others, so that
// an upstream failing under load cannot flood the log.
type warnLimiter struct {
	mu         sync.Mutex // guards the fields below
	window     time.Time
	n          int
	suppressed int
}

const warnBurst = 10

// allow reports whether a warning may be logged now, and how many were suppressed since the last
// one that was.
func (l *warnLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Second {
		l.window, l.n = now, 0
	}
	if l.n >= warnBurst {
		l.suppressed++
		return 0, false
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return s, true
}

// record adds the finished request to the analytics aggregate: the status
// sent, the body sizes, the total latency, and the upstream's when one
// answered. The ids are the matched route's and service's, and the
// consumer a plugin identified. A request that ended without a status
// (a handler panic) counts as 500.
func (p *Proxy) record(st *reqState) {
	end := time.Now()
	rec := analytics.Request{End: end, Route: st.match.RouteID, Status: st.status,
		RequestBytes: st.reqBytes, ResponseBytes: st.sent, Latency: end.Sub(st.start),
		Upstream: st.upLatency, Upstreamed: st.upLatency > 0}
	if svc := st.match.Service; svc != nil {
		rec.Service = svc.ID
	}
	if pc := st.pc; pc != nil && pc.Consumer != nil {
		rec.Consumer = pc.Consumer.ID
	}
	p.analytics.Record(&rec)
}

func isIdempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// hostOf returns the host part of a "host:port" remote address without
// allocating.
func hostOf(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if i := strings.IndexByte(addr, ']'); i > 0 {
			return addr[1:i]
		}
	}
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[:i]
	}
	return addr
}
