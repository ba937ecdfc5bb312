package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-gw/gantry/internal/certfile"
	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/dp/accesslog"
	"github.com/gantry-gw/gantry/internal/dp/agent"
	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/dp/cache"
	"github.com/gantry-gw/gantry/internal/dp/enroll"
	"github.com/gantry-gw/gantry/internal/dp/gateway"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/prometheus"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	// The runtime runs every bundled plugin and announces them all.
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/all"
)

func newRuntimeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runtime",
		Short: "Run a runtime instance (gateway) of a runtime group",
		Long: `Run a Gantry runtime instance: it connects to the control plane's cluster listener with its
client certificate, receives its runtime group's configuration, and proxies traffic.

Each configuration is built completely before it replaces the one serving; one that fails to build is
rejected (the control plane sees which entities failed) and the previous one keeps serving. Every
applied configuration is written to --cache-dir, so an instance started while the control plane is
unreachable serves its last configuration. When the control plane is down, restarting or unreachable,
the instance keeps serving and reconnects with backoff. When its group is deleted, it keeps serving
and reports itself orphaned.

GET /status on --status-listen reports the configuration hash and revision served and the connection
state; GET /status/ready answers 200 once a configuration is loaded and 503 before. GET /metrics
serves Prometheus metrics: the prometheus plugin's series with Kong's names (kong_http_requests_total,
kong_*_latency_ms, kong_bandwidth_bytes, kong_upstream_target_health) and the instance's own
(kong_data_plane_config_hash, gantry_control_plane_connected, gantry_data_plane_config_revision,
gantry_data_plane_config_applied_timestamp_seconds, gantry_analytics_*, ...).

Every request is also aggregated per minute (service, route, consumer, status: counts, sizes and
latency histograms, never paths, headers or addresses); every --analytics-flush-interval the
aggregates are sent to a control plane that supports analytics and kept (bounded by --analytics-buffer, spilled to --cache-dir at
shutdown) until it acknowledges them.`,
		Example: `  gantry runtime --control-plane cp.example.com:8005 --enroll gent_…   # first start; later starts reuse the certificate
  gantry runtime --control-plane cp.example.com:8005 --cert tls.crt --key tls.key --ca ca.crt
  GANTRY_CONTROL_PLANE=cp:8005 GANTRY_LABEL=zone=eu-1,tier=edge gantry runtime --cert tls.crt --key tls.key --ca ca.crt`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("control-plane", "", "address of the control plane's cluster listener (host:port or https://host:port); required. Several comma-separated addresses (control plane processes sharing one PostgreSQL database) are tried in turn: the instance connects to one and fails over to the next when its link ends")
	f.String("cert", "", "PEM file of this instance's client certificate (generated for or pinned to its runtime group); required")
	f.String("key", "", "PEM file of the client certificate's private key; required")
	f.String("ca", "", "PEM file of the CA(s) that sign the control plane's certificate; the system roots when empty")
	f.String("enroll", "", "enrollment token (gent_…, from POST /v2/runtime-groups/{id}/enrollment-tokens): on first start the instance makes its own key, gets its certificate from --control-plane and keeps both in --cache-dir/enrollment (0600); later starts reuse them and ignore the token. Replaces --cert, --key and --ca")
	f.Duration("renew-before", 30*24*time.Hour, "an enrolled instance renews its certificate (new key, over its authenticated link, without interrupting traffic) this long before it expires")
	f.String("server-name", "", "name the control plane's certificate must carry; the host of --control-plane when empty")
	addRuntimeListenFlags(f, "./gantry-runtime", "directory of the node id and the last applied configuration, created if missing")
	f.StringArray("label", nil, "label k=v announced to the control plane; repeat the flag for several")
	f.String("hostname", "", "host name reported to the control plane; the machine's when empty")
	f.Bool("kong-headers", false, "name the latency and request-id response headers as Kong does (X-Kong-Upstream-Latency, X-Kong-Proxy-Latency, X-Kong-Request-Id) instead of X-Gantry-*")
	f.StringSlice("trusted-ips", nil, "addresses or CIDRs of proxies whose X-Forwarded-* headers are trusted")
	f.Bool("allow-underscore-headers", false, "pass request header names with an underscore (X_Consumer_Username) upstream; by default they are dropped, as nginx's underscores_in_headers off does, so they cannot pass for identity headers such as X-Consumer-Username")
	f.Duration("ping-interval", agent.DefaultPingInterval, "how often the instance pings the control plane with its configuration hash")
	f.Duration("shutdown-timeout", 30*time.Second, "how long in-flight requests may run after a stop signal")
	f.Int("max-connections", gateway.DefaultMaxConnections, "client connections served at once, plain and TLS listeners together; at the cap new clients wait in the listen backlog until one closes")
	f.String("access-log", "off", "access log of proxied requests as JSON lines (time, request id, method, path without query, client address, route, service, consumer, status, latencies, bytes, upstream address; never credentials, headers or bodies): off, stdout, or a file path (appended to; reopened on SIGHUP for log rotation). Written off the request path; entries beyond a full queue are dropped and counted")
	f.Bool("analytics", true, "aggregate every request per minute (service, route, consumer, status, sizes, latencies) and send the aggregates to a control plane that supports analytics; --analytics=false records and sends nothing")
	f.Duration("analytics-flush-interval", analytics.DefaultFlushInterval, "how often the per-minute aggregates (the current minute's so far included) are batched and sent to the control plane")
	f.Int("analytics-series-cap", analytics.DefaultSeriesCap, "series (service, route, consumer, status) kept per minute, at most 99500; requests beyond go to the \"other\" series and are counted. A series takes about 2.5-4.5 KiB, so the default bounds a minute to about 45 MiB")
	f.Duration("analytics-buffer", time.Duration(analytics.DefaultBuffer)*time.Minute, "how much unacknowledged analytics data to keep (minutes of traffic, at least 1m) while the control plane is away; the oldest is dropped beyond it. Spilled to --cache-dir at shutdown")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := setup(cmd)
		if err != nil {
			return err
		}
		get := func(name string) string { return flagString(cmd, name) }
		certFile, keyFile, caFile, err := enrollIfNeeded(cmd.Context(), log, get("control-plane"), get("enroll"), get("cache-dir"),
			get("cert"), get("key"), get("ca"), get("server-name"), get("hostname"))
		if err != nil {
			return err
		}
		cfg, certs, err := runtimeTLS(get("control-plane"), certFile, keyFile, caFile, get("server-name"))
		if err != nil {
			return err
		}
		renewBefore, _ := f.GetDuration("renew-before")
		renewDir := ""
		if certFile == enroll.FilesIn(get("cache-dir")).Cert {
			renewDir = get("cache-dir") // enrolled: the instance renews its own certificate
		}
		labelList, _ := f.GetStringArray("label")
		labels, err := parseLabels(labelList)
		if err != nil {
			return err
		}
		hostname := get("hostname")
		if hostname == "" {
			if hostname, err = os.Hostname(); err != nil {
				return fmt.Errorf("host name: %w (set --hostname)", err)
			}
		}
		ping, _ := f.GetDuration("ping-interval")
		shutdown, _ := f.GetDuration("shutdown-timeout")
		maxConns, _ := f.GetInt("max-connections")
		if maxConns < 1 {
			return &usageError{fmt.Errorf("--max-connections %d: must be at least 1", maxConns)}
		}
		trusted, _ := f.GetStringSlice("trusted-ips")
		kongHeaders, _ := f.GetBool("kong-headers")
		underscores, _ := f.GetBool("allow-underscore-headers")
		prefixes, err := parseTrustedIPs(trusted)
		if err != nil {
			return err
		}
		an, err := analyticsFlags(f)
		if err != nil {
			return err
		}
		return runRuntime(cmd.Context(), runtimeOptions{
			controlPlane: get("control-plane"), tls: cfg, certs: certs, renewDir: renewDir, renewBefore: renewBefore, proxyListen: get("proxy-listen"), proxyTLSListen: get("proxy-tls-listen"),
			statusListen: get("status-listen"), cacheDir: get("cache-dir"), labels: labels, hostname: hostname,
			trustedIPs: prefixes, kongHeaders: kongHeaders, allowUnderscoreHeaders: underscores, pingInterval: ping, shutdownTimeout: shutdown,
			log: log, out: cmd.OutOrStdout(),
			maxConnections: maxConns, analytics: an, accessLog: get("access-log"),
		})
	}
	return cmd
}

