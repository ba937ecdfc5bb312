// Package gateway is the running data plane: it binds the proxy listeners
// (plain HTTP/1.1 and TLS with HTTP/2), serves requests from the current
// compiled configuration, and swaps in new configurations without dropping
// or failing a request in flight.
//
// The plain listener runs the proxy's own HTTP/1.1 server loop
// (proxy.Server), which costs about a third less CPU per request than
// net/http's; the TLS listener keeps net/http's server for HTTP/2. Both
// hand every request to the Gateway's ServeHTTP, whose own share of a
// request is one atomic reference on the current generation and no
// allocation (TestGatewayLayerAllocs, BenchmarkGatewayServeHTTP against
// BenchmarkGenerationProxy).
//
// Each applied revision becomes a generation: the compile.Compiled value and
// a proxy.Proxy serving from it. Requests take a reference on the current
// generation for their whole life; Apply compiles off the request path,
// publishes the new generation through one atomic pointer, and the old one
// is closed once its last request has finished. Everything that must
// survive a swap (target health, upstream connection pools, plugin state
// such as rate-limit counters) is owned by the Gateway, not the generation.
package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/accesslog"
	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/dp/compile"
	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/dp/h1server"
	"github.com/gantry-gw/gantry/internal/dp/health"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/all" // the bundled plugins
	"github.com/gantry-gw/gantry/internal/dp/proxy"
	"github.com/gantry-gw/gantry/internal/wire"
)

// Off disables a listener when given as its address.
const Off = "off"

// Options configures a Gateway.
type Options struct {
	// ProxyListen is the plain HTTP listener address; "" means ":8000"
	// (Kong's proxy_listen), Off disables it.
	ProxyListen string
	// ProxyTLSListen is the TLS listener address; "" means ":8443", Off
	// disables it.
	ProxyTLSListen string
	// TrustedIPs are the client networks whose X-Forwarded-* headers are
	// trusted (Kong's trusted_ips).
	TrustedIPs []netip.Prefix
	// KongHeaders names response headers as Kong does (X-Kong-*).
	KongHeaders bool
	// AllowUnderscoreHeaders passes request header names with an
	// underscore upstream; by default they are dropped, as nginx's
	// underscores_in_headers off does (see proxy.Config).
	AllowUnderscoreHeaders bool
	// Logger receives lifecycle events and failures; nil discards.
	Logger *slog.Logger
	// Plugins is the plugin registry; nil means plugin.DefaultRegistry.
	Plugins *plugin.Registry
	// LookupEnv resolves env vault references; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// Transport configures the upstream connection pool shared by every
	// generation.
	Transport h1client.Options
	// DefaultCertificate is served on TLS when no SNI matches; nil makes
	// the Gateway generate a self-signed one at New, as Kong does.
	DefaultCertificate *tls.Certificate
	// ShutdownTimeout bounds the graceful part of Close; 0 means 10s.
	// Connections still busy after it are closed.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request head; 0 means 60s
	// (Kong's client_header_timeout).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive client connections; 0 means 75s
	// (nginx's keepalive_timeout).
	IdleTimeout time.Duration
	// MaxConnections caps the client connections open at once, plain and
	// TLS together; at the cap both listeners stop accepting until one
	// closes. 0 means DefaultMaxConnections.
	MaxConnections int
	// Analytics, when set, receives a record of every request the proxy
	// answers, in every generation; nil records nothing.
	Analytics *analytics.Aggregator
	// AccessLog, when set, receives an entry for every request the proxy
	// answers; owned by the caller, shared by configuration generations.
	AccessLog *accesslog.Log
}

// DefaultMaxConnections is the default Options.MaxConnections.
const DefaultMaxConnections = h1server.DefaultMaxConns

// Gateway is the runtime's data plane. Safe for concurrent use.
type Gateway struct {
	// Immutable after New.
	opts      Options
	log       *slog.Logger
	tr        *h1client.Transport
	health    *health.Registry
	stopCheck context.CancelFunc // stops the health registry's checkers
	state     *plugin.StateRegistry
	defCert   *tls.Certificate
	tlsConfig *tls.Config

	// cur is the generation new requests use; swapped whole by Apply.
	cur atomic.Pointer[generation]

	// applyMu serializes Apply, so compiled revisions are published in the
	// order they were applied.
	applyMu sync.Mutex

	// mu guards the listener state below.
	mu             sync.Mutex
	plainLn, tlsLn net.Listener
	// plainSrv serves the plain listener with the proxy's own HTTP/1.1
	// loop; tlsSrv is net/http's, for HTTP/2 over ALPN.
	plainSrv            *h1server.Server
	tlsSrv              *http.Server
	httpPort, httpsPort string // ports reported as X-Forwarded-Port
	started, closed     bool
	serving             sync.WaitGroup
}

