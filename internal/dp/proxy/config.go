// Package proxy is the runtime's HTTP proxy engine: the request handler that
// turns a client request into an upstream request the way Kong does
// (hop-by-hop removal, X-Forwarded-*, Via, Host, request id, latency headers,
// Kong-shaped error bodies), over the lean HTTP/1.1 upstream client of
// internal/dp/h1client and its per-target keep-alive pools.
//
// The upstream side deliberately does not use net/http's Transport (see
// h1client): the handler goroutine writes the request head into the
// connection's pooled buffer and reads the response head itself, so a
// proxied request costs one goroutine and no allocation beyond what the
// server and the response header map need.
//
// The client side has the same reason for [Proxy.Serve], an HTTP/1.1
// server loop for the plain listener that replaces net/http's server there
// (about 24 µs of CPU per proxied request on the bench machine instead of
// 35). The Proxy is also an ordinary http.Handler, which the TLS listener
// serves through net/http for HTTP/2.
//
// The router, balancers, health checks and plugins plug in through the small
// interfaces in this file (Resolver, Balancer, and AttemptBalancer for
// per-request retry state, response statuses for passive health checks and
// minted hash cookies) and the plugin chains carried by Match.Plugins and
// Config.Global, so they can be built independently and wired later.
package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/balancer"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Service is an upstream service as the proxy needs it: Kong's service entity
// reduced to what the hot path reads. A Service is immutable once passed to
// the proxy inside a Config; build a new one to change it.
type Service struct {
	// ID is the service's UUID (informational; used in logs and errors).
	ID string
	// Name is the service name (informational).
	Name string
	// Protocol is "http", "https" (HTTP/1.1 over TLS), "grpc" (HTTP/2
	// without TLS, h2c with prior knowledge) or "grpcs" (HTTP/2 over TLS).
	// gRPC responses carry trailers, which only an HTTP/2 client listener
	// (net/http's TLS server) can relay.
	Protocol string
	// Host is the upstream host name or IP, without port. Used as the
	// default dial target and as the upstream Host header.
	Host string
	// Port is the upstream TCP port, 1..65535.
	Port int
	// Retries is how many times a failed attempt is retried on a new pick
	// (Kong's service.retries, default 5), as nginx's proxy_next_upstream
	// "error timeout": a connection failure for any request, and an error
	// or read timeout before a complete response head for idempotent
	// requests without a body. A response, whatever its status, is never
	// retried.
	Retries int
	// ConnectTimeout bounds dialing one connection (Kong: connect_timeout,
	// milliseconds in the entity, a Duration here). Zero means 60s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds each write of the request to the upstream
	// (Kong: write_timeout). Zero means 60s.
	WriteTimeout time.Duration
	// ReadTimeout bounds each read from the upstream, including waiting for
	// the response head (Kong: read_timeout). Zero means 60s.
	ReadTimeout time.Duration
	// Balancer, when set, picks the peer address for each attempt (an
	// upstream entity's ring balancer). When nil the proxy dials Host:Port.
	Balancer Balancer

	// TLS settings, used when Protocol is "https".
	//
	// TLSVerify checks the upstream's certificate chain against
	// CACertificates (the system roots when empty) and its name against
	// TLSServerName (Kong: tls_verify; Kong's null means the global
	// proxy_ssl_verify, which is off, so map null to false).
	TLSVerify bool
	// TLSVerifyDepth, when positive, bounds the verified chain: at most
	// this many certificates above the leaf, as OpenSSL's verify depth
	// (Kong: tls_verify_depth; Kong's null means nginx's default, 1). Zero
	// means no bound. Only checked with TLSVerify.
	TLSVerifyDepth int
	// CACertificates are the trust anchors for TLSVerify (Kong:
	// ca_certificates, resolved to certificates).
	CACertificates []*x509.Certificate
	// ClientCertificate is presented when the upstream asks for one
	// (Kong: client_certificate, resolved to a key pair).
	ClientCertificate *tls.Certificate
	// TLSServerName is the SNI sent and the name verified; empty means
	// Host. It is per service, not per request: with preserve_host the
	// client's Host is still not used as SNI, so that connections can be
	// pooled per service.
	TLSServerName string

	// Precomputed by Prepare; read-only afterwards.
	addr       string // Host:Port, the default dial address.
	hostHeader string // Host, plus ":port" when the port is not the scheme default.
	tlsConfig  *tls.Config
	// poolKey tells apart connection pools to the same address whose TLS
	// settings differ; equal settings share a pool across config swaps.
	poolKey  string
	prepared bool
}