// analyticsFlags reads and checks the --analytics* flags.
func analyticsFlags(f *pflag.FlagSet) (analyticsOptions, error) {
	var o analyticsOptions
	on, _ := f.GetBool("analytics")
	o.off = !on
	o.flushInterval, _ = f.GetDuration("analytics-flush-interval")
	o.seriesCap, _ = f.GetInt("analytics-series-cap")
	buffer, _ := f.GetDuration("analytics-buffer")
	if o.flushInterval <= 0 {
		return o, &usageError{fmt.Errorf("--analytics-flush-interval %s: must be positive", o.flushInterval)}
	}
	if o.seriesCap < 1 || o.seriesCap > analytics.MaxSeriesCap {
		return o, &usageError{fmt.Errorf("--analytics-series-cap %d: must be in 1..%d", o.seriesCap, analytics.MaxSeriesCap)}
	}
	if buffer < time.Minute {
		return o, &usageError{fmt.Errorf("--analytics-buffer %s: must be at least 1m", buffer)}
	}
	// Whole minutes, rounded up: a buffer never keeps less than asked.
	o.bufferMinutes = int((buffer + time.Minute - 1) / time.Minute)
	return o, nil
}

// runtimeTLS builds the client TLS configuration from the flags, checking
// each file so that a mistake is reported before any connection attempt.
func runtimeTLS(controlPlane, certFile, keyFile, caFile, serverName string) (*tls.Config, *certfile.Pair, error) {
	var missing []string
	for name, v := range map[string]string{"--control-plane": controlPlane, "--cert": certFile, "--key": keyFile} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, nil, &usageError{fmt.Errorf("%s required (or GANTRY_CONTROL_PLANE, GANTRY_CERT, GANTRY_KEY); or enroll with --enroll <token> instead of --cert and --key", strings.Join(missing, ", "))}
	}
	addrs, err := parseControlPlanes(controlPlane)
	if err != nil {
		return nil, nil, err
	}
	pair, err := certfile.New(certfile.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		return nil, nil, &usageError{fmt.Errorf("client certificate --cert %s / --key %s: %w", certFile, keyFile, err)}
	}
	// With several addresses and no --server-name, each dial checks the host it dials.
	cfg := &tls.Config{GetClientCertificate: pair.GetClientCertificate, MinVersion: tls.VersionTLS12, ServerName: serverName}
	if serverName == "" && len(addrs) == 1 {
		cfg.ServerName, _, _ = net.SplitHostPort(addrs[0])
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, nil, &usageError{fmt.Errorf("--ca: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, &usageError{fmt.Errorf("--ca %s holds no PEM certificate", caFile)}
		}
		cfg.RootCAs = pool
	}
	return cfg, pair, nil
}