// generation is one applied revision with the proxy serving it, and the
// count of requests using it.
type generation struct {
	compiled *compile.Compiled // nil before the first Apply
	proxy    *proxy.Proxy
	hash     string
	loaded   bool
	log      *slog.Logger

	refs      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
	// closed is closed once the generation has been released.
	closed chan struct{}
}

// release drops one reference; the last one out of a retired generation
// closes it.
func (gen *generation) release() {
	if gen.refs.Add(-1) == 0 && gen.retired.Load() {
		gen.close()
	}
}

// retire marks gen replaced: it is closed now if idle, otherwise by its
// last request.
func (gen *generation) retire() {
	gen.retired.Store(true)
	if gen.refs.Load() == 0 {
		gen.close()
	}
}

func (gen *generation) close() {
	gen.closeOnce.Do(func() {
		if gen.compiled != nil {
			// The plugins' Close errors: nothing is waiting on a retired
			// generation, so they are logged.
			if err := gen.compiled.Close(); err != nil {
				gen.log.Error("closing a replaced configuration", "hash", gen.hash, "error", err)
			}
		}
		close(gen.closed)
	})
}

// New checks opts and returns a Gateway serving 404 "no Route matched"
// until the first Apply. It starts the health registry; nothing listens
// until Start.
func New(opts Options) (*Gateway, error) {
	if opts.ProxyListen == "" {
		opts.ProxyListen = ":8000"
	}
	if opts.ProxyTLSListen == "" {
		opts.ProxyTLSListen = ":8443"
	}
	if opts.ShutdownTimeout < 0 || opts.ReadHeaderTimeout < 0 || opts.IdleTimeout < 0 {
		return nil, errors.New("gateway: timeouts must not be negative")
	}
	if opts.MaxConnections < 0 {
		return nil, errors.New("gateway: MaxConnections must not be negative")
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = 60 * time.Second
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 75 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	g := &Gateway{opts: opts, log: opts.Logger.With("component", "gateway"), state: plugin.NewStateRegistry(),
		httpPort: portOf(opts.ProxyListen, "8000"), httpsPort: portOf(opts.ProxyTLSListen, "8443")}
	var err error
	if g.defCert = opts.DefaultCertificate; g.defCert == nil {
		if g.defCert, err = selfSigned(); err != nil {
			return nil, fmt.Errorf("gateway: default certificate: %w", err)
		}
	}
	if g.tr, err = h1client.New(opts.Transport); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// The registry lives as long as the Gateway; Close cancels it.
	hctx, cancel := context.WithCancel(context.Background())
	if g.health, err = health.New(hctx, health.Options{Logger: opts.Logger.With("component", "health")}); err != nil {
		cancel()
		_ = g.tr.Close() // it has no connections yet
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.stopCheck = cancel
	g.tlsConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: g.certificate,
	}
	empty, err := g.newGeneration(nil, "", false)
	if err != nil {
		// Nothing ran on the registry or the transport yet; the error that
		// matters is err.
		_ = g.health.Close()
		cancel()
		_ = g.tr.Close()
		return nil, err
	}
	g.cur.Store(empty)
	return g, nil
}

// newGeneration wraps c in a proxy sharing the Gateway's transport.
func (g *Gateway) newGeneration(c *compile.Compiled, hash string, loaded bool) (*generation, error) {
	g.mu.Lock()
	httpPort, httpsPort := g.httpPort, g.httpsPort
	g.mu.Unlock()
	po := proxy.Options{Transport: g.tr, HTTPPort: httpPort, HTTPSPort: httpsPort, Logger: g.opts.Logger.With("component", "proxy"),
		Analytics: g.opts.Analytics, AccessLog: g.opts.AccessLog}
	if c != nil {
		po.Config = &proxy.Config{Resolver: c, TrustedIPs: g.opts.TrustedIPs, KongHeaders: g.opts.KongHeaders, Global: c.Global(),
			AllowUnderscoreHeaders: g.opts.AllowUnderscoreHeaders}
	}
	p, err := proxy.New(po)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &generation{compiled: c, proxy: p, hash: hash, loaded: loaded, log: g.log, closed: make(chan struct{})}, nil
}

// Start binds the listeners and serves in the background until Close. ctx
// bounds the binding only. On error nothing is left listening.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: closed")
	}
	if g.started {
		return errors.New("gateway: already started")
	}
	var lc net.ListenConfig
	var plain, secure net.Listener
	var err error
	if g.opts.ProxyListen != Off {
		if plain, err = lc.Listen(ctx, "tcp", g.opts.ProxyListen); err != nil {
			return fmt.Errorf("gateway: proxy listener: %w", err)
		}
		g.httpPort = portOf(plain.Addr().String(), g.httpPort)
	}
	if g.opts.ProxyTLSListen != Off {
		if secure, err = lc.Listen(ctx, "tcp", g.opts.ProxyTLSListen); err != nil {
			if plain != nil {
				_ = plain.Close() // never served; the error that matters is err
			}
			return fmt.Errorf("gateway: proxy TLS listener: %w", err)
		}
		g.httpsPort = portOf(secure.Addr().String(), g.httpsPort)
	}
	// Both listeners have one set of limits. The plain listener runs the
	// runtime's own server loop, about a third less CPU per request than
	// net/http's (see bench/); the TLS listener runs net/http's, for HTTP/2,
	// with the loop's limits: the same ReadHeaderTimeout (a whole head, as
	// there), IdleTimeout and MaxHeaderBytes, and, through srv.Listener, the
	// one connection cap and the same per-write timeout. What differs:
	// net/http answers a head over the bound with 431 rather than 494, and
	// allows 4 KiB over it; and it has no per-read body timeout
	// (BodyTimeout), only a whole-request one, which would cut long uploads.
	srv, err := h1server.New(h1server.Options{Handler: g, ReadHeaderTimeout: g.opts.ReadHeaderTimeout,
		IdleTimeout: g.opts.IdleTimeout, MaxConns: g.opts.MaxConnections, Logger: g.log, ErrorBody: proxy.ServerErrorBody})
	if err != nil {
		if plain != nil {
			_ = plain.Close()
		}
		if secure != nil {
			_ = secure.Close()
		}
		return fmt.Errorf("gateway: %w", err)
	}
	if plain != nil {
		g.plainLn, g.plainSrv = plain, srv
		g.serving.Add(1)
		go func() {
			defer g.serving.Done()
			if err := srv.Serve(plain); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("proxy listener stopped", "error", err)
			}
		}()
	}
	if secure != nil {
		errLog := slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)
		lim := srv.Options()
		g.tlsLn = secure
		g.tlsSrv = &http.Server{Handler: g, ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout,
			MaxHeaderBytes: lim.MaxHeaderBytes, ErrorLog: errLog, TLSConfig: g.tlsConfig}
		limited := srv.Listener(secure)
		g.serving.Add(1)
		go func() {
			defer g.serving.Done()
			// ServeTLS enables HTTP/2 over ALPN; certificates come from
			// GetCertificate, so no files are named.
			if err := g.tlsSrv.ServeTLS(limited, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("proxy TLS listener stopped", "error", err)
			}
		}()
	}
	g.started = true
	g.log.Info("proxy listening", "http", addrString(plain), "https", addrString(secure))
	return nil
}

