// Package cluster is the control plane's side of its runtime instances: the mTLS cluster
// listener speaking Kong's hybrid protocol (/v1/outlet) plus Gantry's extension, the client
// certificates pinned to each runtime group, the push of every committed revision to the
// group's connected instances, and the node catalogue.
//
// Trust: an instance is admitted only with a client certificate pinned to a group (one the user
// brought, or one generated from the control plane's CA). The pin decides the group, and the
// instance only ever receives that group's configuration.
//
// Push: entitystore commits (and, with several control plane processes on one PostgreSQL
// database, a short revision poll) wake the group's pusher. It builds the newest snapshot once
// (snapshot.Builder) and offers it to every instance of the group; each instance keeps only the
// newest pending offer, so bursts coalesce, and an instance whose reported hash already equals
// the snapshot's is sent nothing.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/snapshot"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
	"github.com/google/uuid"
)

// Defaults of Options.
const (
	// DefaultPurgeDelay is Kong's cluster_data_plane_purge_delay: 14 days.
	DefaultPurgeDelay = 14 * 24 * time.Hour
	// DefaultPingWait is Kong's PING_WAIT: a link silent this long is dropped.
	DefaultPingWait = 45 * time.Second
	// DefaultPollInterval is how often the revisions of groups with connected instances are
	// read, to catch commits made by other control plane processes.
	DefaultPollInterval = 2 * time.Second
	// DefaultMinPushInterval spaces consecutive pushes to one group: the first change goes out
	// at once, the ones that follow within this window go out together (Kong batches the same
	// way, with 5 s).
	DefaultMinPushInterval = 100 * time.Millisecond
	// DefaultFlushInterval is how often changed node state is written to the catalogue.
	DefaultFlushInterval = 500 * time.Millisecond
)

// Options configure New.
type Options struct {
	// Store is the database; required. Its migrations must include 0003_cluster.
	Store *sqlstore.Store
	// Entities is the configuration store; required. New subscribes to its commits.
	Entities *entitystore.Store
	// Logger receives refusals, pushes and failures; defaults to discarding them.
	Logger *slog.Logger
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time

	// CACertPEM and CAKeyPEM, when set (both), are the user's CA: it signs the listener's
	// certificate and generated client certificates. Otherwise the CA stored in the database is
	// used, created on first start.
	CACertPEM, CAKeyPEM []byte
	// ServerNames are the DNS names and IP addresses the listener's certificate carries (what
	// instances use as cluster_server_name). Defaults to localhost, 127.0.0.1, ::1 and the host
	// name.
	ServerNames []string
	// ServerCertificate, when set, supplies the listener's certificate (a certificate from the
	// user's own PKI, reloaded when renewed) instead of one issued from the CA for ServerNames.
	// Instances must then trust its issuer.
	ServerCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// KongVersion is the Kong version whose protocol the control plane speaks, used for Kong's
	// version checks; defaults to schema.KongVersion.
	KongVersion string
	// Plugins are the plugins the control plane knows, checked against each Kong data plane's
	// list before every push; defaults to the bundled plugins of the schema.
	Plugins []wire.PluginInfo

	// PurgeDelay is how long a node may stay silent before it leaves the catalogue; defaults
	// to DefaultPurgeDelay.
	PurgeDelay time.Duration
	// PingWait is how long a link may stay silent before it is dropped, and how long a node may
	// go without a ping before it counts as disconnected; defaults to DefaultPingWait.
	PingWait time.Duration
	// PollInterval: see DefaultPollInterval. Negative disables the poll.
	PollInterval time.Duration
	// MinPushInterval: see DefaultMinPushInterval. Negative means no spacing.
	MinPushInterval time.Duration
	// FlushInterval: see DefaultFlushInterval.
	FlushInterval time.Duration
	// WriteTimeout bounds one frame write; defaults to 30 s.
	WriteTimeout time.Duration

	// Analytics, if set, stores the analytics batches of Gantry runtimes; the control plane then
	// announces wire.CapAnalytics. Without it the capability is not offered, and runtimes keep
	// their batches.
	Analytics Ingester
	// AnalyticsQueue bounds the analytics batches of one link waiting to be stored; defaults to
	// DefaultAnalyticsQueue.
	AnalyticsQueue int
	// AnalyticsTimeout bounds the storing of one analytics batch; defaults to 30 s.
	AnalyticsTimeout time.Duration

	// ProcessID names this control plane process among those sharing the database (the
	// control_plane_nodes registry, and which process holds each instance's link); defaults to
	// a new UUID, so each start is a new process.
	ProcessID string
	// Hostname, Version and APIAddress describe this process in the registry; Hostname
	// defaults to the machine's.
	Hostname, Version, APIAddress string
	// EnrolledCertValidity is how long certificates issued by enrollment and renewal are valid;
	// defaults to DefaultEnrolledCertValidity.
	EnrolledCertValidity time.Duration
	// HeartbeatInterval is how often this process refreshes its registry row; a process silent
	// for three intervals counts as gone, and the instances it held as disconnected. Defaults to
	// DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
}

