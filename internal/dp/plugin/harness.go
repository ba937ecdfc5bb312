package plugin

import (
	"bytes"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// HandlerOptions configure [NewHandler].
type HandlerOptions struct {
	// Set is required.
	Set *Set
	// RouteID is the route every request is treated as having matched;
	// empty means no route matched.
	RouteID string
	// Upstream is required; it plays the proxied service.
	Upstream http.Handler
	// URICaptures, when set, gives each request its route's regex captures.
	URICaptures func(r *http.Request) URICaptures
}

// NewHandler returns a handler that runs the full plugin lifecycle in front
// of an upstream handler, buffering the upstream response. It is the
// reference driver of the phase entry points, used by plugin tests; the
// proxy drives the same entry points while streaming.
func NewHandler(opts HandlerOptions) (http.Handler, error) {
	if opts.Set == nil || opts.Upstream == nil {
		return nil, errors.New("plugin handler: Set and Upstream are required")
	}
	return &handler{opts: opts}, nil
}

type handler struct{ opts HandlerOptions }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := AcquireCtx(r)
	defer ReleaseCtx(c)
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.ClientIP = ap.Addr().Unmap()
	}
	if h.opts.URICaptures != nil {
		c.URICaptures = h.opts.URICaptures(r)
	}
	set := h.opts.Set
	set.Rewrite(c)
	chain := set.NoRoute()
	if !c.Exited() {
		chain = set.Route(h.opts.RouteID)
		chain.Access(c)
	}
	if !c.Exited() {
		rec := &recorder{header: make(http.Header)}
		start := time.Now()
		h.opts.Upstream.ServeHTTP(rec, c.Request)
		c.Log.UpstreamLatency = time.Since(start)
		c.Log.UpstreamURI = c.Request.URL.RequestURI()
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		c.Response.Status = rec.status
		c.Response.Header = rec.header
		c.Response.Body = rec.body.Bytes()
	}
	chain.HeaderFilter(c)
	if chain.WantsBody(c) {
		chain.BodyFilter(c)
	}
	body := c.Response.Body
	if r.Method != http.MethodHead {
		// Body filters may have changed the length.
		c.Response.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	dst := w.Header()
	for k, v := range c.Response.Header {
		dst[k] = v
	}
	w.WriteHeader(c.Response.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	c.Log.Status = c.Response.Status
	c.Log.ResponseSize = int64(len(body))
	if r.ContentLength > 0 {
		c.Log.RequestSize = r.ContentLength
	}
	c.Log.RequestLatency = time.Since(c.Log.StartedAt)
	c.Log.GatewayLatency = c.Log.RequestLatency - c.Log.UpstreamLatency
	chain.Log(c)
}

// recorder buffers an upstream response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}
