// Package agent is the runtime instance's link to its control plane. It
// dials the cluster listener (Kong's hybrid protocol /v1/outlet over mTLS
// WebSocket, with Gantry's extension), announces the instance, applies
// each configuration it receives through an [Applier], acknowledges or
// rejects it, reports the hash it runs in its pings, and keeps the last
// applied revision in a disk cache so the instance can start and serve
// without its control plane.
//
// Guarantees:
//   - The control plane being down, restarting or unreachable never
//     touches what the Applier serves: the agent only ever replaces a
//     configuration by a newer one that built completely.
//   - A revision that fails to build is rejected (nack with per-entity
//     errors) and remembered by hash: when the control plane sends the
//     same configuration again, the agent answers with the same rejection
//     without building it again, so a bad revision cannot cause a loop of
//     rebuilds.
//   - After any failure the agent reconnects with exponential backoff and
//     jitter, forever, until its context ends.
//   - When its group is deleted the instance keeps serving and reports
//     itself orphaned.
//   - With an analytics outbox (Options.Analytics), a control plane that
//     negotiated wire.CapAnalytics receives every buffered batch until it
//     acknowledges it, again after each reconnect; one that did not
//     receives none, and the outbox keeps its bounded buffer.
package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/dp/cache"
	"github.com/gantry-gw/gantry/internal/wire"
)

// Applier is what the agent drives: the gateway that compiles and serves
// configurations. internal/dp/gateway implements it.
type Applier interface {
	// Apply builds cfg (a Kong config_table) completely and, only if that
	// succeeds, swaps it in atomically under hash. When it fails, the
	// previous configuration keeps serving and the entities at fault are
	// returned, with an error summarizing the failure; either being
	// non-empty means the configuration was rejected.
	Apply(ctx context.Context, cfg map[string]any, hash string) ([]wire.EntityError, error)
	// Current returns the hash of the configuration being served and
	// whether there is one at all.
	Current() (hash string, loaded bool)
}

// TypeOrphaned is the type of the frame (gzip'd JSON, like every CP->DP
// data frame) a control plane sends a Gantry runtime whose group has been
// deleted. Its optional "message" (or "reason") field is logged.
const TypeOrphaned = "orphaned"

// Defaults of [Options].
const (
	// DefaultPingInterval is Kong's CLUSTERING_PING_INTERVAL.
	DefaultPingInterval = 30 * time.Second
	// DefaultBackoffMin is the first reconnect delay (before jitter).
	DefaultBackoffMin = time.Second //nolint:revive // Min is the minimum, not minutes
	// DefaultBackoffMax caps the reconnect delay (before jitter).
	DefaultBackoffMax = 30 * time.Second
	// DefaultDialTimeout bounds connecting, the TLS handshake and the
	// upgrade.
	DefaultDialTimeout = 10 * time.Second
	// DefaultOrphanRetry is how often an orphaned instance (its group was
	// deleted) tries its control plane again, quietly, in case its
	// certificate is pinned to a group again.
	DefaultOrphanRetry = 5 * time.Minute
	// quarantineSize is how many rejected configuration hashes are
	// remembered.
	quarantineSize = 8
	// MaxTelemetryInFlight is how many analytics batches are sent ahead of
	// their acknowledgements on one link.
	MaxTelemetryInFlight = 4
)

