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
	vals  []string
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

// ServeHTTP proxies one request.
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
	cfg.Resolver.Resolve(r, &st.match)
	svc := st.match.Service
	if svc == nil {
		p.writeError(w, r, st, names, start, http.StatusNotFound, MsgNoRoute, reqID)
		return
	}
	if svc.Protocol != "http" || !svc.prepared {
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
		fresh   bool // dial, bypassing the pool, after a stale connection failed
	)
	retries := 0
	for {
		addr = svc.addr
		if svc.Balancer != nil {
			if addr, err = svc.Balancer.Pick(r, retries); err != nil {
				p.upstreamError(w, r, st, names, start, err, reqID)
				return
			}
		}
		pool := p.tr.pool(addr)
		upStart = time.Now()
		if fresh || fi.upgrade {
			// Upgraded connections are never pooled, so never taken from it.
			c, err = pool.dial(r.Context(), svc.ConnectTimeout)
		} else {
			c, err = pool.get(r.Context(), svc.ConnectTimeout)
		}
		if err != nil {
			if svc.Balancer != nil {
				svc.Balancer.Report(addr, err)
			}
			if retries < svc.Retries && r.Context().Err() == nil {
				retries++
				continue
			}
			p.upstreamError(w, r, st, names, start, err, reqID)
			return
		}
		if c.reused && !replayable && c.stale() {
			// Bodies cannot be replayed, so check before sending one.
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
			p.log.Debug("client body", "err", err)
			p.writeError(w, r, st, names, start, http.StatusBadRequest, "Bad request", reqID)
			return
		}
		if c.reused && !got && replayable && !isTimeout(err) {
			// The pooled connection was closed by the upstream while idle:
			// the request never reached it, so send it again on a new one.
			fresh = true
			continue
		}
		if svc.Balancer != nil {
			svc.Balancer.Report(addr, err)
		}
		p.upstreamError(w, r, st, names, start, err, reqID)
		return
	}
	headAt := time.Now()
	if svc.Balancer != nil {
		svc.Balancer.Report(addr, nil)
	}

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
	bodyless := h.bodyless(r.Method)
	if bodyless {
		w.WriteHeader(h.status)
		p.finish(c, h.keepAlive && !fi.upgrade)
		return
	}
	w.WriteHeader(h.status)
	st.body.init(c, h, svc.ReadTimeout)
	ok := p.copyBody(w, &st.body, h.length < 0)
	p.finish(c, ok && st.body.done && h.keepAlive && !fi.upgrade)
	if !ok {
		// The client already has a status line and part of the body; the
		// only honest signal left is to abort the response.
		panic(http.ErrAbortHandler)
	}
}

func (p *Proxy) release(st *reqState) {
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
}

// copyBody streams the upstream body to the client. When flushEach is set
// (chunked or until-close bodies: streaming responses such as SSE) the client
// is flushed whenever no more upstream bytes are buffered, so data is not
// held back waiting for a full buffer. It reports false if either side
// failed.
func (p *Proxy) copyBody(w http.ResponseWriter, b *bodyReader, flushEach bool) bool {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	for {
		chunk, err := b.next(*bp)
		if len(chunk) > 0 {
			if _, werr := w.Write(chunk); werr != nil {
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
func (p *Proxy) writeError(w http.ResponseWriter, r *http.Request, st *reqState, names *headerNames, start time.Time, status int, msg, reqID string) {
	f := negotiateErrFormat(r.Header)
	st.buf = appendErrBody(st.buf[:0], f, msg, reqID)
	wh := w.Header()
	wh["Content-Type"] = []string{errContentType[f]}
	wh["Content-Length"] = []string{itoa(int64(len(st.buf)))}
	wh["Server"] = []string{"gantry"}
	wh[names.reqID] = []string{reqID}
	wh[names.respLatency] = []string{itoa(time.Since(start).Milliseconds())}
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