// DefaultAnalyticsQueue is the default of Options.AnalyticsQueue: a runtime flushes every 10 s,
// so 8 batches waiting means the database has been slow for over a minute.
const DefaultAnalyticsQueue = 8

// Ingester stores analytics batches (package internal/cp/analytics implements it). The link
// acknowledges a batch with a telemetry_ack once IngestAnalytics returned nil, which must mean the
// batch is durably stored, was a duplicate of a stored one (same node id and seq), or is
// discarded for good (its group is gone, its minutes are past retention). An error means nothing
// was stored: the batch is not acknowledged and the runtime sends it again after reconnecting.
type Ingester interface {
	IngestAnalytics(ctx context.Context, groupID, nodeID string, seq int64, b *telemetry.Batch) error
}

// Cluster is the cluster side of the control plane. Build it with New, serve instances with
// Serve, and mount its API with Mount. Safe for concurrent use.
type Cluster struct {
	opts      Options // immutable after New
	st        *sqlstore.Store
	es        *entitystore.Store
	snaps     *snapshot.Builder
	log       *slog.Logger
	now       func() time.Time
	ca        *authority
	tlsConfig *tls.Config
	nodes     nodeStore
	hub       *hub
	local     wire.GantryHello
	// started is when New ran: the process's start in the registry.
	started time.Time
	// listenAddr is the cluster listener's bound address: set by Serve before it starts the
	// goroutines that read it, and never again.
	listenAddr string
}

