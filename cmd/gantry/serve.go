package main

import (
	"errors"
	"os"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/analytics"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/audit"
	"github.com/gantry-gw/gantry/internal/cp/cluster"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/server"
	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane",
		Long: `Run the Gantry control plane: the management API (/v2/runtime-groups, tokens), the per-group
Kong Admin API, and the cluster listener runtime instances connect to.

With no flags it keeps its data in an embedded SQLite database in ./gantry-data and listens on :8080.
Give --database-url postgres://… to run on PostgreSQL instead; several control plane processes may
share one PostgreSQL database.

On first start it creates the organization, its default runtime group and an administrator, and
prints a one-time admin token (or uses GANTRY_ADMIN_TOKEN). The administrator also logs in to the
console (POST /v3/authenticate) with --admin-email (or GANTRY_ADMIN_EMAIL) and the password in
GANTRY_ADMIN_PASSWORD; without one, a password is generated and printed once. Stop it with Ctrl-C or SIGTERM: in-flight
requests finish, then the database is closed.`,
		Example: `  gantry serve
  gantry serve --listen :9080 --data-dir /var/lib/gantry
  gantry serve --tls-cert /etc/gantry/api.crt --tls-key /etc/gantry/api.key   # HTTPS; kill -HUP reloads
  GANTRY_ADMIN_TOKEN=gpat_mysecret gantry serve --database-url postgres://gantry@db:5432/gantry`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	addControlPlaneFlags(f)
	f.String("database-url", "", "PostgreSQL URL (postgres://user:pass@host:5432/db); when set, SQLite is not used")
	f.String("org-name", "Default Organization", "name of the organization created on first start")
	f.String("admin-email", "", "the administrator's login email, set on first start (default $GANTRY_ADMIN_EMAIL, else "+server.DefaultAdminEmail+"); its password comes from $GANTRY_ADMIN_PASSWORD or is generated and printed once")
	f.Duration("session-idle-timeout", api.DefaultSessionIdleTimeout, "a console session ends when it was not used for this long")
	f.Duration("session-max-age", api.DefaultSessionMaxAge, "a console session ends this long after login, however it is used")
	f.String("cluster-endpoint", "https://localhost:8005", "URL runtime instances use to reach this control plane, shown in each runtime group's config")
	f.String("cluster-ca-cert", "", "PEM file of a CA to use for the cluster instead of the one generated on first start (needs --cluster-ca-key)")
	f.String("cluster-ca-key", "", "PEM file of the private key of --cluster-ca-cert")
	f.Duration("enrolled-cert-validity", cluster.DefaultEnrolledCertValidity, "how long certificates issued to enrolled runtime instances are valid (at least 1m); instances renew theirs before they expire")
	f.String("tls-cert", "", "PEM certificate (and chain) to serve the HTTP API over TLS (needs --tls-key); reloaded on SIGHUP and when the file changes")
	f.String("tls-key", "", "PEM private key of --tls-cert")
	f.String("cluster-tls-cert", "", "PEM certificate for the cluster listener instead of one issued from the cluster CA (needs --cluster-tls-key; runtimes must trust its issuer); reloaded like --tls-cert")
	f.String("cluster-tls-key", "", "PEM private key of --cluster-tls-cert")
	f.Duration("analytics-minute-retention", analytics.DefaultMinuteRetention, "how long per-minute analytics are kept (at least 2h)")
	f.Duration("analytics-hour-retention", analytics.DefaultHourRetention, "how long hourly analytics rollups are kept (at least the minute retention plus 24h)")
	f.Duration("analytics-day-retention", analytics.DefaultDayRetention, "how long daily analytics rollups are kept (at least 24h)")
	f.Duration("analytics-rollup-interval", analytics.DefaultRollupInterval, "how often analytics are rolled up (minute to hour to day) and retention applied")
	f.Int("revision-retention-count", entitystore.DefaultRetention.Count, "each runtime group keeps at least its last N revisions in history (with --revision-retention-age 0 and 0 here, every revision is kept)")
	f.Duration("audit-retention", audit.DefaultRetention, "how long audit log entries are kept (at least 24h)")
	f.Duration("revision-retention-age", entitystore.DefaultRetention.Age, "each runtime group keeps every revision younger than this in history")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := setup(cmd)
		if err != nil {
			return err
		}
		get := func(name string) string { return flagString(cmd, name) }
		timeout, _ := f.GetDuration("shutdown-timeout")
		dur := func(name string) time.Duration { d, _ := f.GetDuration(name); return d }
		keep, _ := f.GetInt("revision-retention-count")
		if keep < 0 || dur("revision-retention-age") < 0 {
			return errors.New("--revision-retention-count and --revision-retention-age must not be negative")
		}
		if dur("audit-retention") < audit.MinRetention {
			return &usageError{errors.New("--audit-retention must be at least 24h")}
		}
		if dur("session-idle-timeout") < time.Minute || dur("session-max-age") < dur("session-idle-timeout") {
			return &usageError{errors.New("--session-idle-timeout must be at least 1m and --session-max-age at least as long")}
		}
		adminEmail := get("admin-email")
		if adminEmail == "" {
			adminEmail = os.Getenv("GANTRY_ADMIN_EMAIL")
		}
		if dur("enrolled-cert-validity") < time.Minute {
			return &usageError{errors.New("--enrolled-cert-validity must be at least 1m")}
		}
		return server.Run(cmd.Context(), server.Options{
			Listen: get("listen"), DataDir: get("data-dir"), DatabaseURL: get("database-url"), Region: get("region"),
			OrgName: get("org-name"), AdminToken: os.Getenv("GANTRY_ADMIN_TOKEN"), ClusterEndpoint: get("cluster-endpoint"),
			AdminEmail: adminEmail, AdminPassword: os.Getenv("GANTRY_ADMIN_PASSWORD"),
			SessionIdleTimeout: dur("session-idle-timeout"), SessionMaxAge: dur("session-max-age"),
			ClusterListen: get("cluster-listen"), ClusterCACertFile: get("cluster-ca-cert"), ClusterCAKeyFile: get("cluster-ca-key"),
			EnrolledCertValidity: dur("enrolled-cert-validity"),
			TLSCertFile:          get("tls-cert"), TLSKeyFile: get("tls-key"), ClusterTLSCertFile: get("cluster-tls-cert"), ClusterTLSKeyFile: get("cluster-tls-key"),
			ShutdownTimeout: timeout, Logger: log, Out: cmd.OutOrStdout(), Version: version,
			AnalyticsMinuteRetention: dur("analytics-minute-retention"), AnalyticsHourRetention: dur("analytics-hour-retention"),
			AnalyticsDayRetention: dur("analytics-day-retention"), AnalyticsRollupInterval: dur("analytics-rollup-interval"),
			RevisionRetention: &entitystore.Retention{Count: keep, Age: dur("revision-retention-age")},
			AuditRetention:    dur("audit-retention"),
		})
	}
	return cmd
}
