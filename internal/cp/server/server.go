// Package server runs the control plane: it opens the store, creates the first organization on
// first start, and serves the HTTP API until its context ends, then shuts down gracefully.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/cluster"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
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
	// ClusterEndpoint is the URL runtime instances use to reach this control plane; its host is
	// also put in the cluster listener's certificate.
	ClusterEndpoint string
	// ClusterListen is the cluster listener's address (mTLS, /v1/outlet); empty disables it.
	ClusterListen string
	// ClusterCACertFile and ClusterCAKeyFile name a user CA (PEM) for the cluster; when empty,
	// the CA stored in the database is used (created on first start).
	ClusterCACertFile, ClusterCAKeyFile string
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
}

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
	// One entity store: the cluster follows the commits the Admin API makes through it.
	es := entitystore.New(st)
	cl, err := newCluster(ctx, st, es, opts)
	if err != nil {
		return err
	}
	a, err := api.New(api.Options{Store: st, Logger: log, Region: opts.Region, ClusterEndpoint: opts.ClusterEndpoint, TelemetryEndpoint: opts.ClusterEndpoint,
		OnGroupDeleted: cl.GroupDeleted, InstanceCounts: cl.InstanceCounts})
	if err != nil {
		return err
	}
	if err := adminapi.Register(a, es, log); err != nil {
		return err
	}
	cl.Mount(a)
	if opts.ClusterListen != "" {
		cln, err := net.Listen("tcp", opts.ClusterListen)
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
	ln, err := net.Listen("tcp", opts.Listen)
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
	log.Info("control plane API listening", "addr", ln.Addr().String(), "database", st.Dialect(), "region", opts.Region)
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
func newCluster(ctx context.Context, st *sqlstore.Store, es *entitystore.Store, opts Options) (*cluster.Cluster, error) {
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
	return cluster.New(ctx, cluster.Options{Store: st, Entities: es, Logger: opts.Logger, CACertPEM: caCert, CAKeyPEM: caKey, ServerNames: names})
}

// bootstrap makes the first organization once and tells the operator the admin token.
func bootstrap(ctx context.Context, st store.Store, opts Options) error {
	secret := opts.AdminToken
	generated := secret == ""
	if generated {
		secret = auth.NewToken()
	}
	res, err := st.Bootstrap(ctx, store.BootstrapParams{
		OrgName: opts.OrgName, Region: opts.Region, AdminName: "admin",
		AdminToken: store.Token{Name: "initial admin token", Hash: auth.HashToken(secret), Hint: auth.Hint(secret)},
	})
	if err != nil {
		return fmt.Errorf("initialize organization: %w", err)
	}
	log := opts.Logger
	switch {
	case res.Created && generated:
		log.Info("created organization", "org", res.Org.ID, "default_group", res.Group.ID)
		fmt.Fprintf(opts.Out, "\nCreated organization %q with its default runtime group %s.\n", res.Org.Name, res.Group.ID)
		fmt.Fprintf(opts.Out, "Admin token (shown once; store it safely, or set GANTRY_ADMIN_TOKEN next time):\n\n    %s\n\n", secret)
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
