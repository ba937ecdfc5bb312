// Package server runs the control plane: it opens the store, creates the first organization on
// first start, and serves the HTTP API until its context ends, then shuts down gracefully.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gantry-gw/gantry/internal/certfile"
	"github.com/gantry-gw/gantry/internal/config/backup"
	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/gantry-gw/gantry/internal/cp/analytics"
	"github.com/gantry-gw/gantry/internal/cp/analytics/analyticsapi"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/audit"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/cluster"
	"github.com/gantry-gw/gantry/internal/cp/declarative"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/identity"
	"github.com/gantry-gw/gantry/internal/cp/password"
	"github.com/gantry-gw/gantry/internal/cp/provision"
	"github.com/gantry-gw/gantry/internal/cp/revisions"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/google/uuid"
)

// Options configure Run. Zero values take the documented defaults of `gantry serve`.
type Options struct {
	Listen      string // HTTP API address; required.
	DataDir     string // SQLite directory when DatabaseURL is empty.
	DatabaseURL string // postgres://… to run on PostgreSQL.
	Region      string // required.
	// OrgName names the organization created on first start.
	OrgName string
	// AdminToken, when set, is the administrator's token: used as the first token on first
	// start, and added again on later starts if it is not stored.
	AdminToken string
	// AdminEmail is the administrator's login email, set on first start (and on the first start
	// after an upgrade that introduced logins); empty takes DefaultAdminEmail.
	AdminEmail string
	// AdminPassword is the administrator's password, set when the administrator has none yet;
	// empty generates one, printed once to Out. It must pass the password strength rule.
	AdminPassword string
	// SessionIdleTimeout and SessionMaxAge bound console sessions; zero takes
	// api.DefaultSessionIdleTimeout and api.DefaultSessionMaxAge.
	SessionIdleTimeout, SessionMaxAge time.Duration
	// ClusterEndpoint is the URL runtime instances use to reach this control plane; its host is
	// also put in the cluster listener's certificate.
	ClusterEndpoint string
	// ClusterListen is the cluster listener's address (mTLS, /v1/outlet); empty disables it.
	ClusterListen string
	// ClusterCACertFile and ClusterCAKeyFile name a user CA (PEM) for the cluster; when empty,
	// the CA stored in the database is used (created on first start).
	ClusterCACertFile, ClusterCAKeyFile string
	// TLSCertFile and TLSKeyFile, when set (both), serve the HTTP API over TLS with that pair,
	// reloaded on SIGHUP and when the files change; plain HTTP is then answered with 400.
	TLSCertFile, TLSKeyFile string
	// EnrolledCertValidity is how long certificates issued by enrollment are valid; zero takes
	// cluster.DefaultEnrolledCertValidity.
	EnrolledCertValidity time.Duration
	// ClusterTLSCertFile and ClusterTLSKeyFile, when set (both), are the cluster listener's
	// certificate (reloaded likewise) instead of one issued from the cluster CA.
	ClusterTLSCertFile, ClusterTLSKeyFile string
	// ClusterReady, if set, is called with the bound cluster address once it accepts instances.
	ClusterReady func(addr net.Addr)
	// ShutdownTimeout bounds how long in-flight requests may take to finish after a stop signal.
	ShutdownTimeout time.Duration
	// Logger receives the control plane's logs; nil discards them.
	Logger *slog.Logger
	// Out receives the messages meant for the person who started the process (the one-time admin
	// token, where the API listens).
	Out io.Writer
	// Ready, if set, is called with the bound API address once the server accepts connections.
	Ready func(addr net.Addr)
	// Routes, if set, is called with every route pattern mounted behind authentication once
	// the API is assembled, before it serves.
	Routes func(patterns []string)

	// AnalyticsMinuteRetention, AnalyticsHourRetention and AnalyticsDayRetention are how long
	// analytics rows of each level are kept; zero takes analytics' defaults (48h, 90 days, 2
	// years).
	AnalyticsMinuteRetention, AnalyticsHourRetention, AnalyticsDayRetention time.Duration
	// AnalyticsRollupInterval is how often analytics are rolled up and retention applied; zero
	// takes analytics.DefaultRollupInterval.
	AnalyticsRollupInterval time.Duration
	// RevisionRetention says which revisions of each group's history are kept; nil takes
	// entitystore.DefaultRetention (the last 1,000 and every one of the last 30 days).
	RevisionRetention *entitystore.Retention
	// AuditRetention is how long audit log entries are kept; zero takes audit.DefaultRetention
	// (365 days).
	AuditRetention time.Duration
	// Now returns the current time for analytics; defaults to time.Now.
	Now func() time.Time
	// Version is the gantry version this process runs, shown in the registry of control plane
	// processes (GET /v2/control-plane-nodes).
	Version string
}

