package main

import (
	"os"

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
prints a one-time admin token (or uses GANTRY_ADMIN_TOKEN). Stop it with Ctrl-C or SIGTERM: in-flight
requests finish, then the database is closed.`,
		Example: `  gantry serve
  gantry serve --listen :9080 --data-dir /var/lib/gantry
  GANTRY_ADMIN_TOKEN=gpat_mysecret gantry serve --database-url postgres://gantry@db:5432/gantry`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	addControlPlaneFlags(f)
	f.String("database-url", "", "PostgreSQL URL (postgres://user:pass@host:5432/db); when set, SQLite is not used")
	f.String("org-name", "Default Organization", "name of the organization created on first start")
	f.String("cluster-endpoint", "https://localhost:8005", "URL runtime instances use to reach this control plane, shown in each runtime group's config")
	f.String("cluster-ca-cert", "", "PEM file of a CA to use for the cluster instead of the one generated on first start (needs --cluster-ca-key)")
	f.String("cluster-ca-key", "", "PEM file of the private key of --cluster-ca-cert")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := setup(cmd)
		if err != nil {
			return err
		}
		get := func(name string) string { return flagString(cmd, name) }
		timeout, _ := f.GetDuration("shutdown-timeout")
		return server.Run(cmd.Context(), server.Options{
			Listen: get("listen"), DataDir: get("data-dir"), DatabaseURL: get("database-url"), Region: get("region"),
			OrgName: get("org-name"), AdminToken: os.Getenv("GANTRY_ADMIN_TOKEN"), ClusterEndpoint: get("cluster-endpoint"),
			ClusterListen: get("cluster-listen"), ClusterCACertFile: get("cluster-ca-cert"), ClusterCAKeyFile: get("cluster-ca-key"),
			ShutdownTimeout: timeout, Logger: log, Out: cmd.OutOrStdout(),
		})
	}
	return cmd
}
