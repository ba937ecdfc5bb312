package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Options configures a Proxy.
type Options struct {
	// Config is the initial configuration; it may be nil until the first
	// Store (requests then get 404 "no Route matched", as a runtime with no
	// configuration would, though readiness should keep traffic away).
	Config *Config
	// Transport is the upstream connection pool. Required: it is shared by
	// configuration generations and closed by its owner.
	Transport *Transport
	// HTTPPort and HTTPSPort are the listener ports reported as
	// X-Forwarded-Port for plain and TLS clients (e.g. "8000", "8443").
	HTTPPort, HTTPSPort string
	// Logger receives upstream failures at debug level. Default: discard.
	Logger *slog.Logger
	// Server tunes Serve, the plain-HTTP/1.1 server loop; zero values take
	// its defaults. Unused when the Proxy runs under net/http's server.
	Server ServerOptions
}

// Proxy is the runtime's HTTP handler: it resolves each request to a service
// through the current Config and proxies it over the Transport. It is safe
// for concurrent use; Store may be called at any time.
type Proxy struct {
	cfg       atomic.Pointer[Config] // the current configuration, swapped whole
	tr        *Transport
	httpPort  string
	httpsPort string
	log       *slog.Logger

	idPrefix [16]byte      // random per process, hex
	idSeq    atomic.Uint64 // request id counter

	srv *Server // the Serve loop; its handler defaults to the Proxy
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
	p := &Proxy{tr: opts.Transport, httpPort: opts.HTTPPort, httpsPort: opts.HTTPSPort, log: opts.Logger}
	so := opts.Server
	if so.Handler == nil {
		so.Handler = p
	}
	if so.Logger == nil {
		so.Logger = opts.Logger
	}
	srv, err := NewServer(so)
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
	match Match
	fi    fwdInfo
	head  respHead
	body  bodyReader
	buf   []byte // error bodies, ids

	// Plugin phases; nil on the zero-plugin path.
	pc    *plugin.Ctx
	chain *plugin.Chain // the chain whose header and log phases run
	// upLatency is the time spent waiting for the upstream, for the log phase.
	upLatency time.Duration
	sent      int64 // response body bytes written, for the log phase

	// attempt is the balancer state across the request's tries.
	attempt Attempt
}

// pickPeer picks the peer address of the request's next try: the service's
// own address, or its balancer's choice.
func (st *reqState) pickPeer(svc *Service, r *http.Request) (string, error) {
	switch b := svc.Balancer.(type) {
	case nil:
		return svc.addr, nil
	case AttemptBalancer:
		return b.PickAttempt(r, &st.attempt)
	default:
		return b.Pick(r, st.attempt.Try)
	}
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
	return &reqState{head: respHead{hdrs: make([]headerKV, 0, 16)}, buf: make([]byte, 0, 512)}
}}

