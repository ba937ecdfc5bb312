package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "gantry",
		Short: "Gantry: a self-hosted control plane and runtime for fleets of API gateways",
		Long: `Gantry manages runtime groups of API gateway instances. Each group holds its own
Kong-compatible gateway configuration, which Gantry pushes to every runtime instance of the group.
The client verbs (groups, nodes, certificates, tokens, revisions, config, backup, restore) talk to a
control plane's HTTP API: --server/GANTRY_SERVER and --token/GANTRY_TOKEN, or 'gantry login'.

Every flag can also be set with an environment variable named GANTRY_ followed by the flag name in
upper case with dashes as underscores (--data-dir → GANTRY_DATA_DIR), or in the YAML file given by
--config (keys are flag names). Command-line flags win over the environment, which wins over the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "YAML configuration file; its keys are flag names (e.g. listen: \":8080\")")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())} //nolint:revive,staticcheck // a second line for the terminal, printed as is
	})
	root.AddCommand(newServeCmd(), newRuntimeCmd(), newQuickstartCmd(), newVersionCmd(), newHealthcheckCmd())
	root.AddCommand(newCLICmds()...)
	return root
}

// bindConfig fills every flag the user did not set on the command line from its GANTRY_*
// environment variable, then from the --config file.
// noEnvAnnotation marks a flag that bindConfig leaves alone: one whose GANTRY_* variable would
// collide with another command's flag of the same name (backup's --output file and the output
// format elsewhere) and that only makes sense per run.
const noEnvAnnotation = "gantry_no_env"

// perRun marks the named flags of cmd as noEnvAnnotation.
func perRun(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		_ = cmd.Flags().SetAnnotation(n, noEnvAnnotation, []string{"true"}) // the flag is defined by the caller
	}
}

func bindConfig(cmd *cobra.Command) error {
	fileValues := map[string]any{}
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("GANTRY_CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path) //nolint:gosec // the operator names this file (--config, GANTRY_CONFIG)
		if err != nil {
			return &usageError{fmt.Errorf("read config file: %w", err)}
		}
		if err := yaml.Unmarshal(b, &fileValues); err != nil {
			return &usageError{fmt.Errorf("config file %s is not valid YAML: %w", path, err)}
		}
	}
	known := map[string]bool{}
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		known[f.Name] = true
		if f.Changed || bindErr != nil {
			return
		}
		if _, ok := f.Annotations[noEnvAnnotation]; ok {
			return // a per-run value (a file to write or read), never taken from GANTRY_* or the file
		}
		env := "GANTRY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := setFlag(f, v); err != nil {
				bindErr = &usageError{fmt.Errorf("environment variable %s: %w", env, err)}
			}
			return
		}
		if v, ok := fileValues[f.Name]; ok {
			if err := setFlagFromYAML(f, v); err != nil {
				bindErr = &usageError{fmt.Errorf("config file key %q: %w", f.Name, err)}
			}
		}
	})
	if bindErr != nil {
		return bindErr
	}
	for k := range fileValues {
		if !known[k] {
			return &usageError{fmt.Errorf("config file %s: unknown key %q (keys are the flag names of '%s')", path, k, cmd.CommandPath())}
		}
	}
	return nil
}

func setFlag(f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var items []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		return sv.Replace(items)
	}
	return f.Value.Set(v)
}

func setFlagFromYAML(f *pflag.Flag, v any) error {
	if list, ok := v.([]any); ok {
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("takes a single value, not a list")
		}
		items := make([]string, len(list))
		for i, x := range list {
			items[i] = fmt.Sprint(x)
		}
		return sv.Replace(items)
	}
	return f.Value.Set(fmt.Sprint(v))
}

// setup binds the command's flags to the environment and --config file and builds its logger; every
// command's RunE starts with it.
func setup(cmd *cobra.Command) (*slog.Logger, error) {
	if err := bindConfig(cmd); err != nil {
		return nil, err
	}
	return newLogger(cmd, os.Stderr)
}

// flagString returns a string flag's value; the flag is defined by the command itself.
func flagString(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return v
}

// Flags shared by the commands that run a control plane (serve, quickstart) or a runtime
// (runtime, quickstart), so that their names, defaults and help stay the same everywhere.
func addControlPlaneFlags(f *pflag.FlagSet) {
	f.String("listen", ":8080", "address of the HTTP API (host:port)")
	f.String("data-dir", "./gantry-data", "directory of the embedded SQLite database, created if missing")
	f.String("region", "us", "region this control plane serves; each organization has one default runtime group per region")
	f.String("cluster-listen", ":8005", "address of the cluster listener runtime instances connect to (mTLS WebSocket, /v1/outlet); empty disables it")
	f.Duration("shutdown-timeout", 30*time.Second, "how long in-flight requests may run after a stop signal")
}

func addRuntimeListenFlags(f *pflag.FlagSet, cacheDir, cacheHelp string) {
	f.String("proxy-listen", ":8000", "address of the plain HTTP proxy listener (host:port); \"off\" disables it")
	f.String("proxy-tls-listen", ":8443", "address of the HTTPS proxy listener (host:port); \"off\" disables it")
	f.String("status-listen", ":8100", "address of the runtime's status API: /status and /status/ready (host:port)")
	f.String("cache-dir", cacheDir, cacheHelp)
}

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(cmd *cobra.Command, w io.Writer) (*slog.Logger, error) {
	levelName, _ := cmd.Flags().GetString("log-level")
	format, _ := cmd.Flags().GetString("log-format")
	var level slog.Level
	if err := level.UnmarshalText([]byte(levelName)); err != nil {
		return nil, &usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", levelName)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &usageError{fmt.Errorf("--log-format %q: use text or json", format)}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := commit
			goVersion := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && c == "" {
						c = s.Value
					}
				}
			}
			if c == "" {
				c = "unknown"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "gantry %s\ncommit: %s\ngo: %s\n", version, c, goVersion)
			return err
		},
	}
}
