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
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/dp/agent"
	"github.com/gantry-gw/gantry/internal/dp/cache"
	"github.com/gantry-gw/gantry/internal/dp/gateway"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/prometheus"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/spf13/cobra"

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
gantry_data_plane_config_applied_timestamp_seconds, ...).`,
		Example: `  gantry runtime --control-plane cp.example.com:8005 --cert tls.crt --key tls.key --ca ca.crt
  GANTRY_CONTROL_PLANE=cp:8005 GANTRY_LABEL=zone=eu-1,tier=edge gantry runtime --cert tls.crt --key tls.key --ca ca.crt`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("control-plane", "", "address of the control plane's cluster listener (host:port); required")
	f.String("cert", "", "PEM file of this instance's client certificate (generated for or pinned to its runtime group); required")
	f.String("key", "", "PEM file of the client certificate's private key; required")
	f.String("ca", "", "PEM file of the CA(s) that sign the control plane's certificate; the system roots when empty")
	f.String("server-name", "", "name the control plane's certificate must carry; the host of --control-plane when empty")
	addRuntimeListenFlags(f, "./gantry-runtime", "directory of the node id and the last applied configuration, created if missing")
	f.StringArray("label", nil, "label k=v announced to the control plane; repeat the flag for several")
	f.String("hostname", "", "host name reported to the control plane; the machine's when empty")
	f.Bool("kong-headers", false, "name the latency and request-id response headers as Kong does (X-Kong-Upstream-Latency, X-Kong-Proxy-Latency, X-Kong-Request-Id) instead of X-Gantry-*")
	f.StringSlice("trusted-ips", nil, "addresses or CIDRs of proxies whose X-Forwarded-* headers are trusted")
	f.Duration("ping-interval", agent.DefaultPingInterval, "how often the instance pings the control plane with its configuration hash")
	f.Duration("shutdown-timeout", 30*time.Second, "how long in-flight requests may run after a stop signal")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := setup(cmd)
		if err != nil {
			return err
		}
		get := func(name string) string { return flagString(cmd, name) }
		cfg, err := runtimeTLS(get("control-plane"), get("cert"), get("key"), get("ca"), get("server-name"))
		if err != nil {
			return err
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
		trusted, _ := f.GetStringSlice("trusted-ips")
		kongHeaders, _ := f.GetBool("kong-headers")
		prefixes, err := parseTrustedIPs(trusted)
		if err != nil {
			return err
		}
		return runRuntime(cmd.Context(), runtimeOptions{
			controlPlane: get("control-plane"), tls: cfg, proxyListen: get("proxy-listen"), proxyTLSListen: get("proxy-tls-listen"),
			statusListen: get("status-listen"), cacheDir: get("cache-dir"), labels: labels, hostname: hostname,
			trustedIPs: prefixes, kongHeaders: kongHeaders, pingInterval: ping, shutdownTimeout: shutdown, log: log, out: cmd.OutOrStdout(),
		})
	}
	return cmd
}

// runtimeTLS builds the client TLS configuration from the flags, checking
// each file so that a mistake is reported before any connection attempt.
func runtimeTLS(controlPlane, certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	var missing []string
	for name, v := range map[string]string{"--control-plane": controlPlane, "--cert": certFile, "--key": keyFile} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, &usageError{fmt.Errorf("%s required (or GANTRY_CONTROL_PLANE, GANTRY_CERT, GANTRY_KEY)", strings.Join(missing, ", "))}
	}
	host, _, err := net.SplitHostPort(controlPlane)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--control-plane %q: want host:port: %w", controlPlane, err)}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, &usageError{fmt.Errorf("client certificate --cert %s / --key %s: %w", certFile, keyFile, err)}
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, ServerName: host}
	if serverName != "" {
		cfg.ServerName = serverName
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--ca: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &usageError{fmt.Errorf("--ca %s holds no PEM certificate", caFile)}
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
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
	controlPlane                     string
	tls                              *tls.Config
	proxyListen, proxyTLSListen      string
	statusListen, cacheDir, hostname string
	labels                           map[string]string
	trustedIPs                       []netip.Prefix
	kongHeaders                      bool
	pingInterval, shutdownTimeout    time.Duration
	log                              *slog.Logger
	out                              io.Writer
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
	c, err := cache.New(cache.Options{Dir: o.cacheDir})
	if err != nil {
		return &usageError{fmt.Errorf("--cache-dir: %w", err)}
	}
	nodeID, err := c.NodeID()
	if err != nil {
		return err
	}
	gw, err := gateway.New(gateway.Options{
		ProxyListen: o.proxyListen, ProxyTLSListen: o.proxyTLSListen, TrustedIPs: o.trustedIPs, KongHeaders: o.kongHeaders,
		Logger: log, ShutdownTimeout: o.shutdownTimeout,
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
			return prometheus.RuntimeStatus{ConfigHash: st.ConfigurationHash, Revision: st.Revision, Connected: st.Connected,
				LastApplied: applied.last()}
		},
		Upstreams: gw.Health().StatusAll,
	}
	if len(o.tls.Certificates) > 0 && o.tls.Certificates[0].Leaf != nil {
		metricsOpts.ClusterCertExpiry = o.tls.Certificates[0].Leaf.NotAfter
	}
	metrics, err := prometheus.NewHandler(metricsOpts)
	if err != nil {
		return err
	}
	ag, err = agent.New(agent.Options{
		ControlPlane: o.controlPlane, TLSConfig: o.tls, NodeID: nodeID, Hostname: o.hostname,
		Version: schema.KongVersion, Plugins: bundledPlugins(), Labels: o.labels, Applier: applied, Cache: c,
		Logger: log, PingInterval: o.pingInterval, Metrics: metrics,
	})
	if err != nil {
		return err
	}
	// The cache is loaded before the status API opens, so that a runtime
	// with a usable cache is never seen unready.
	ag.LoadCache(ctx)

	statusLn, err := net.Listen("tcp", o.statusListen)
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
	fmt.Fprintf(o.out, "gantry runtime %s (Kong %s), node %s (%s)\n", version, schema.KongVersion, nodeID, o.hostname)
	fmt.Fprintf(o.out, "  proxy:         http://%s", plain)
	if secure != nil {
		fmt.Fprintf(o.out, ", https://%s", secure)
	}
	fmt.Fprintf(o.out, "\n  status:        http://%s/status\n  control plane: %s\n  cache:         %s\n",
		statusLn.Addr(), o.controlPlane, o.cacheDir)

	runErr := ag.Run(ctx)
	log.Info("stopping: disconnected from the control plane")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := status.Shutdown(sctx); err != nil {
		log.Error("stopping the status API", "error", err)
	}
	return runErr
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