// newRequestID returns a 32-hex-digit id (like nginx's $request_id): a
// per-process random half and a counter half, unique without a syscall.
func (p *Proxy) newRequestID(st *reqState) string {
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
func (p *Proxy) acquireCtx(r *http.Request, st *reqState, reqID string, start time.Time) *plugin.Ctx {
	pc := plugin.AcquireCtx(r)
	pc.Log.StartedAt = start
	pc.SetRequestID(reqID)
	if ip, err := netip.ParseAddr(hostOf(r.RemoteAddr)); err == nil {
		pc.ClientIP = ip.Unmap()
	}
	st.pc = pc
	return pc
}

// ServeHTTP proxies one request. With plugins the phases run in Kong's
// order: rewrite (Config.Global, before routing), access (Match.Plugins,
// after routing; a short-circuit skips the upstream), header filter on the
// response before it is written, body filter when a collected plugin wants
// the body (the response is then buffered), and log once the response has
// been flushed to the client.
//
// With plugins, response header values may live in memory owned by the
// request's plugin context, which is reused once ServeHTTP returns: a
// ResponseWriter must have serialised the header by the time it is flushed
// (net/http's and Serve's do; the proxy flushes before the log phase).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cfg := p.cfg.Load()
	st := statePool.Get().(*reqState)
	defer p.release(st)

	names := &gantryNames
	if cfg != nil {
		names = cfg.names()
	}
	reqID := p.newRequestID(st)
	if cfg == nil {
		p.writeError(w, r, st, names, start, http.StatusNotFound, MsgNoRoute, reqID)
		return
	}
	if cfg.Global != nil {
		pc := p.acquireCtx(r, st, reqID, start)
		cfg.Global.Rewrite(pc)
		if pc.Exited() {
			st.chain = cfg.Global.NoRoute()
			p.writeExit(w, r, st, names, start)
			return
		}
	}
	cfg.Resolver.Resolve(r, &st.match)
	if st.match.Reject != nil {
		st.match.Reject.ServeHTTP(w, r)
		return
	}
	svc := st.match.Service
	if svc == nil {
		// As in Kong, the router fails before the access phase collects
		// any plugin, so no header or log phase runs for a 404.
		p.writeError(w, r, st, names, start, http.StatusNotFound, MsgNoRoute, reqID)
		return
	}
	if chain := st.match.Plugins; chain != nil {
		pc := st.pc
		if pc == nil {
			pc = p.acquireCtx(r, st, reqID, start)
		}
		path, query, host := r.URL.Path, r.URL.RawQuery, r.Host
		st.chain = chain
		pc.URICaptures = st.match.URICaptures
		chain.Access(pc)
		if pc.Exited() {
			p.writeExit(w, r, st, names, start)
			return
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
		p.writeError(w, r, st, names, start, http.StatusInternalServerError, MsgUnexpected, reqID)
		return
	}

	fi := &st.fi
	*fi = fwdInfo{reqIDName: names.reqID, reqID: reqID, via: !cfg.DisableVia, scheme: "http", port: p.httpPort}
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
	if svc.grpc() {
		p.serveGRPC(w, r, st, svc, names, start)
		return
	}
	fi.upgrade = r.ProtoMajor == 1 && hasTokenAny(r.Header["Connection"], "upgrade") &&
		len(r.Header["Upgrade"]) > 0 && hasToken(r.Header["Upgrade"][0], "websocket")

	chunked := r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
	hasBody := chunked || r.ContentLength > 0
	replayable := !hasBody && isIdempotent(r.Method)

	var (
		c       *upConn
		upStart time.Time
		err     error
		addr    string
		pick    = true // pick a peer: the first try, or a retry after a failure
		fresh   bool   // dial, bypassing the pool, after a stale connection failed
	)
	for {
		if pick {
			if addr, err = st.pickPeer(svc, r); err != nil {
				p.upstreamError(w, r, st, names, start, err, reqID)
				return
			}
			pick = false
		}
		pool := p.tr.poolFor(addr, svc)
		upStart = time.Now()
		if fresh || fi.upgrade {
			// Upgraded connections are never pooled, so never taken from it.
			c, err = pool.dial(r.Context(), svc.ConnectTimeout)
		} else {
			c, err = pool.get(r.Context(), svc.ConnectTimeout)
		}
		if err != nil {
			st.reportPeer(svc, addr, 0, err)
			if st.attempt.Try < svc.Retries && r.Context().Err() == nil {
				// Kong retries connection failures only, each on a new
				// pick, which the balancer steers away from tried peers.
				st.attempt.Try++
				pick, fresh = true, false
				continue
			}
			p.upstreamError(w, r, st, names, start, err, reqID)
			return
		}
		if c.reused && !replayable && c.stale() {
			// Bodies cannot be replayed, so check before sending one. The
			// same peer is tried again on a new connection.
			c.close()
			fresh = true
			continue
		}
		var got bool
		got, err = p.roundTrip(c, r, st, svc, chunked)
		if err == nil {
			break
		}
		c.close()
		var cbe *clientBodyError
		if errors.As(err, &cbe) {
			st.reportPeer(svc, addr, 0, nil) // the client's fault, not the peer's
			p.log.Debug("client body", "err", err)
			p.writeError(w, r, st, names, start, http.StatusBadRequest, "Bad request", reqID)
			return
		}
		if c.reused && !got && replayable && !isTimeout(err) {
			// The pooled connection was closed by the upstream while idle:
			// the request never reached it, so send it again on a new one
			// to the same peer.
			fresh = true
			continue
		}
		st.reportPeer(svc, addr, 0, err)
		if replayable && st.attempt.Try < svc.Retries && r.Context().Err() == nil {
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
		p.upstreamError(w, r, st, names, start, err, reqID)
		return
	}
	headAt := time.Now()
	st.upLatency = headAt.Sub(upStart)
	// Passive health counts the status the upstream answered, before any
	// plugin changes it.
	st.reportPeer(svc, addr, st.head.status, nil)

	h := &st.head
	if fi.upgrade && h.status == http.StatusSwitchingProtocols {
		p.tunnel(w, r, c, st, cfg, svc, names, start, upStart, headAt)
		return
	}
	if h.status == http.StatusSwitchingProtocols {
		// A 101 we did not ask for cannot be relayed.
		c.close()
		p.upstreamError(w, r, st, names, start, errMalformed, reqID)
		return
	}

	p.writeResponseHead(w, st, cfg, names, start, upStart, headAt)
	status := h.status
	if st.chain != nil {
		status = p.headerFilter(w, st, status)
	}
	bodyless := h.bodyless(r.Method)
	if bodyless {
		w.WriteHeader(status)
		p.finish(c, h.keepAlive && !fi.upgrade)
		p.logPhase(w, r, st, status)
		return
	}
	if st.chain != nil && st.chain.WantsBody(st.pc) {
		p.bufferedBody(w, r, c, st, svc, names, start, status)
		return
	}
	w.WriteHeader(status)
	st.body.init(c, h, svc.ReadTimeout)
	ok := p.copyBody(w, st, &st.body, h.length < 0)
	p.finish(c, ok && st.body.done && h.keepAlive && !fi.upgrade)
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
func (p *Proxy) bufferedBody(w http.ResponseWriter, r *http.Request, c *upConn, st *reqState, svc *Service, names *headerNames, start time.Time, status int) {
	h := &st.head
	st.body.init(c, h, svc.ReadTimeout)
	bp := copyBufPool.Get().(*[]byte)
	var body []byte
	if h.length > 0 && h.length <= maxBufferedBody {
		body = make([]byte, 0, h.length)
	}
	var err error
	for {
		var chunk []byte
		chunk, err = st.body.next(*bp)
		body = append(body, chunk...)
		if err != nil || len(body) > maxBufferedBody {
			break
		}
	}
	copyBufPool.Put(bp)
	if err != io.EOF {
		c.close()
		if err == nil {
			err = errors.New("proxy: response body too large to buffer for body filters")
		}
		// Nothing was written yet: the upstream's head is replaced by an
		// error response.
		clear(w.Header())
		p.upstreamError(w, r, st, names, start, err, st.fi.reqID)
		return
	}
	p.finish(c, st.body.done && h.keepAlive)
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
func (p *Proxy) writeExit(w http.ResponseWriter, r *http.Request, st *reqState, names *headerNames, start time.Time) {
	pc := st.pc
	st.chain.HeaderFilter(pc)
	if st.chain.WantsBody(pc) {
		st.chain.BodyFilter(pc)
	}
	wh := w.Header()
	for k, v := range pc.Response.Header {
		wh[k] = v
	}
	if _, ok := wh[names.reqID]; !ok {
		wh[names.reqID] = []string{pc.RequestID()}
	}
	wh[names.respLatency] = []string{itoa(time.Since(start).Milliseconds())}
	p.writeFull(w, r, st, pc.Response.Status, pc.Response.Body)
}

// logPhase flushes the response to the client, then runs the log phase of
// the collected plugins, so logging never delays the client.
func (p *Proxy) logPhase(w http.ResponseWriter, r *http.Request, st *reqState, status int) {
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

func (p *Proxy) release(st *reqState) {
	if st.pc != nil {
		plugin.ReleaseCtx(st.pc)
	}
	st.pc, st.chain, st.upLatency, st.sent = nil, nil, 0, 0
	st.attempt = Attempt{}
	st.match = Match{}
	st.fi = fwdInfo{}
	st.body = bodyReader{}
	h := &st.head
	clear(h.hdrs)
	h.hdrs = h.hdrs[:0]
	h.via, h.connToks = "", ""
	st.buf = st.buf[:0]
	statePool.Put(st)
}

// finish returns c to its pool when reusable, else closes it.
func (p *Proxy) finish(c *upConn, reusable bool) {
	if reusable {
		c.reused = false
		c.pool.put(c)
	} else {
		c.close()
	}
}

// roundTrip writes the request on c and reads the response head into
// st.head. got reports whether any response byte arrived.
func (p *Proxy) roundTrip(c *upConn, r *http.Request, st *reqState, svc *Service, chunked bool) (got bool, err error) {
	c.nc.SetWriteDeadline(time.Now().Add(svc.WriteTimeout))
	writeRequestHead(c.bw, r, &st.match, &st.fi, chunked)
	if err := writeRequestBody(c, r, chunked, svc.WriteTimeout); err != nil {
		c.bw.Reset(c.nc)
		return false, err
	}
	if err := c.bw.Flush(); err != nil {
		c.bw.Reset(c.nc)
		return false, &upstreamWriteError{err}
	}
	return readResponseHead(c, &st.head, svc.ReadTimeout)
}

// writeResponseHead copies the upstream's end-to-end headers into w and
// adds Via, the request id and the latency headers.
func (p *Proxy) writeResponseHead(w http.ResponseWriter, st *reqState, cfg *Config, names *headerNames, start, upStart, headAt time.Time) {
	h := &st.head
	wh := w.Header()
	// One backing array for every value slice: one allocation instead of
	// one per header. Slices are capped so an Add reallocates instead of
	// writing into a neighbour.
	n := len(h.hdrs) + 4
	vals := make([]string, n)
	i := 0
	for _, kv := range h.hdrs {
		if old, ok := wh[kv.name]; ok {
			wh[kv.name] = append(old, kv.value)
			continue
		}
		vals[i] = kv.value
		wh[kv.name] = vals[i : i+1 : i+1]
		i++
	}
	set := func(k, v string) {
		vals[i] = v
		wh[k] = vals[i : i+1 : i+1]
		i++
	}
	if st.fi.reqID != "" {
		set(names.reqID, st.fi.reqID)
	}
	if !cfg.DisableLatencyHeaders {
		set(names.upLatency, itoa(headAt.Sub(upStart).Milliseconds()))
		set(names.proxyLatency, itoa(upStart.Sub(start).Milliseconds()))
	}
	if !cfg.DisableVia {
		if h.via != "" {
			set("Via", h.via+", "+viaValue)
		} else {
			set("Via", viaValue)
		}
	} else if h.via != "" {
		set("Via", h.via)
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
func (p *Proxy) copyBody(w http.ResponseWriter, st *reqState, b *bodyReader, flushEach bool) bool {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	for {
		chunk, err := b.next(*bp)
		if len(chunk) > 0 {
			n, werr := w.Write(chunk)
			st.sent += int64(n)
			if werr != nil {
				return false
			}
			if flushEach && b.c.br.Buffered() == 0 {
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
		}
		if err == io.EOF {
			return true
		}
		if err != nil {
			p.log.Debug("upstream body", "err", err)
			return false
		}
	}
}

// upstreamError answers a failure before any response byte was sent, with
// Kong's status and message for its cause.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, st *reqState, names *headerNames, start time.Time, err error, reqID string) {
	p.log.Debug("upstream failure", "err", err)
	status, msg := classify(err)
	p.writeError(w, r, st, names, start, status, msg, reqID)
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
func (p *Proxy) writeError(w http.ResponseWriter, r *http.Request, st *reqState, names *headerNames, start time.Time, status int, msg, reqID string) {
	f := negotiateErrFormat(r.Header)
	st.buf = appendErrBody(st.buf[:0], f, msg, reqID)
	wh := w.Header()
	wh["Content-Type"] = []string{errContentType[f]}
	wh["Content-Length"] = []string{itoa(int64(len(st.buf)))}
	wh["Server"] = []string{"gantry"}
	wh[names.reqID] = []string{reqID}
	wh[names.respLatency] = []string{itoa(time.Since(start).Milliseconds())}
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
	if r.Method != http.MethodHead {
		w.Write(st.buf)
	}
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