// enrollIfNeeded returns the certificate files the runtime uses: --cert/--key/--ca when given;
// else the ones an earlier enrollment left in the cache directory; else, with --enroll, it enrolls
// now (exit 1 with the control plane's reason when refused).
func enrollIfNeeded(ctx context.Context, log *slog.Logger, controlPlane, token, cacheDir, certFile, keyFile, caFile, serverName, hostname string) (string, string, string, error) {
	if certFile != "" || keyFile != "" {
		if token != "" {
			return "", "", "", &usageError{errors.New("give --enroll or --cert/--key, not both")}
		}
		return certFile, keyFile, caFile, nil
	}
	files := enroll.FilesIn(cacheDir)
	if files.Exist() {
		if token != "" {
			log.Info("already enrolled: using the certificate in the cache directory; --enroll is ignored", "cert", files.Cert)
		}
		return files.Cert, files.Key, files.CA, nil
	}
	if token == "" {
		return "", "", "", nil // runtimeTLS says what is missing
	}
	addrs, err := parseControlPlanes(controlPlane)
	if err != nil {
		return "", "", "", err
	}
	if _, _, err := enroll.ParseToken(token); err != nil {
		return "", "", "", &usageError{fmt.Errorf("--enroll: %w", err)}
	}
	if hostname == "" {
		hostname, _ = os.Hostname() // informational only
	}
	var lastErr error
	for _, addr := range addrs {
		files, err := enroll.Enroll(ctx, enroll.Options{ControlPlane: addr, Token: token, Dir: cacheDir, Hostname: hostname, ServerName: serverName})
		var refused *enroll.Error
		switch {
		case err == nil:
			log.Info("enrolled: the certificate and key are in the cache directory", "control_plane", addr, "cert", files.Cert)
			return files.Cert, files.Key, files.CA, nil
		case errors.As(err, &refused):
			return "", "", "", err // the control plane said no: another address would say the same
		}
		log.Warn("enrollment failed; trying the next control plane address", "control_plane", addr, "error", err)
		lastErr = err
	}
	return "", "", "", lastErr
}