// DefaultAdminEmail is the administrator's login when no email is configured.
const DefaultAdminEmail = "admin@localhost"

func (o *Options) check() error {
	if o.Listen == "" {
		return errors.New("listen address is required (--listen)")
	}
	if o.Region == "" {
		return errors.New("region is required (--region)")
	}
	if o.DatabaseURL == "" && o.DataDir == "" {
		return errors.New("give --data-dir for SQLite or --database-url for PostgreSQL")
	}
	if o.OrgName == "" {
		o.OrgName = "Default Organization"
	}
	if o.AdminEmail == "" {
		o.AdminEmail = DefaultAdminEmail
	}
	if !identity.ValidEmail(o.AdminEmail) {
		return fmt.Errorf("the admin email %q is not a valid email address (--admin-email, GANTRY_ADMIN_EMAIL)", o.AdminEmail)
	}
	if o.AdminPassword != "" {
		if err := password.CheckStrength(o.AdminPassword); err != nil {
			return fmt.Errorf("the admin password (GANTRY_ADMIN_PASSWORD) %w", err)
		}
	}
	if o.SessionIdleTimeout < 0 || o.SessionMaxAge < 0 {
		return errors.New("--session-idle-timeout and --session-max-age must not be negative")
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

// Run serves the control plane until ctx is cancelled, then stops accepting connections, lets
// in-flight requests finish (up to ShutdownTimeout) and closes the database.
func Run(ctx context.Context, opts Options) error {
	if err := opts.check(); err != nil {
		return err
	}
	log := opts.Logger
	st, err := sqlstore.Open(ctx, sqlstore.Options{DatabaseURL: opts.DatabaseURL, DataDir: opts.DataDir, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close database", "err", err)
		} else {
			log.Info("database closed")
		}
	}()
	if err := bootstrap(ctx, st, opts); err != nil {
		return err
	}
	an, err := analytics.New(analytics.Options{Store: st, Logger: log, Now: opts.Now,
		MinuteRetention: opts.AnalyticsMinuteRetention, HourRetention: opts.AnalyticsHourRetention, DayRetention: opts.AnalyticsDayRetention,
		RollupInterval: opts.AnalyticsRollupInterval})
	if err != nil {
		return err
	}
	// One entity store: the cluster follows the commits the Admin API makes through it.
	es := entitystore.New(st)
	// History records who made each change: the token and user of the request.
	es.SetActor(func(ctx context.Context) entitystore.Actor {
		p, _ := api.PrincipalFrom(ctx)
		return entitystore.Actor{UserID: p.UserID, TokenID: p.TokenID}
	})
	apiCert, err := certPair(opts.TLSCertFile, opts.TLSKeyFile, "--tls-cert", "--tls-key", log)
	if err != nil {
		return err
	}
	clusterCert, err := certPair(opts.ClusterTLSCertFile, opts.ClusterTLSKeyFile, "--cluster-tls-cert", "--cluster-tls-key", log)
	if err != nil {
		return err
	}
	if apiCert != nil || clusterCert != nil {
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		go watchCerts(wctx, log, apiCert, clusterCert)
	}
	cl, err := newCluster(ctx, st, es, an, opts, clusterCert)
	if err != nil {
		return err
	}
	decl, err := declarative.New(declarative.Options{Entities: es, Logger: log})
	if err != nil {
		return err
	}
	a, err := api.New(api.Options{Store: st, Logger: log, Region: opts.Region, ClusterEndpoint: opts.ClusterEndpoint, TelemetryEndpoint: opts.ClusterEndpoint,
		OnGroupDeleted: cl.GroupDeleted, InstanceCounts: cl.InstanceCounts, Traffic: groupTraffic(an, log), Backup: groupBackup(decl, cl),
		SessionIdleTimeout: opts.SessionIdleTimeout, SessionMaxAge: opts.SessionMaxAge})
	if err != nil {
		return err
	}
	auditLog, err := audit.New(audit.Options{Store: st, Logger: log, Retention: opts.AuditRetention})
	if err != nil {
		return err
	}
	auditLog.Mount(a)
	// Other processes sharing a PostgreSQL database announce changes of roles, teams and
	// memberships; this one then reads the grants it cached again.
	if st.Dialect() == "postgres" {
		gctx, gcancel := context.WithCancel(ctx)
		gdone := make(chan struct{})
		go func() {
			defer close(gdone)
			if err := st.ListenRevisions(gctx, sqlstore.ListenOptions{OnGrants: a.InvalidateGrants}); err != nil {
				log.Error("grant notifications", "err", err)
			}
		}()
		defer func() { gcancel(); <-gdone }()
	}
	ids, err := identity.New(identity.Options{Store: st, Logger: log, Audit: identityAudit(ctx, st, auditLog, log)})
	if err != nil {
		return err
	}
	ids.Mount(a)
	if err := adminapi.Register(a, es, log); err != nil {
		return err
	}
	cl.Mount(a)
	aapi, err := analyticsapi.New(analyticsapi.Options{Analytics: an, Store: st, Entities: es, Region: opts.Region,
		NodeNames: cl.NodeHostnames, Now: opts.Now, Logger: log})
	if err != nil {
		return err
	}
	aapi.Mount(a)
	revs, err := revisions.New(revisions.Options{Entities: es, Logger: log})
	if err != nil {
		return err
	}
	revs.Mount(a)
	decl.Mount(a)
	auctx, aucancel := context.WithCancel(ctx)
	audone := make(chan struct{}, 2)
	go func() { defer func() { audone <- struct{}{} }(); auditLog.RunRetention(auctx) }()
	go func() { defer func() { audone <- struct{}{} }(); auditLog.RunWebhooks(auctx) }()
	defer func() { aucancel(); <-audone; <-audone }()
	prov := provision.New(provision.Options{ClusterEndpoint: opts.ClusterEndpoint, Logger: log})
	defer func() { _ = prov.Close() }()
	prov.Mount(a)
	retention := entitystore.DefaultRetention
	if opts.RevisionRetention != nil {
		retention = *opts.RevisionRetention
	}
	rctx, rcancel := context.WithCancel(ctx)
	rdone := make(chan struct{})
	go func() { defer close(rdone); revs.RunRetention(rctx, retention, 0) }()
	defer func() { rcancel(); <-rdone }()
	actx, acancel := context.WithCancel(ctx)
	adone := make(chan error, 1)
	go func() { adone <- an.Run(actx) }()
	defer func() {
		acancel()
		if err := <-adone; err != nil {
			log.Error("analytics rollup job", "err", err)
		}
	}()
	if opts.Routes != nil {
		opts.Routes(a.Routes())
	}
	var lc net.ListenConfig
	if opts.ClusterListen != "" {
		cln, err := lc.Listen(ctx, "tcp", opts.ClusterListen)
		if err != nil {
			return fmt.Errorf("cluster listen on %s (choose another with --cluster-listen): %w", opts.ClusterListen, err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		cdone := make(chan error, 1)
		go func() { cdone <- cl.Serve(cctx, cln) }()
		defer func() {
			ccancel()
			if err := <-cdone; err != nil {
				log.Error("cluster listener", "err", err)
			}
		}()
		if opts.ClusterReady != nil {
			opts.ClusterReady(cln.Addr())
		}
	}
	ln, err := lc.Listen(ctx, "tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (is another process using it? choose another with --listen): %w", opts.Listen, err)
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	scheme := "http"
	if apiCert != nil {
		scheme = "https"
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: apiCert.GetCertificate}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	log.Info("control plane API listening", "addr", ln.Addr().String(), "scheme", scheme, "database", st.Dialect(), "region", opts.Region)
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve API: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	return nil
}

// newCluster builds the cluster side with the user's CA, if any, and a listener certificate
// that names the cluster endpoint's host.
func newCluster(ctx context.Context, st *sqlstore.Store, es *entitystore.Store, an *analytics.Store, opts Options, cert *certfile.Pair) (*cluster.Cluster, error) {
	var caCert, caKey []byte
	if opts.ClusterCACertFile != "" || opts.ClusterCAKeyFile != "" {
		if opts.ClusterCACertFile == "" || opts.ClusterCAKeyFile == "" {
			return nil, errors.New("give both --cluster-ca-cert and --cluster-ca-key, or neither")
		}
		var err error
		if caCert, err = os.ReadFile(opts.ClusterCACertFile); err != nil {
			return nil, fmt.Errorf("read cluster CA certificate: %w", err)
		}
		if caKey, err = os.ReadFile(opts.ClusterCAKeyFile); err != nil {
			return nil, fmt.Errorf("read cluster CA key: %w", err)
		}
	}
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	if u, err := url.Parse(opts.ClusterEndpoint); err == nil && u.Hostname() != "" {
		names = append(names, u.Hostname())
	}
	copts := cluster.Options{Store: st, Entities: es, Logger: opts.Logger, CACertPEM: caCert, CAKeyPEM: caKey, ServerNames: names, Analytics: an,
		Version: opts.Version, APIAddress: opts.Listen, EnrolledCertValidity: opts.EnrolledCertValidity}
	if cert != nil {
		copts.ServerCertificate = cert.GetCertificate
	}
	return cluster.New(ctx, copts)
}

// certPair loads a certificate pair given by a pair of flags; both or neither must be set.
func certPair(certFile, keyFile, certFlag, keyFlag string, log *slog.Logger) (*certfile.Pair, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, fmt.Errorf("give both %s and %s, or neither", certFlag, keyFlag)
	}
	p, err := certfile.New(certfile.Options{CertFile: certFile, KeyFile: keyFile, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", certFlag, keyFlag, err)
	}
	return p, nil
}

// watchCerts reloads the pairs when their files change and on SIGHUP, until ctx ends.
func watchCerts(ctx context.Context, log *slog.Logger, pairs ...*certfile.Pair) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for _, p := range pairs {
		if p != nil {
			go p.Watch(ctx)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			for _, p := range pairs {
				if p == nil {
					continue
				}
				if err := p.Reload(); err != nil {
					log.Error("SIGHUP: cannot reload a TLS certificate; the previous one keeps serving", "err", err)
				}
			}
		}
	}
}

// groupTraffic adapts analytics' 24 hour figures to the group views; a failed read is logged and
// shows as no traffic rather than failing the group listing.
func groupTraffic(an *analytics.Store, log *slog.Logger) func(ctx context.Context, groupIDs []string) map[string]api.GroupTraffic {
	return func(ctx context.Context, groupIDs []string) map[string]api.GroupTraffic {
		out := make(map[string]api.GroupTraffic, len(groupIDs))
		traffic, err := an.Traffic24h(ctx, groupIDs)
		if err != nil {
			log.WarnContext(ctx, "cannot read the groups' traffic", "err", err)
			return out
		}
		for id, t := range traffic {
			rate := t.ErrorRate
			out[id] = api.GroupTraffic{Requests24h: t.Requests, ErrorRate24h: &rate}
		}
		return out
	}
}

// bootstrap makes the first organization once and tells the operator the admin token.
func bootstrap(ctx context.Context, st store.Store, opts Options) error {
	secret := opts.AdminToken
	generated := secret == ""
	if generated {
		secret = auth.NewToken()
	}
	pw := opts.AdminPassword
	if pw == "" {
		pw = password.Generate()
	}
	pwHash, err := password.Hash(pw)
	if err != nil {
		return err
	}
	res, err := st.Bootstrap(ctx, store.BootstrapParams{
		OrgName: opts.OrgName, Region: opts.Region, AdminName: "admin", AdminEmail: opts.AdminEmail, AdminPasswordHash: pwHash,
		AdminToken: store.Token{Name: "initial admin token", Hash: auth.HashToken(secret), Hint: auth.Hint(secret)},
	})
	if err != nil {
		return fmt.Errorf("initialize organization: %w", err)
	}
	log := opts.Logger
	if res.PasswordSet {
		if opts.AdminPassword != "" {
			log.Info("set the administrator's password from GANTRY_ADMIN_PASSWORD", "email", res.Admin.Email)
		} else {
			log.Info("generated the administrator's password; it is printed once on standard output", "email", res.Admin.Email)
			if _, err := fmt.Fprintf(opts.Out, "\nAdministrator login for the console (POST /v3/authenticate):\n\n    email:    %s\n    password: %s   (shown once; change it with PATCH /v3/users/me)\n\n",
				res.Admin.Email, pw); err != nil {
				log.Error("cannot print the administrator's password; set one with PATCH /v3/users/{id} and the admin token", "err", err)
			}
		}
	}
	switch {
	case res.Created && generated:
		log.Info("created organization", "org", res.Org.ID, "default_group", res.Group.ID)
		if _, err := fmt.Fprintf(opts.Out, "\nCreated organization %q with its default runtime group %s.\n"+
			"Admin token (shown once; store it safely, or set GANTRY_ADMIN_TOKEN next time):\n\n    %s\n\n", res.Org.Name, res.Group.ID, secret); err != nil {
			log.Error("cannot print the new admin token; restart with GANTRY_ADMIN_TOKEN set to add one", "err", err)
		}
	case res.Created:
		log.Info("created organization with the configured admin token", "org", res.Org.ID, "default_group", res.Group.ID)
	case !generated:
		// A token given on a later start is added if missing, so an operator who lost the
		// first token can get in again by restarting with one.
		if _, err := st.LookupToken(ctx, auth.HashToken(secret)); errors.Is(err, store.ErrNotFound) {
			err := st.CreateToken(ctx, store.Token{ID: uuid.NewString(), OrgID: res.Org.ID, UserID: res.Admin.ID, Name: "admin token from GANTRY_ADMIN_TOKEN",
				Hash: auth.HashToken(secret), Hint: auth.Hint(secret), CreatedAt: time.Now().UTC()})
			if err != nil {
				return fmt.Errorf("add admin token: %w", err)
			}
			log.Info("added the admin token from GANTRY_ADMIN_TOKEN")
		} else if err != nil {
			return err
		}
	}
	return nil
}

// groupBackup returns the backup of one group for DELETE ?backup=true: the format `gantry backup`
// writes (package backup), with the group's pinned certificates and its declarative configuration.
func groupBackup(decl *declarative.Service, cl *cluster.Cluster) func(ctx context.Context, g store.RuntimeGroup) (any, error) {
	return func(ctx context.Context, g store.RuntimeGroup) (any, error) {
		doc, err := decl.Export(ctx, g.ID)
		if err != nil {
			return nil, err
		}
		raw, err := doc.JSON()
		if err != nil {
			return nil, err
		}
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("decode the exported configuration: %w", err)
		}
		certs, err := cl.Certificates(ctx, g.ID)
		if err != nil {
			return nil, err
		}
		bg := backup.Group{Name: g.Name, Description: g.Description, Labels: g.Labels, IsDefault: g.IsDefault, Config: cfg}
		if len(bg.Labels) == 0 {
			bg.Labels = nil
		}
		for _, c := range certs {
			bg.Certificates = append(bg.Certificates, backup.Certificate{Title: c.Title, Cert: c.Cert})
		}
		return backup.File{FormatVersion: backup.FormatVersion, CreatedAt: time.Now().UTC().Truncate(time.Second), Groups: []backup.Group{bg}}, nil
	}
}

// identityAudit records logins, logouts and failed logins in the audit log. A failed login for
// an account no organization has names no organization: it is recorded in the organization this
// control plane created on first start, so that guessing attempts stay in the trail.
func identityAudit(ctx context.Context, st *sqlstore.Store, l *audit.Service, log *slog.Logger) func(context.Context, store.AuditEntry) {
	var firstOrg string
	if err := st.DB().QueryRowContext(ctx, `SELECT org_id FROM bootstrap`).Scan(&firstOrg); err != nil {
		log.Warn("cannot read the first organization; failed logins of unknown accounts will not be audited", "err", err)
	}
	return func(ctx context.Context, e store.AuditEntry) {
		if e.OrgID == "" {
			e.OrgID = firstOrg
		}
		if e.OrgID == "" {
			return
		}
		if err := l.Append(ctx, e); err != nil {
			log.ErrorContext(ctx, "cannot record an identity event in the audit log", "action", e.Action, "err", err)
		}
	}
}