// Prepare validates s and precomputes the strings the hot path needs, so
// that serving a request never formats them. It must be called once before
// the Service is published in a Config (NewConfig does it).
func (s *Service) Prepare() error {
	if s.Host == "" {
		return errors.New("proxy: service host is required")
	}
	if s.Port <= 0 || s.Port > 65535 {
		return errors.New("proxy: service port must be in 1..65535")
	}
	switch s.Protocol {
	case "", "http":
		s.Protocol = "http"
	case "https", "grpc", "grpcs":
	default:
		return errors.New("proxy: service protocol must be http, https, grpc or grpcs, got " + strconv.Quote(s.Protocol))
	}
	if s.Retries < 0 {
		return errors.New("proxy: service retries must be >= 0")
	}
	for _, d := range []*time.Duration{&s.ConnectTimeout, &s.WriteTimeout, &s.ReadTimeout} {
		if *d < 0 {
			return errors.New("proxy: service timeouts must be >= 0")
		}
		if *d == 0 {
			*d = 60 * time.Second
		}
	}
	if s.TLSVerifyDepth < 0 {
		return errors.New("proxy: service tls_verify_depth must be >= 0")
	}
	port := strconv.Itoa(s.Port)
	s.addr = joinHostPort(s.Host, port)
	s.hostHeader = s.Host
	if (s.Protocol == "http" && s.Port != 80) || (s.Protocol == "https" && s.Port != 443) || s.grpc() {
		s.hostHeader = s.addr
	}
	s.tlsConfig, s.poolKey = nil, ""
	switch s.Protocol {
	case "https":
		s.prepareTLS("http/1.1")
	case "grpcs":
		s.prepareTLS("h2")
	case "grpc":
		s.poolKey = "h2c"
	}
	s.prepared = true
	return nil
}

func (s *Service) grpc() bool { return s.Protocol == "grpc" || s.Protocol == "grpcs" }

// poolKeyFor names the connection pool to the peer addr of s: plain
// connections are pooled by address, TLS ones by address and TLS settings.
func (s *Service) poolKeyFor(addr string) string {
	if s.tlsConfig == nil {
		return addr
	}
	return addr + "|" + s.poolKey
}

// prepareTLS builds the client TLS configuration and the pool key that
// identifies it.
func (s *Service) prepareTLS(alpn string) {
	name := s.TLSServerName
	if name == "" {
		name = s.Host
	}
	cfg := &tls.Config{
		ServerName:         name,
		NextProtos:         []string{alpn},
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
		InsecureSkipVerify: !s.TLSVerify, //nolint:gosec // Kong's tls_verify: upstream certificates are checked only when the service asks
	}
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "alpn=%s verify=%v depth=%d sni=%s\n", alpn, s.TLSVerify, s.TLSVerifyDepth, name)
	if s.TLSVerify && len(s.CACertificates) > 0 {
		pool := x509.NewCertPool()
		for _, c := range s.CACertificates {
			pool.AddCert(c)
			h.Write(c.Raw)
		}
		cfg.RootCAs = pool
	}
	if cc := s.ClientCertificate; cc != nil {
		cfg.Certificates = []tls.Certificate{*cc}
		_, _ = io.WriteString(h, "client\n")
		for _, der := range cc.Certificate {
			h.Write(der)
		}
	}
	if depth := s.TLSVerifyDepth; s.TLSVerify && depth > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, chain := range cs.VerifiedChains {
				if len(chain)-1 <= depth {
					return nil
				}
			}
			return fmt.Errorf("proxy: upstream certificate chain longer than tls_verify_depth %d", depth)
		}
	}
	s.tlsConfig = cfg
	s.poolKey = "tls:" + hex.EncodeToString(h.Sum(nil)[:12])
}