// New checks opts, loads (or creates) the CA, issues the listener's certificate and subscribes
// to configuration commits.
func New(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Store == nil {
		return nil, errors.New("cluster: Store is required")
	}
	if opts.Entities == nil {
		return nil, errors.New("cluster: Entities is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.ServerNames) == 0 {
		opts.ServerNames = []string{"localhost", "127.0.0.1", "::1"}
		if h, err := os.Hostname(); err == nil && h != "" {
			opts.ServerNames = append(opts.ServerNames, h)
		}
	}
	if opts.KongVersion == "" {
		opts.KongVersion = schema.KongVersion
	}
	if _, _, ok := wire.ParseMajorMinor(opts.KongVersion); !ok {
		return nil, fmt.Errorf("cluster: KongVersion %q is not x.y.z", opts.KongVersion)
	}
	if opts.Plugins == nil {
		for _, p := range schema.Plugins() {
			opts.Plugins = append(opts.Plugins, wire.PluginInfo{Name: p.Name, Version: p.Version})
		}
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDefault(&opts.PurgeDelay, DefaultPurgeDelay)
	setDefault(&opts.PingWait, DefaultPingWait)
	setDefault(&opts.PollInterval, DefaultPollInterval)
	setDefault(&opts.MinPushInterval, DefaultMinPushInterval)
	setDefault(&opts.FlushInterval, DefaultFlushInterval)
	setDefault(&opts.WriteTimeout, 30*time.Second)
	setDefault(&opts.AnalyticsTimeout, 30*time.Second)
	setDefault(&opts.HeartbeatInterval, DefaultHeartbeatInterval)
	setDefault(&opts.EnrolledCertValidity, DefaultEnrolledCertValidity)
	if opts.ProcessID == "" {
		opts.ProcessID = uuid.NewString()
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname() // informational only
	}
	if opts.AnalyticsQueue <= 0 {
		opts.AnalyticsQueue = DefaultAnalyticsQueue
	}
	if opts.PurgeDelay < time.Minute {
		// Kong requires at least 60 s, so that a node is never purged between two pings.
		return nil, fmt.Errorf("cluster: PurgeDelay %s is shorter than a minute", opts.PurgeDelay)
	}

	snaps, err := snapshot.New(snapshot.Options{Entities: opts.Entities, Now: opts.Now, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	ca, err := loadCA(ctx, opts.Store, opts.CACertPEM, opts.CAKeyPEM, opts.Now())
	if err != nil {
		return nil, err
	}
	serverCert, err := ca.issueServer(opts.ServerNames, opts.Now())
	if err != nil {
		return nil, err
	}
	caps := []string{wire.CapRevisions, wire.CapTelemetry}
	if opts.Analytics != nil {
		caps = append(caps, wire.CapAnalytics)
	}
	c := &Cluster{
		opts: opts, st: opts.Store, es: opts.Entities, snaps: snaps, log: opts.Logger.With("component", "cluster"),
		now: opts.Now, ca: ca, nodes: nodeStore{st: opts.Store}, started: opts.Now(),
		local: wire.GantryHello{ProtocolVersion: wire.ProtocolVersion, Capabilities: caps},
	}
	c.hub = newHub(c)
	c.tlsConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{serverCert},
		// Any certificate is requested; trust is decided by verifyPeer (pins and the CA), not by
		// Go's chain verification alone, so that each refusal is logged with its reason. A
		// connection without one may only enroll (wire.EnrollPath); the handler refuses it
		// everything else.
		ClientAuth: tls.RequestClientCert,
		NextProtos: []string{"http/1.1"},
	}
	if opts.ServerCertificate != nil {
		// Go consults GetCertificate only when Certificates is empty or the client sent SNI.
		c.tlsConfig.Certificates, c.tlsConfig.GetCertificate = nil, opts.ServerCertificate
	}
	c.tlsConfig.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cfg := c.tlsConfig.Clone()
		cfg.GetConfigForClient = nil
		remote := hello.Conn.RemoteAddr().String()
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // enrollment only: the handler checks
			}
			_, err := c.identify(hello.Context(), cs.PeerCertificates)
			if err != nil {
				c.log.Warn("refused runtime instance at the TLS handshake", "remote", remote, "reason", err.Error())
			}
			return err
		}
		return cfg, nil
	}
	// After each commit: push to the group's instances, and build its configuration even when
	// none is connected, so that the revision's history row gets its hash.
	opts.Entities.OnCommit(func(groupID string, _ int64) {
		c.hub.wake(groupID)
		c.snaps.BuildSoon(groupID)
	})
	go c.snaps.Run(ctx)
	return c, nil
}

// CACertPEM returns the CA instances must trust for the cluster listener (Kong's
// cluster_ca_cert).
func (c *Cluster) CACertPEM() []byte { return slices.Clone(c.ca.certPEM) }

// TLSConfig returns the listener's TLS configuration (TLS 1.2+, client certificate required).
func (c *Cluster) TLSConfig() *tls.Config { return c.tlsConfig.Clone() }

// Snapshots returns the snapshot builder the cluster pushes from.
func (c *Cluster) Snapshots() *snapshot.Builder { return c.snaps }

// peerIdentity is what a verified client certificate says about its instance.
type peerIdentity struct {
	groupID     string
	fingerprint string
	expiry      time.Time
	// labels and tokenID come from the enrollment token that issued the certificate.
	labels  map[string]string
	tokenID string
	// groupDeleted: the certificate was generated for a group that no longer exists. It passes
	// the handshake so that the upgrade can be refused with a reason the instance logs.
	groupDeleted bool
}

type identityKey struct{}