// parseControlPlanes reads --control-plane: one address or several, comma-separated, each host:port
// or https://host:port (the form a group's control_plane_endpoint shows).
func parseControlPlanes(v string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		addr := strings.TrimSuffix(strings.TrimPrefix(item, "https://"), "/")
		if strings.Contains(addr, "://") {
			return nil, &usageError{fmt.Errorf("--control-plane %q: the cluster listener speaks TLS: give host:port or https://host:port", item)}
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, &usageError{fmt.Errorf("--control-plane %q: want host:port: %w", item, err)}
		}
		out = append(out, addr)
	}
	if len(out) == 0 {
		return nil, &usageError{errors.New("--control-plane: give at least one host:port")}
	}
	return out, nil
}

// parseTrustedIPs turns addresses and CIDRs into prefixes; an address is a
// prefix of its full length.
func parseTrustedIPs(items []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, it := range items {
		if p, err := netip.ParsePrefix(it); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(it)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--trusted-ips %q: not an address or CIDR", it)}
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// parseLabels turns k=v items into a map; nil when there are none.
func parseLabels(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, &usageError{fmt.Errorf("--label %q: want key=value", it)}
		}
		labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return labels, nil
}

// runtimeGCPercent is the runtime's GOGC when the environment does not set one.
const runtimeGCPercent = 400

// runtimeOptions are the checked flags of gantry runtime.
type runtimeOptions struct {
	controlPlane string
	tls          *tls.Config
	// certs is the client certificate tls presents; renewDir, when set, is the data directory
	// of an enrolled certificate, renewed renewBefore its expiry.
	certs                            *certfile.Pair
	renewDir                         string
	renewBefore                      time.Duration
	proxyListen, proxyTLSListen      string
	statusListen, cacheDir, hostname string
	labels                           map[string]string
	trustedIPs                       []netip.Prefix
	kongHeaders                      bool
	allowUnderscoreHeaders           bool
	pingInterval, shutdownTimeout    time.Duration
	maxConnections                   int
	analytics                        analyticsOptions
	// accessLog is --access-log: "off", "stdout" or a file path.
	accessLog string
	log       *slog.Logger
	out       io.Writer
}

// analyticsOptions are the checked --analytics* flags; the zero value is
// analytics on with the defaults (as quickstart runs it).
type analyticsOptions struct {
	off           bool
	flushInterval time.Duration
	seriesCap     int
	bufferMinutes int
}

// bundledPlugins lists the plugins this runtime can run, as Kong's
// basic_info does: sorted by lowercased name, each with the Kong version
// the control plane expects of Gantry runtimes.
func bundledPlugins() []wire.PluginInfo {
	names := plugin.DefaultRegistry.Names()
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	out := make([]wire.PluginInfo, len(names))
	for i, n := range names {
		out[i] = wire.PluginInfo{Name: n, Version: schema.KongVersion}
	}
	return out
}

// runRuntime runs the gateway, the status API and the agent until ctx ends,
// then stops them in that order's reverse: the link first, then the
// status API, then the proxy, whose in-flight requests get
// shutdownTimeout to finish.
func runRuntime(ctx context.Context, o runtimeOptions) error {
	log := o.log
	// A gateway's live heap is small (a few MB) and its garbage is per-request, so Go's default
	// GOGC=100 collects several times a second under load, which shows in tail latency. Trade a
	// few MB of memory for fewer collections unless the operator chose GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(runtimeGCPercent)
	}
	controlPlanes, err := parseControlPlanes(o.controlPlane)
	if err != nil {
		return err
	}
	c, err := cache.New(cache.Options{Dir: o.cacheDir})
	if err != nil {
		return &usageError{fmt.Errorf("--cache-dir: %w", err)}
	}
	nodeID, err := c.NodeID()
	if err != nil {
		return err
	}
	// The analytics outbox is loaded (its spill, from a previous run) before
	// the proxy records anything, and flushed and spilled after the proxy
	// has stopped: this deferred call runs after the gateway's Close.
	var (
		agg    *analytics.Aggregator
		outbox *analytics.Outbox
	)
	if !o.analytics.off {
		if agg, err = analytics.NewAggregator(analytics.AggregatorOptions{SeriesCap: o.analytics.seriesCap}); err != nil {
			return &usageError{err}
		}
		outbox, err = analytics.NewOutbox(ctx, analytics.OutboxOptions{Aggregator: agg, Cache: c,
			FlushInterval: o.analytics.flushInterval, Buffer: o.analytics.bufferMinutes, Logger: log})
		if err != nil {
			return &usageError{err}
		}
		flushCtx, stopFlush := context.WithCancel(ctx)
		flushed := make(chan struct{})
		go func() { outbox.Run(flushCtx); close(flushed) }()
		defer func() {
			stopFlush()
			<-flushed
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := outbox.Close(sctx); err != nil {
				log.Error("spilling the analytics outbox", "error", err)
			}
		}()
	}
	al, err := accesslog.Open(o.accessLog, accesslog.Options{Logger: log})
	if err != nil {
		return &usageError{fmt.Errorf("--access-log: %w", err)}
	}
	if al != nil {
		alCtx, stopAL := context.WithCancel(ctx)
		alDone := make(chan struct{})
		go func() { al.Run(alCtx); close(alDone) }()
		go reopenOnHUP(alCtx, al, log)
		defer func() {
			// After the gateway closed (deferred later, so run earlier): every request is logged.
			stopAL()
			<-alDone
			if err := al.Close(); err != nil {
				log.Error("closing the access log", "error", err)
			}
		}()
	}
	gw, err := gateway.New(gateway.Options{
		ProxyListen: o.proxyListen, ProxyTLSListen: o.proxyTLSListen, TrustedIPs: o.trustedIPs, KongHeaders: o.kongHeaders,
		AllowUnderscoreHeaders: o.allowUnderscoreHeaders, Logger: log, ShutdownTimeout: o.shutdownTimeout,
		MaxConnections: o.maxConnections, Analytics: agg, AccessLog: al,
	})
	if err != nil {
		return &usageError{fmt.Errorf("gateway: %w", err)}
	}
	if err := gw.Start(ctx); err != nil {
		return fmt.Errorf("start the proxy: %w", err)
	}
	defer func() {
		if err := gw.Close(); err != nil {
			log.Error("closing the proxy", "error", err)
		}
		log.Info("proxy stopped")
	}()

	// The agent applies through a recorder of the last successful apply,
	// which /metrics reports; the metrics read the agent's status, so the
	// agent is referenced only once it exists (scrapes start later).
	applied := &appliedRecorder{Applier: gw}
	var ag *agent.Agent
	metricsOpts := prometheus.RuntimeOptions{
		Metrics: prometheus.MetricsFrom(gw.State()), NodeID: nodeID, Hostname: o.hostname, Version: schema.KongVersion,
		Status: func() prometheus.RuntimeStatus {
			st := ag.Status()
			rs := prometheus.RuntimeStatus{ConfigHash: st.ConfigurationHash, Revision: st.Revision, Connected: st.Connected,
				LastApplied: applied.last()}
			rs.CertExpiry = certExpiry(o.certs)
			return rs
		},
		Upstreams: gw.Health().StatusAll,
	}
	if outbox != nil {
		metricsOpts.Collectors = append(metricsOpts.Collectors, outbox.Collector())
	}
	metricsOpts.ClusterCertExpiry = certExpiry(o.certs)
	metrics, err := prometheus.NewHandler(metricsOpts)
	if err != nil {
		return err
	}
	ag, err = agent.New(agent.Options{
		ControlPlanes: controlPlanes, TLSConfig: o.tls, NodeID: nodeID, Hostname: o.hostname,
		Version: schema.KongVersion, Plugins: bundledPlugins(), Labels: o.labels, Applier: applied, Cache: c,
		Logger: log, PingInterval: o.pingInterval, Metrics: metrics, Analytics: outbox,
	})
	if err != nil {
		return err
	}
	// The cache is loaded before the status API opens, so that a runtime
	// with a usable cache is never seen unready.
	ag.LoadCache(ctx)

	var lc net.ListenConfig
	statusLn, err := lc.Listen(ctx, "tcp", o.statusListen)
	if err != nil {
		return fmt.Errorf("status listener: %w", err)
	}
	status := &http.Server{Handler: ag.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := status.Serve(statusLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status API stopped", "error", err)
		}
	}()
	plain, secure := gw.Addrs()
	var banner strings.Builder
	fmt.Fprintf(&banner, "gantry runtime %s (Kong %s), node %s (%s)\n", version, schema.KongVersion, nodeID, o.hostname)
	fmt.Fprintf(&banner, "  proxy:         http://%s", plain)
	if secure != nil {
		fmt.Fprintf(&banner, ", https://%s", secure)
	}
	fmt.Fprintf(&banner, "\n  status:        http://%s/status\n  control plane: %s\n  cache:         %s\n",
		statusLn.Addr(), o.controlPlane, o.cacheDir)
	// The banner only informs: an unwritable output is no reason not to serve.
	_, _ = io.WriteString(o.out, banner.String())

	if o.renewDir != "" && o.certs != nil {
		rctx, stopRenew := context.WithCancel(ctx)
		defer stopRenew()
		go renewLoop(rctx, log, o, controlPlanes, ag)
	}
	runErr := ag.Run(ctx)
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := status.Shutdown(sctx); err != nil {
		log.Error("stopping the status API", "error", err)
	}
	return runErr
}