func joinHostPort(host, port string) string {
	for i := 0; i < len(host); i++ {
		if host[i] == ':' {
			return "[" + host + "]:" + port
		}
	}
	return host + ":" + port
}

// Match is what a Resolver reports for one request. The proxy owns one Match
// per request (pooled) and hands a zeroed one to Resolve, so resolving
// allocates nothing.
type Match struct {
	// Service is the upstream service; nil means no route matched (404).
	Service *Service
	// RouteID identifies the matched route (informational).
	RouteID string
	// PreserveHost sends the client's Host header upstream instead of the
	// service's (Kong's route.preserve_host).
	PreserveHost bool
	// Path is the upstream request path (already joined with service.path
	// and stripped per strip_path). Empty means the client's path unchanged.
	// It must not contain the query string; the client's query is appended.
	Path string
	// Prefix is the path prefix removed by strip_path, reported upstream as
	// X-Forwarded-Prefix. Empty or "/" sends no header.
	Prefix string
	// Plugins is the matched route's precomputed plugin chain
	// (plugin.Set.Route(routeID)), so a request never searches for its
	// plugins. Leave it nil when no plugin can apply to the route: a nil
	// chain keeps the request on the zero-plugin fast path (no plugin.Ctx is
	// acquired). The proxy runs access, header filter, body filter and log
	// on it in Kong's order.
	Plugins *plugin.Chain
	// URICaptures are the regex groups of the matched route's path, handed to plugins (Kong's
	// uri_captures). Leave it nil for prefix routes: boxing an empty value would allocate.
	URICaptures plugin.URICaptures
	// Reject, when set, answers the request instead of proxying it: a route matched, but not
	// over this protocol (Kong's 426, HTTPS redirect and gRPC answers). No plugin phase runs, as
	// for a 404: Kong refuses the protocol before the access phase collects plugins.
	Reject http.Handler
	// Methods are the matched route's methods (nil when it matches any). TRACE is answered 405
	// unless they list it, as nginx refuses TRACE, before any plugin phase.
	Methods []string
}

// Resolver finds the service for a request. Implementations must be safe for
// concurrent use and must not retain r or m after returning. The router's
// compiled index implements it; StaticResolver serves a single service.
type Resolver interface {
	Resolve(r *http.Request, m *Match)
}

// StaticResolver routes every request to one service, path unchanged.
type StaticResolver struct {
	// Service receives every request.
	Service *Service
}

// Resolve implements Resolver.
func (s StaticResolver) Resolve(_ *http.Request, m *Match) { m.Service = s.Service }

// Balancer picks the peer for one attempt of a request. Implementations must
// be safe for concurrent use. attempt counts from 0; a balancer should pick a
// different peer on later attempts when it can. Errors should wrap
// ErrNoPeer (503 "failure to get a peer from the ring-balancer") or
// ErrNameResolution (503 "name resolution failed"). A Balancer that needs
// state across the tries of one request, or the response status, also
// implements AttemptBalancer.
type Balancer interface {
	Pick(r *http.Request, attempt int) (addr string, err error)
	// Report tells the balancer how an attempt against addr went: err is nil
	// on success, a connection error or timeout otherwise (passive health).
	Report(addr string, err error)
}