// Options configure an [Agent]. ControlPlane (or ControlPlanes), TLSConfig, NodeID,
// Hostname, Version and Applier are required.
type Options struct {
	// ControlPlane is the cluster listener's address, "host:port": the
	// one address of a single control plane process.
	ControlPlane string
	// ControlPlanes are the cluster listeners of several control plane
	// processes sharing one database, "host:port" each; used instead of
	// ControlPlane when set. The agent connects to one; when the link
	// fails or ends it tries the next one in turn (after the usual
	// jittered backoff), so instances spread by listing the addresses in
	// different orders. A host name with several addresses is tried
	// address by address when dialing, too.
	ControlPlanes []string
	// TLSConfig holds the client certificate the instance presents and
	// the CAs it trusts for the control plane's certificate (and its
	// ServerName). It is used as is.
	TLSConfig *tls.Config
	// NodeID is the instance's UUID, stable across restarts (see
	// cache.Cache.NodeID).
	NodeID string
	// Hostname is the instance's host name as it reports it.
	Hostname string
	// Version is the Kong version the instance claims (node_version),
	// e.g. schema.KongVersion: the control plane checks its compatibility.
	Version string
	// Plugins lists the plugins the instance can run, with their versions.
	Plugins []wire.PluginInfo
	// Labels are sent in basic_info; nil sends none.
	Labels map[string]string
	// Applier compiles and serves configurations.
	Applier Applier
	// Metrics, when set, is served at GET /metrics on the status handler
	// (the runtime's Prometheus endpoint, as Kong's status API serves
	// its prometheus plugin's); nil leaves /metrics unrouted (404).
	Metrics http.Handler
	// Cache, when set, receives every applied revision and is read at
	// start when the Applier has no configuration yet.
	Cache *cache.Cache
	// Logger receives the agent's logs; defaults to slog.Default().
	Logger *slog.Logger
	// PingInterval is how often the instance pings with its hash; the
	// link is dropped after 1.5 intervals without any frame from the
	// control plane. Default DefaultPingInterval.
	PingInterval time.Duration
	// BackoffMin and BackoffMax bound the exponential reconnect delay;
	// each delay is drawn uniformly from [d/2, d). Defaults
	// DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds one connection attempt up to the upgrade.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration
	// OrphanRetry is the delay (before jitter) between the attempts of an
	// orphaned instance, which are logged at debug level after the first.
	// Default DefaultOrphanRetry.
	OrphanRetry time.Duration
	// Analytics, when set, is the outbox of analytics batches: the agent
	// announces wire.CapAnalytics and, on a link whose hello has it, sends
	// every buffered batch (oldest first, at most MaxTelemetryInFlight
	// unacknowledged at once) and removes each one the control plane
	// acknowledges. Unacknowledged batches are sent again on the next
	// link. nil announces no analytics and sends none.
	Analytics *analytics.Outbox
	// MaxPayload is the largest message accepted from the control plane,
	// in bytes; default wire.DefaultMaxPayload (16 MiB). Inflated frames
	// may be up to wire.DefaultMaxInflated.
	MaxPayload int64
}

// Agent maintains the link to the control plane. Create it with New, run
// it with Run, and read its state with Status or Handler.
type Agent struct {
	// Immutable after New.
	opts Options
	log  *slog.Logger
	// info is the basic_info sent on every link; each link adds the
	// hash and revision being served to a copy.
	info  wire.BasicInfo
	query string

	// cacheTried is set once LoadCache ran, so that Run does not read the
	// cache a second time.
	cacheTried atomic.Bool

	mu sync.Mutex // guards the fields below, which Status reports
	// revision is the revision number being served; 0 when unknown (a
	// Kong reconfigure frame or nothing loaded).
	revision int64
	// source says where the served configuration came from: "" (none),
	// "cache" or "control_plane".
	source         string
	connected      bool
	connectedSince time.Time
	// protocolVersion is the negotiated Gantry protocol version of the
	// current link; 0 for Kong's protocol or when disconnected.
	protocolVersion int
	lastError       string
	lastErrorAt     time.Time
	orphaned        bool
	orphanReason    string
	// current indexes Options.ControlPlanes: the address of the current
	// link, or of the next attempt.
	current int
	// endSession ends the current link (Reconnect); nil between links.
	endSession context.CancelFunc
	// rejected is the last configuration that failed to apply.
	rejected *Rejection
	// quarantine holds the last quarantineSize rejected configurations,
	// newest last, so that they are never built twice.
	quarantine []Rejection
}

// Rejection describes a configuration the instance refused.
type Rejection struct {
	// Revision is the revision number it came with (0 for a Kong frame).
	Revision int64 `json:"revision"`
	// ConfigHash is its hash.
	ConfigHash string `json:"config_hash"`
	// Message summarizes the failure.
	Message string `json:"message"`
	// Errors lists the entities at fault.
	Errors []wire.EntityError `json:"errors"`
	// At is when it was rejected (the first time).
	At time.Time `json:"at"`
}