// certificate picks the TLS certificate for a handshake: the current
// configuration's SNI match (exact, then wildcard), else the default.
func (g *Gateway) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	// Certificates are plain values that stay valid after their generation
	// is retired, so the handshake needs no reference on it.
	if c := g.cur.Load().compiled; c != nil {
		if cert := c.Certificates().Lookup(hello); cert != nil {
			return cert, nil
		}
	}
	return g.defCert, nil
}

// ServeHTTP serves one proxied request from the current generation, which
// stays open until the request (including a proxied WebSocket) ends.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	gen := g.acquire()
	defer gen.release()
	gen.proxy.ServeHTTP(w, r)
}

// acquire returns the current generation with a reference taken. The
// re-check after taking the reference closes the race with a concurrent
// swap: a generation retired in between is released and the new one taken.
func (g *Gateway) acquire() *generation {
	for {
		gen := g.cur.Load()
		gen.refs.Add(1)
		if g.cur.Load() == gen {
			return gen
		}
		gen.release()
	}
}

// Apply compiles cfg, a Kong config_table, and makes it the configuration
// of every request that starts afterwards. Requests already running finish
// on the previous configuration, which is closed once they have. When cfg
// fails to compile the previous configuration keeps serving and the entity
// errors are returned with an error wrapping compile.ErrRejected. Applying
// the hash already loaded is a no-op. Applies are serialized.
func (g *Gateway) Apply(ctx context.Context, cfg map[string]any, hash string) ([]wire.EntityError, error) {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return nil, errors.New("gateway: closed")
	}
	if cur := g.cur.Load(); cur.loaded && hash != "" && cur.hash == hash {
		return nil, nil
	}
	start := time.Now()
	c, errs, err := compile.Compile(ctx, cfg, compile.Options{Health: g.health, State: g.state, Plugins: g.opts.Plugins,
		Logger: g.opts.Logger.With("component", "plugins"), LookupEnv: g.opts.LookupEnv})
	if err != nil {
		g.log.Warn("configuration rejected; the previous one keeps serving", "hash", hash, "entity_errors", len(errs), "error", err)
		return errs, fmt.Errorf("gateway: apply %s: %w", hash, err)
	}
	gen, err := g.newGeneration(c, hash, true)
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	old := g.cur.Swap(gen)
	old.retire()
	g.log.Info("configuration applied", "hash", hash, "took", time.Since(start))
	return nil, nil
}

