package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Response is the response a request will get: the upstream's, or the one a
// plugin produced with [Ctx.Exit]. Plugins may change Status and Header in
// the header phase and Body in the body phase.
type Response struct {
	// Status is the HTTP status code; 0 until a response exists.
	Status int
	// Header is the response header. During the header phase it is the
	// header that will be written, so changes are visible downstream.
	Header http.Header
	// Body is the buffered body. It is only set in the body phase (when
	// [Chain.WantsBody] said so) and for responses produced by Exit.
	Body []byte
	// Exit reports the response was produced by a plugin, not the upstream.
	Exit bool
}

// LogInfo summarises a finished request for the log phase. Sizes are in
// bytes; latencies are wall-clock durations.
type LogInfo struct {
	// StartedAt is when the request was received.
	StartedAt time.Time
	// Status is the status code sent downstream.
	Status int
	// RequestSize and ResponseSize are the bytes read from and written to
	// the client, headers included when the caller can tell.
	RequestSize  int64
	ResponseSize int64
	// RequestLatency is from receiving the request to the last byte sent.
	RequestLatency time.Duration
	// UpstreamLatency is the time spent waiting for the upstream; zero when
	// the request never reached it.
	UpstreamLatency time.Duration
	// GatewayLatency is RequestLatency spent outside the upstream.
	GatewayLatency time.Duration
	// UpstreamURI is the URI sent upstream; empty when not proxied.
	UpstreamURI string
}

// URICaptures gives access to the groups of a regex path match; the
// router's Captures implements it. Group 0 is the whole match.
type URICaptures interface {
	// Group returns group i and whether it took part in the match.
	Group(i int) (string, bool)
	// Named returns the group called name and whether it took part.
	Named(name string) (string, bool)
}

type headerKV struct{ key, value string }

// Ctx is the state of one request as it travels through a chain. It is
// pooled: get one with [AcquireCtx], return it with [ReleaseCtx], and keep
// no reference to it, nor to strings it produced, after release. A Ctx is
// used by one goroutine at a time.
type Ctx struct {
	// Request is the downstream request; its header, URL and body are what
	// will be sent upstream, so plugins edit them in place.
	Request *http.Request
	// RouteID and ServiceID identify the matched route and its service;
	// empty when none matched.
	RouteID   string
	ServiceID string
	// RouteName and ServiceName name them as Kong's metrics do (route
	// name or id, service name or host); see [RouteRef]. Set with the ids.
	RouteName   string
	ServiceName string
	// URICaptures are the regex groups of the matched route's path (Kong's
	// uri_captures); nil when the route matched no regex path or the caller
	// does not provide them.
	URICaptures URICaptures
	// Consumer and Credential are set by [Ctx.Authenticate].
	Consumer   *Consumer
	Credential *Credential
	// ConsumerGroups are the consumer's groups, sorted by name.
	ConsumerGroups []*ConsumerGroup
	// AuthenticatedGroups are groups an auth plugin asserted without a
	// consumer (Kong's ctx.authenticated_groups).
	AuthenticatedGroups []string
	// ClientIP is the client address after trusted-proxy handling.
	ClientIP netip.Addr
	// Response is the response being built; see [Response].
	Response Response
	// Log is filled by the caller before the log phase.
	Log LogInfo
	// RenderError, when set by the caller, renders [Ctx.Error] bodies, so
	// plugin errors follow the same Accept negotiation as the proxy's own
	// (Kong's json/html/xml/plain templates). Nil renders JSON.
	RenderError ErrorRenderer

	requestID string
	exited    bool
	credBuf   Credential
	shared    map[string]any
	// pending holds response headers set before a response existed.
	pending []headerKV
	// arena backs strings made by Itoa; valid until release.
	arena []byte
	// strs backs single-value header slices so setting headers does not
	// allocate.
	strs []string
	// picked[i] is the instance resolved for slot i of chain, nil when the
	// slot has none for this request or was not reached yet.
	picked  []*instance
	chain   *Chain
	exitHdr http.Header
	store   Store
}

var ctxPool = sync.Pool{New: func() any {
	return &Ctx{
		arena:   make([]byte, 0, 256),
		strs:    make([]string, 0, 16),
		pending: make([]headerKV, 0, 16),
		exitHdr: make(http.Header, 8),
	}
}}