// Attempt is one request's state across its tries: the proxy owns one per
// request (pooled, zeroed before the first try) and hands the same Attempt
// to every PickAttempt and ReportAttempt of that request, so a balancer can
// remember what it already tried without allocating.
type Attempt struct {
	// Try counts the tries made before the current one, from 0. The proxy
	// sets it; balancers read it.
	Try int
	// Select is the balancer's selection state (targets already tried, the
	// request's hash), kept across tries.
	Select balancer.Attempt
	// Peer is what the balancer picked for the current try, for its own
	// use in ReportAttempt (e.g. a *balancer.Target). The proxy does not
	// read it.
	Peer any
	// SetCookie, when a balancer sets it, is a Set-Cookie header value the
	// proxy adds to the upstream's response: the cookie a consistent-hashing
	// balancer minted for a client that had none (Kong's hash_on cookie).
	SetCookie string
}

// AttemptBalancer is a Balancer that keeps per-request state across
// retries and learns the status of each response, which passive health
// checks need (http_statuses, http_failures). When a Service's Balancer
// implements it, the proxy calls these methods instead of Pick and Report.
type AttemptBalancer interface {
	Balancer
	// PickAttempt picks the peer address for the next try of the request
	// whose state is a. Errors are as Pick's.
	PickAttempt(r *http.Request, a *Attempt) (addr string, err error)
	// ReportAttempt ends the try picked last on a, exactly once per
	// successful PickAttempt. status is the upstream's response status
	// when its head arrived (err nil); err is the connection error or
	// timeout otherwise (status 0). status 0 with a nil err means the try
	// ended for a reason that is not the peer's (the client's body failed,
	// a pooled connection went stale): no health verdict.
	ReportAttempt(a *Attempt, status int, err error)
}

// Errors a Balancer returns (wrapped) to select Kong's 503 bodies.
var (
	ErrNoPeer              = errors.New("failure to get a peer from the ring-balancer")
	ErrNameResolution      = errors.New("name resolution failed")
	ErrUnsupportedProtocol = errors.New("proxy: upstream protocol not supported yet")
)

// Config is one compiled, immutable proxy configuration. The proxy loads it
// through one atomic pointer per request; publish a new Config to change it.
type Config struct {
	// Resolver maps requests to services. Required.
	Resolver Resolver
	// TrustedIPs lists the client networks whose incoming X-Forwarded-Proto,
	// -Host, -Port, -Path and -Prefix are passed on (Kong's trusted_ips).
	// X-Forwarded-For is always appended to, as Kong does.
	TrustedIPs []netip.Prefix
	// KongHeaders names the latency and request-id headers as Kong does
	// (X-Kong-Upstream-Latency, X-Kong-Proxy-Latency, X-Kong-Request-Id)
	// instead of the X-Gantry-* names.
	KongHeaders bool
	// DisableLatencyHeaders leaves the latency headers out of responses
	// (Kong's headers=off for them).
	DisableLatencyHeaders bool
	// DisableVia leaves out the Via header both ways.
	DisableVia bool
	// AllowUnderscoreHeaders passes request header names with an underscore
	// upstream. By default they are dropped, as nginx (and so Kong) does with
	// underscores_in_headers off: X_Consumer_Username would otherwise reach
	// the upstream next to, and be read as, the X-Consumer-Username a plugin
	// sets.
	AllowUnderscoreHeaders bool
	// Global is the compiled plugin set of this configuration generation,
	// used for the phases that run before a route is known: rewrite (global
	// plugins only, before Resolve) and, when a rewrite handler
	// short-circuits, the header filter and log of the no-route chain. Nil
	// when no global plugin has a rewrite phase; per-route chains come from
	// Match.Plugins either way. The proxy does not own it: whoever builds
	// the Config closes it after the Config is replaced.
	Global *plugin.Set
}

// Check validates c.
func (c *Config) Check() error {
	if c == nil || c.Resolver == nil {
		return errors.New("proxy: config needs a Resolver")
	}
	return nil
}

func (c *Config) trusted(ip netip.Addr) bool {
	if !ip.IsValid() || len(c.TrustedIPs) == 0 {
		return false
	}
	// Clients on a dual-stack listener show up as IPv4-mapped IPv6.
	ip = ip.Unmap()
	for _, p := range c.TrustedIPs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