// certExpiry returns when the client certificate in use expires; zero when unknown.
func certExpiry(p *certfile.Pair) time.Time {
	if p == nil {
		return time.Time{}
	}
	if c := p.Certificate(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// renewLoop renews an enrolled certificate o.renewBefore its expiry: a new key and certificate
// over the authenticated link, then a new link with them. Traffic is served throughout; a failed
// renewal is retried every minute while the old certificate lasts.
func renewLoop(ctx context.Context, log *slog.Logger, o runtimeOptions, addrs []string, ag *agent.Agent) {
	for {
		wait := time.Until(certExpiry(o.certs)) - o.renewBefore
		if wait > 0 {
			// Checked at least hourly, so a clock jump is noticed.
			if !sleepCtx(ctx, min(wait, time.Hour)) {
				return
			}
			continue
		}
		var err error
		for _, addr := range addrs {
			if err = enroll.Renew(ctx, enroll.RenewOptions{ControlPlane: addr, TLS: o.tls, Dir: o.renewDir, Hostname: o.hostname}); err == nil {
				break
			}
		}
		if err == nil {
			err = o.certs.Reload()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("client certificate renewal failed; retrying in a minute", "expires", certExpiry(o.certs), "error", err)
			if !sleepCtx(ctx, time.Minute) {
				return
			}
			continue
		}
		log.Info("renewed the client certificate; reconnecting with it", "expires", certExpiry(o.certs))
		ag.Reconnect()
		if time.Until(certExpiry(o.certs)) <= o.renewBefore {
			// Certificates live shorter than --renew-before: renew once a minute, not in a loop.
			log.Warn("--renew-before is longer than the certificates the control plane issues live", "renew_before", o.renewBefore)
			if !sleepCtx(ctx, time.Minute) {
				return
			}
		}
	}
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// reopenOnHUP reopens the access log file on SIGHUP (after logrotate moved it) until ctx ends.
func reopenOnHUP(ctx context.Context, al *accesslog.Log, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := al.Reopen(); err != nil {
				log.Error("SIGHUP: cannot reopen the access log", "error", err)
			}
		}
	}
}

// appliedRecorder remembers when its Applier last applied a configuration
// successfully, for the gantry_data_plane_config_applied_timestamp_seconds
// metric. Safe for concurrent use.
type appliedRecorder struct {
	agent.Applier
	// at is the Unix time in nanoseconds of the last successful apply; 0
	// when none.
	at atomic.Int64
}

// Apply implements agent.Applier.
func (r *appliedRecorder) Apply(ctx context.Context, cfg map[string]any, hash string) ([]wire.EntityError, error) {
	errs, err := r.Applier.Apply(ctx, cfg, hash)
	if err == nil && len(errs) == 0 {
		r.at.Store(time.Now().UnixNano())
	}
	return errs, err
}

// last returns when a configuration was last applied; the zero time when
// none was.
func (r *appliedRecorder) last() time.Time {
	if n := r.at.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