// AcquireCtx returns a reset Ctx for r with Log.StartedAt set to now.
func AcquireCtx(r *http.Request) *Ctx {
	c := ctxPool.Get().(*Ctx)
	c.Request = r
	c.Log.StartedAt = time.Now()
	return c
}

// ReleaseCtx resets c and returns it to the pool.
func ReleaseCtx(c *Ctx) {
	clear(c.strs[:cap(c.strs)])
	for i := range c.pending {
		c.pending[i] = headerKV{}
	}
	clear(c.picked[:cap(c.picked)])
	clear(c.exitHdr)
	*c = Ctx{
		arena:   c.arena[:0],
		strs:    c.strs[:0],
		pending: c.pending[:0],
		picked:  c.picked[:0],
		exitHdr: c.exitHdr,
		shared:  c.shared,
	}
	clear(c.shared)
	ctxPool.Put(c)
}

var (
	ridPrefix  [8]byte
	ridCounter atomic.Uint64
)

func init() {
	_, _ = rand.Read(ridPrefix[:])
}

// RequestID returns the request's id (32 hex digits, as Kong's), generating
// one on first use unless [Ctx.SetRequestID] set it.
func (c *Ctx) RequestID() string {
	if c.requestID == "" {
		var raw [16]byte
		copy(raw[:8], ridPrefix[:])
		n := ridCounter.Add(1)
		for i := 0; i < 8; i++ {
			raw[15-i] = byte(n >> (8 * i))
		}
		c.requestID = hex.EncodeToString(raw[:])
	}
	return c.requestID
}

// SetRequestID sets the id [Ctx.RequestID] returns.
func (c *Ctx) SetRequestID(id string) { c.requestID = id }

// Shared returns a value stored by a plugin for later plugins of the same
// request (Kong's kong.ctx.shared).
func (c *Ctx) Shared(key string) any { return c.shared[key] }

// SetShared stores a value for later plugins of the same request.
func (c *Ctx) SetShared(key string, v any) {
	if c.shared == nil {
		c.shared = make(map[string]any)
	}
	c.shared[key] = v
}

// Authenticate records the consumer and credential that authenticated the
// request (either may be nil: anonymous consumers have no credential) and
// loads the consumer's groups. cred is copied.
func (c *Ctx) Authenticate(consumer *Consumer, cred *Credential) {
	c.Consumer = consumer
	if cred != nil {
		c.credBuf = *cred
		c.Credential = &c.credBuf
	} else {
		c.Credential = nil
	}
	c.ConsumerGroups = nil
	if consumer != nil && c.store != nil {
		c.ConsumerGroups = c.store.ConsumerGroupsOf(consumer.ID)
	}
}

// Exited reports whether a plugin short-circuited the request.
func (c *Ctx) Exited() bool { return c.exited }

// Exit short-circuits the request with status, header and body (Kong's
// kong.response.exit). Remaining access handlers are skipped; plugins
// collected so far and later still run their header and log phases. header
// may be nil; it is copied.
func (c *Ctx) Exit(status int, header http.Header, body []byte) {
	c.exited = true
	clear(c.exitHdr)
	for k, v := range header {
		// Copied: plugins keep prebuilt headers, and later phases may
		// append to these slices.
		c.exitHdr[k] = append([]string(nil), v...)
	}
	c.Response = Response{Status: status, Header: c.exitHdr, Body: body, Exit: true}
}

// ContentTypeJSON is the Content-Type of JSON bodies Kong produces.
const ContentTypeJSON = "application/json; charset=utf-8"

// ExitJSON exits with {"message": message} (kong.response.exit with a
// message table). header may be nil.
func (c *Ctx) ExitJSON(status int, message string, header http.Header) {
	body := make([]byte, 0, len(message)+16)
	body = append(body, `{"message":`...)
	body = strconv.AppendQuote(body, message)
	body = append(body, '}')
	c.ExitBody(status, ContentTypeJSON, body, header)
}

// ExitBody exits with a body of the given content type.
func (c *Ctx) ExitBody(status int, contentType string, body []byte, header http.Header) {
	c.Exit(status, header, body)
	if contentType != "" {
		c.exitHdr["Content-Type"] = []string{contentType}
	}
}