// identify decides whether a client certificate chain may connect, and for which group.
func (c *Cluster) identify(ctx context.Context, chain []*x509.Certificate) (peerIdentity, error) {
	if len(chain) == 0 {
		return peerIdentity{}, errors.New("no client certificate")
	}
	leaf := chain[0]
	now := c.now()
	fp := Fingerprint(leaf)
	desc := fmt.Sprintf("client certificate %q (sha256 %s)", leaf.Subject.CommonName, fp)
	if now.After(leaf.NotAfter) {
		return peerIdentity{}, fmt.Errorf("%s expired at %s", desc, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return peerIdentity{}, fmt.Errorf("%s is not valid before %s", desc, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pin, err := c.certByFingerprint(ctx, fp)
	if err == nil {
		return peerIdentity{groupID: pin.GroupID, fingerprint: fp, expiry: leaf.NotAfter, labels: pin.Labels, tokenID: pin.EnrollmentTokenID}, nil
	}
	if !isNotFound(err) {
		return peerIdentity{}, fmt.Errorf("looking up %s: %w", desc, err)
	}
	group := groupOfCert(leaf)
	if group == "" || !c.signedByCA(chain) {
		return peerIdentity{}, fmt.Errorf("%s is not pinned to any runtime group", desc)
	}
	exists, err := c.groupExists(ctx, group)
	if err != nil {
		return peerIdentity{}, fmt.Errorf("looking up the group of %s: %w", desc, err)
	}
	if exists {
		return peerIdentity{}, fmt.Errorf("%s was issued for runtime group %s but is no longer pinned to it", desc, group)
	}
	return peerIdentity{groupID: group, fingerprint: fp, expiry: leaf.NotAfter, groupDeleted: true}, nil
}

func (c *Cluster) signedByCA(chain []*x509.Certificate) bool {
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.cert)
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: c.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func (c *Cluster) groupExists(ctx context.Context, groupID string) (bool, error) {
	var one int
	err := c.st.DB().QueryRowContext(ctx, c.st.Rebind(`SELECT 1 FROM runtime_groups WHERE id = ?`), groupID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Handler serves /v1/outlet on a connection whose TLS handshake passed. Serve uses it; it is
// exported for callers that run their own TLS listener with TLSConfig.
func (c *Cluster) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.OutletPath, c.serveOutlet)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.EnrollPath && r.TLS != nil {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeMessage(w, http.StatusMethodNotAllowed, "enrollment is POST "+wire.EnrollPath)
				return
			}
			c.serveEnroll(w, r)
			return
		}
		renew := r.URL.Path == wire.RenewPath
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, `{"message":"a client certificate is required"}`, http.StatusUnauthorized)
			return
		}
		id, err := c.identify(r.Context(), r.TLS.PeerCertificates)
		if err != nil {
			c.log.WarnContext(r.Context(), "refused runtime instance", "remote", r.RemoteAddr, "reason", err.Error())
			writeMessage(w, http.StatusUnauthorized, err.Error())
			return
		}
		if id.groupDeleted {
			msg := "runtime group " + id.groupID + " was deleted: this instance is orphaned and keeps serving its last configuration"
			c.log.WarnContext(r.Context(), "refused runtime instance", "remote", r.RemoteAddr, "group", id.groupID, "reason", msg)
			writeMessage(w, http.StatusForbidden, msg)
			return
		}
		if renew {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				writeMessage(w, http.StatusMethodNotAllowed, "renewal is POST "+wire.RenewPath)
				return
			}
			c.serveRenew(w, r, id)
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// Serve accepts instances on ln (a plain TCP listener; Serve adds TLS) and runs the background
// work (revision poll, catalogue flush, purge) until ctx ends. It then closes every link with
// "going away", marks their nodes disconnected and returns nil.
func (c *Cluster) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           c.Handler(),
		TLSConfig:         c.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		// Handshake failures Go reports itself (no certificate at all, bad TLS) are refusals too.
		ErrorLog:    slog.NewLogLogger(c.log.Handler(), slog.LevelInfo),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	c.listenAddr = ln.Addr().String()
	// The registry row goes in before any instance connects, so that the links this process
	// records are never shown as held by an unknown process.
	if err := c.heartbeat(ctx); err != nil {
		c.log.Warn("cannot register this control plane process; retrying with the next heartbeat", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { c.hub.background(ctx) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	c.log.Info("cluster listener ready", "addr", ln.Addr().String())
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("cluster listener: %w", err)
	case <-ctx.Done():
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		c.log.Warn("cluster listener shutdown", "err", err)
	}
	c.hub.closeAll("control plane is shutting down")
	wg.Wait()
	c.hub.flush(sctx)
	c.leave(sctx)
	return err
}

// GroupDeleted tells the instances of a deleted group that they are orphaned and closes their
// links (they keep serving their last configuration); wire it to api.Options.OnGroupDeleted.
func (c *Cluster) GroupDeleted(groupID string) {
	c.snaps.Forget(groupID)
	c.hub.orphan(groupID)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// writeMessage answers with Kong's error body, which Kong's data plane logs.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