// Current reports the hash of the configuration serving new requests, and
// whether any configuration was applied yet.
func (g *Gateway) Current() (hash string, loaded bool) {
	gen := g.cur.Load()
	return gen.hash, gen.loaded
}

// Addrs returns the bound listener addresses; nil for a listener that is
// off or not started.
func (g *Gateway) Addrs() (plain, tls net.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.plainLn != nil {
		plain = g.plainLn.Addr()
	}
	if g.tlsLn != nil {
		tls = g.tlsLn.Addr()
	}
	return plain, tls
}

// Health returns the target health registry, for status endpoints.
func (g *Gateway) Health() *health.Registry { return g.health }

// State returns the plugin state registry every generation shares (rate-limit
// counters, the prometheus plugin's metrics), for status endpoints.
func (g *Gateway) State() *plugin.StateRegistry { return g.state }

// Close stops accepting connections, lets requests in flight (proxied
// WebSocket sessions on the plain listener included) finish for up to
// ShutdownTimeout, then closes what is left, the configuration, the
// health checkers and the upstream pools. It is idempotent.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	var servers []shutdowner
	if g.plainSrv != nil {
		servers = append(servers, g.plainSrv)
	}
	if g.tlsSrv != nil {
		servers = append(servers, g.tlsSrv)
	}
	g.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), g.opts.ShutdownTimeout)
	defer cancel()
	var errs []error
	var wg sync.WaitGroup
	var errMu sync.Mutex
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				// Shutdown's error (the timeout) is the one reported. Close
				// cuts the connections still open; its only errors are from
				// the listeners, which Shutdown has closed already.
				_ = srv.Close()
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	g.serving.Wait()
	g.applyMu.Lock() // no Apply may publish after this point
	g.cur.Load().retire()
	g.applyMu.Unlock()
	errs = append(errs, g.health.Close())
	g.stopCheck()
	errs = append(errs, g.tr.Close())
	return errors.Join(errs...)
}

// shutdowner is what Close needs of both listeners' servers (the proxy's
// and net/http's).
type shutdowner interface {
	Shutdown(ctx context.Context) error
	Close() error
}

// selfSigned makes the default certificate served when no SNI matches, like
// Kong's generated default: ECDSA P-256, CN "localhost", one year.
func selfSigned() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"Gantry"}},
		DNSNames:     []string{"localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// portOf returns the port of a listen address, or def when it has none.
func portOf(addr, def string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil && p != "" && p != "0" {
		return p
	}
	return def
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return Off
	}
	return ln.Addr().String()
}