// New checks opts, fills defaults and returns an idle Agent.
func New(opts Options) (*Agent, error) {
	var missing []string
	if len(opts.ControlPlanes) == 0 && opts.ControlPlane != "" {
		opts.ControlPlanes = []string{opts.ControlPlane}
	}
	opts.ControlPlanes = slices.Clone(opts.ControlPlanes)
	if len(opts.ControlPlanes) == 0 || slices.Contains(opts.ControlPlanes, "") {
		missing = append(missing, "ControlPlane")
	}
	if opts.TLSConfig == nil {
		missing = append(missing, "TLSConfig")
	}
	if opts.NodeID == "" {
		missing = append(missing, "NodeID")
	}
	if opts.Hostname == "" {
		missing = append(missing, "Hostname")
	}
	if opts.Version == "" {
		missing = append(missing, "Version")
	}
	if opts.Applier == nil {
		missing = append(missing, "Applier")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("agent: missing options: %s", strings.Join(missing, ", "))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// Status hands the map out; a private copy is never written again.
	opts.Labels = maps.Clone(opts.Labels)
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.BackoffMax < opts.BackoffMin {
		return nil, fmt.Errorf("agent: BackoffMax %s is below BackoffMin %s", opts.BackoffMax, opts.BackoffMin)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.OrphanRetry <= 0 {
		opts.OrphanRetry = DefaultOrphanRetry
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = wire.DefaultMaxPayload
	}
	caps := []string{wire.CapRevisions}
	if opts.Analytics != nil {
		caps = append(caps, wire.CapAnalytics)
	}
	info := wire.BasicInfo{
		Plugins: opts.Plugins,
		Labels:  opts.Labels,
		Gantry:  &wire.GantryHello{ProtocolVersion: wire.ProtocolVersion, Capabilities: caps},
	}
	if _, err := wire.EncodeBasicInfo(&info); err != nil {
		return nil, fmt.Errorf("agent: encode basic_info: %w", err)
	}
	q := wire.NodeQuery{NodeID: opts.NodeID, Hostname: opts.Hostname, Version: opts.Version}
	return &Agent{
		opts:  opts,
		log:   opts.Logger.With("component", "agent"),
		info:  info,
		query: q.RawQuery(),
	}, nil
}

// Run loads the cached configuration when the Applier has none, then
// keeps a link to the control plane until ctx ends, reconnecting after
// every failure. It returns nil when ctx ends; it never gives up on its
// own.
func (a *Agent) Run(ctx context.Context) error {
	if _, loaded := a.opts.Applier.Current(); !loaded && !a.cacheTried.Load() {
		a.LoadCache(ctx)
	}
	attempt := 0
	quiet := false // the orphaned instance said once that it retries quietly
	for {
		if attempt == 0 {
			a.log.Info("connecting to control plane", "address", a.address(), "node_id", a.opts.NodeID)
		}
		sctx, end := context.WithCancel(ctx)
		a.mu.Lock()
		a.endSession = end
		a.mu.Unlock()
		received, err := a.session(sctx)
		a.mu.Lock()
		a.endSession = nil
		a.mu.Unlock()
		end()
		if ctx.Err() != nil {
			return nil //nolint:nilerr // a cancelled ctx is a clean stop; the session's error is its consequence
		}
		if received {
			// The link worked; start the backoff over.
			attempt = 0
		}
		if errors.Is(err, context.Canceled) {
			// Reconnect asked for a new link.
			a.log.Info("reconnecting to the control plane", "address", a.address())
			attempt = 0
			if !a.pause(ctx, a.backoff(0)) {
				return nil
			}
			continue
		}
		delay := a.backoff(attempt)
		attempt++
		a.setError(err)
		failed := a.address()
		next := a.nextAddress()
		a.mu.Lock()
		orphaned := a.orphaned
		a.mu.Unlock()
		switch {
		case orphaned:
			// Its group is gone: nothing will change soon, so neither side's log should
			// fill with the same refusal.
			delay = a.opts.OrphanRetry/2 + rand.N(a.opts.OrphanRetry/2+1) //nolint:gosec // jitter needs no unpredictability
			if !quiet {
				quiet = true
				a.log.Warn("orphaned: retrying the control plane quietly in case this instance's certificate is pinned to a group again",
					"every", a.opts.OrphanRetry, "error", explain(err))
			} else {
				a.log.Debug("orphaned: control plane connection failed", "address", failed, "error", explain(err), "retry_in", delay.Round(time.Millisecond))
			}
		default:
			quiet = false
			a.log.Warn("control plane connection failed", "address", failed, "error", explain(err), "retry_in", delay.Round(time.Millisecond), "next_address", next)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// basicInfo encodes the basic_info of a new link: the instance's plugins
// and labels, and the configuration it serves now, so that the control
// plane sends nothing it already runs.
func (a *Agent) basicInfo() ([]byte, error) {
	info := a.info
	hello := *info.Gantry
	if hash, loaded := a.opts.Applier.Current(); loaded && hash != "" {
		a.mu.Lock()
		hello.ConfigHash, hello.Revision = hash, a.revision
		a.mu.Unlock()
	}
	info.Gantry = &hello
	return wire.EncodeBasicInfo(&info)
}

// pause waits d, or until ctx ends (false).
func (a *Agent) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Reconnect ends the current link, if any; Run connects again after its
// usual short delay (with a renewed client certificate, say). Serving is not
// affected.
func (a *Agent) Reconnect() {
	a.mu.Lock()
	end := a.endSession
	a.mu.Unlock()
	if end != nil {
		end()
	}
}

// address returns the control plane address of the current link or the
// next attempt.
func (a *Agent) address() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.opts.ControlPlanes[a.current]
}

// nextAddress moves on to the next control plane address (the same one
// when there is only one) and returns it.
func (a *Agent) nextAddress() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.current = (a.current + 1) % len(a.opts.ControlPlanes)
	return a.opts.ControlPlanes[a.current]
}

// backoff returns the delay before reconnect attempt n (0-based):
// min(max, min·2ⁿ), jittered uniformly into [d/2, d) so that a fleet
// that lost its control plane together does not return in lockstep.
func (a *Agent) backoff(n int) time.Duration {
	d := a.opts.BackoffMax
	if n < 30 {
		d = min(a.opts.BackoffMin<<n, a.opts.BackoffMax)
	}
	half := d / 2
	return half + rand.N(d-half+1) //nolint:gosec // jitter needs no unpredictability
}

// LoadCache applies the cached configuration, if there is one that
// verifies. A missing, truncated or corrupted cache is logged and
// ignored; nothing from it is applied. It reports whether a
// configuration was loaded. Run calls it unless it was called before; it
// is exported for callers that want the cache loaded before Run starts.
func (a *Agent) LoadCache(ctx context.Context) bool {
	a.cacheTried.Store(true)
	if a.opts.Cache == nil {
		return false
	}
	e, err := a.opts.Cache.Load(ctx)
	switch {
	case errors.Is(err, cache.ErrNotFound):
		a.log.Info("no cached configuration; waiting for the control plane", "cache_dir", a.opts.Cache.Dir())
		return false
	case err != nil:
		a.log.Error("cached configuration refused, not loading any of it", "error", err)
		return false
	}
	errs, err := a.opts.Applier.Apply(ctx, e.Config, e.ConfigHash)
	if err != nil || len(errs) > 0 {
		a.log.Error("cached configuration failed to apply", "revision", e.Revision, "config_hash", e.ConfigHash, "error", err, "entity_errors", len(errs))
		return false
	}
	a.mu.Lock()
	a.revision, a.source = e.Revision, "cache"
	a.mu.Unlock()
	a.log.Info("serving cached configuration", "revision", e.Revision, "config_hash", e.ConfigHash, "saved_at", e.SavedAt)
	return true
}

func (a *Agent) setError(err error) {
	if err == nil {
		return
	}
	a.mu.Lock()
	a.lastError, a.lastErrorAt = explain(err), time.Now()
	a.mu.Unlock()
}

// setOrphaned marks the instance orphaned: its group is gone, and it keeps
// serving what it has.
func (a *Agent) setOrphaned(reason string) {
	a.mu.Lock()
	was := a.orphaned
	a.orphaned, a.orphanReason = true, reason
	a.mu.Unlock()
	if !was {
		hash, _ := a.opts.Applier.Current()
		a.log.Warn("runtime group deleted: this instance is orphaned and keeps serving its last configuration",
			"reason", reason, "config_hash", hash)
	}
}

// Status is what the instance reports about itself at /status.
type Status struct {
	// NodeID, Hostname and Version are what the instance announces.
	NodeID   string `json:"node_id"`
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
	// ConfigurationHash is the hash of the configuration being served;
	// 32 zeros when none (as Kong reports it).
	ConfigurationHash string `json:"configuration_hash"`
	// ConfigurationLoaded says whether any configuration is served.
	ConfigurationLoaded bool `json:"configuration_loaded"`
	// ConfigurationSource is "control_plane", "cache" or "" (none).
	ConfigurationSource string `json:"configuration_source"`
	// Revision is the revision number served; 0 when unknown.
	Revision int64 `json:"revision"`
	// Labels are the labels the instance announces; omitted when none.
	Labels map[string]string `json:"labels,omitempty"`
	// ControlPlane is the address the instance is connected to, or
	// connects to next.
	ControlPlane string `json:"control_plane"`
	// ControlPlanes are every address the instance fails over between.
	ControlPlanes []string `json:"control_planes"`
	// Connected says whether a link to the control plane is up now.
	Connected bool `json:"connected"`
	// ConnectedSince is when the current link came up; nil when down.
	ConnectedSince *time.Time `json:"connected_since"`
	// ProtocolVersion is the Gantry protocol version of the current link;
	// 0 when down or when the control plane speaks only Kong's protocol.
	ProtocolVersion int `json:"protocol_version"`
	// LastError says why the last link failed or ended; it stays set
	// after a reconnect, with LastErrorAt telling when.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// Orphaned is true once the control plane said the instance's group
	// was deleted; the instance keeps serving its last configuration.
	Orphaned     bool   `json:"orphaned"`
	OrphanReason string `json:"orphan_reason,omitempty"`
	// LastRejected is the last configuration the instance refused.
	LastRejected *Rejection `json:"last_rejected,omitempty"`
}

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() Status {
	hash, loaded := a.opts.Applier.Current()
	if !loaded || hash == "" {
		hash = wire.EmptyConfigHash
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Status{
		NodeID: a.opts.NodeID, Hostname: a.opts.Hostname, Version: a.opts.Version,
		ConfigurationHash: hash, ConfigurationLoaded: loaded, ConfigurationSource: a.source,
		Revision: a.revision, Labels: a.opts.Labels, ControlPlane: a.opts.ControlPlanes[a.current], ControlPlanes: a.opts.ControlPlanes,
		Connected: a.connected, ProtocolVersion: a.protocolVersion,
		LastError: a.lastError, Orphaned: a.orphaned, OrphanReason: a.orphanReason,
	}
	if !loaded {
		s.ConfigurationSource = ""
	}
	if a.connected {
		t := a.connectedSince
		s.ConnectedSince = &t
	}
	if !a.lastErrorAt.IsZero() {
		t := a.lastErrorAt
		s.LastErrorAt = &t
	}
	if a.rejected != nil {
		r := *a.rejected
		s.LastRejected = &r
	}
	return s
}

// Handler serves the status endpoints:
//
//	GET /status        200, the Status as JSON
//	GET /status/ready  200 {"message":"ready"} once a configuration is
//	                   loaded, 503 {"message":"no configuration available (…)"}
//	                   before, as Kong's status API does
//	GET /metrics       Options.Metrics, when set
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	if a.opts.Metrics != nil {
		mux.Handle("GET /metrics", a.opts.Metrics)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("GET /status/ready", func(w http.ResponseWriter, r *http.Request) {
		if _, loaded := a.opts.Applier.Current(); loaded {
			writeJSON(w, http.StatusOK, map[string]string{"message": "ready"})
			return
		}
		why := "none received from the control plane yet and no usable cache"
		a.mu.Lock()
		if !a.connected && a.lastError != "" {
			why = "control plane unreachable and no usable cache: " + a.lastError
		}
		a.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "no configuration available (" + why + ")"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