// ErrorRenderer renders an error body for the request r, returning its
// Content-Type and the body appended to dst.
type ErrorRenderer func(dst []byte, r *http.Request, message, requestID string) (contentType string, body []byte)

// Error exits the way kong.response.error does: by default a JSON body with
// the message and the request id (see [Ctx.RenderError]). An empty message
// means the status text.
func (c *Ctx) Error(status int, message string, header http.Header) {
	if message == "" {
		message = http.StatusText(status)
	}
	if c.RenderError != nil {
		ct, body := c.RenderError(make([]byte, 0, len(message)+96), c.Request, message, c.RequestID())
		c.ExitBody(status, ct, body, header)
		return
	}
	body := make([]byte, 0, len(message)+80)
	body = append(body, "{\n  \"message\":"...)
	body = appendJSONString(body, message)
	body = append(body, ",\n  \"request_id\":\""...)
	body = append(body, c.RequestID()...)
	body = append(body, "\"\n}"...)
	c.ExitBody(status, ContentTypeJSON, body, header)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	// strconv.AppendQuote escapes differently from JSON for non-ASCII
	// controls; for the ASCII messages plugins produce the two agree, and
	// anything else goes through the JSON rules below.
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch == '\n':
			b = append(b, '\\', 'n')
		case ch == '\r':
			b = append(b, '\\', 'r')
		case ch == '\t':
			b = append(b, '\\', 't')
		case ch < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[ch>>4], "0123456789abcdef"[ch&0xf])
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

// SetUpstreamHeader sets a request header sent upstream. It does not
// allocate when key is in canonical form.
func (c *Ctx) SetUpstreamHeader(key, value string) {
	key = textproto.CanonicalMIMEHeaderKey(key)
	h := c.Request.Header
	if h == nil {
		h = make(http.Header)
		c.Request.Header = h
	}
	h[key] = c.oneString(value)
}

// ClearUpstreamHeader removes a request header sent upstream.
func (c *Ctx) ClearUpstreamHeader(key string) {
	delete(c.Request.Header, textproto.CanonicalMIMEHeaderKey(key))
}

func (c *Ctx) oneString(v string) []string {
	n := len(c.strs)
	c.strs = append(c.strs, v)
	return c.strs[n : n+1 : n+1]
}

// SetResponseHeader sets a downstream response header. Before a response
// exists (access phase) the header is remembered and applied, overriding the
// upstream's, when the header phase starts (as kong.response.set_header in
// access does).
func (c *Ctx) SetResponseHeader(key, value string) {
	key = textproto.CanonicalMIMEHeaderKey(key)
	if c.Response.Header != nil {
		c.Response.Header[key] = c.oneString(value)
		return
	}
	c.pending = append(c.pending, headerKV{key, value})
}

// Itoa formats n into memory owned by c; the string is valid until
// [ReleaseCtx] and must be cloned to be kept longer.
func (c *Ctx) Itoa(n int64) string {
	start := c.reserve(20)
	c.arena = strconv.AppendInt(c.arena, n, 10)
	return c.arenaString(start)
}

// ClientIPString formats ClientIP into memory owned by c; the string is
// valid until [ReleaseCtx] and must be cloned to be kept longer.
func (c *Ctx) ClientIPString() string {
	start := c.reserve(48)
	c.arena = c.ClientIP.AppendTo(c.arena)
	return c.arenaString(start)
}

// reserve makes room for n bytes and returns where they start.
func (c *Ctx) reserve(n int) int {
	if cap(c.arena)-len(c.arena) < n {
		// A new backing array; strings made earlier keep the old one alive.
		c.arena = make([]byte, 0, 2*cap(c.arena)+n)
	}
	return len(c.arena)
}

func (c *Ctx) arenaString(start int) string {
	b := c.arena[start:]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b)) //nolint:gosec // arena bytes are only appended to, never rewritten, until release
}

// applyPending moves headers set during access onto the response.
func (c *Ctx) applyPending() {
	if c.Response.Header == nil {
		c.Response.Header = make(http.Header)
	}
	for _, kv := range c.pending {
		c.Response.Header[kv.key] = c.oneString(kv.value)
	}
	c.pending = c.pending[:0]
}
