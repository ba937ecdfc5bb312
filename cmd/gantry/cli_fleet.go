package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cli"
	"github.com/spf13/cobra"
)

func newLoginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Store the control plane address and token for later commands",
		Long: `Check the token against the control plane and store both in the user's configuration
directory (gantry/config.yaml, readable by the user only). Later commands use them unless
--server/--token or GANTRY_SERVER/GANTRY_TOKEN say otherwise.`,
		Example: `  gantry login --server http://localhost:8080 --token "$(cat gantry-data/quickstart/admin-token)"
  GANTRY_TOKEN=gpat_… gantry login --server https://gantry.example.com`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd); err != nil {
				return err
			}
			server, token := flagString(cmd, "server"), flagString(cmd, "token")
			if token == "" {
				return &usageError{errors.New("--token is required (or GANTRY_TOKEN): create one with 'gantry tokens create' or use the admin token serve printed")}
			}
			if server == "" {
				server = cli.DefaultServer
			}
			c, err := cli.New(cli.Options{Server: server, Token: token})
			if err != nil {
				return &usageError{err}
			}
			user, org, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			path, err := cli.SaveLogin(cli.Login{Server: c.Server(), Token: token})
			if err != nil {
				return err
			}
			say(cmd.OutOrStdout(), "Logged in to %s as user %s of organization %s; stored in %s\n", c.Server(), user, org, path)
			return nil
		},
	}
	addClientFlags(cmd)
	return cmd
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Remove the login stored by gantry login",
		Example: `  gantry logout`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, removed, err := cli.RemoveLogin()
			if err != nil {
				return err
			}
			if removed {
				say(cmd.OutOrStdout(), "Removed the stored login %s\n", path)
			} else {
				sayln(cmd.OutOrStdout(), "No stored login to remove.")
			}
			return nil
		},
	}
}

func newNodesCmd() *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List the runtime instances of a group, or of every group",
		Example: `  gantry nodes list --group default
  gantry nodes list -o json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var groups []cli.Group
			if flagString(cmd, "group") != "" {
				g, err := resolveGroup(ctx, cmd, c)
				if err != nil {
					return err
				}
				groups = []cli.Group{g}
			} else if groups, err = c.ListGroups(ctx, nil); err != nil {
				return err
			}
			nodes := []cli.Node{}
			for _, g := range groups {
				ns, err := c.ListNodes(ctx, g.ID)
				if err != nil {
					return fmt.Errorf("list the nodes of group %s: %w", g.Name, err)
				}
				for i := range ns {
					ns[i].GroupName = g.Name
				}
				nodes = append(nodes, ns...)
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), nodes, func() cli.Table {
				t := cli.Table{Header: []string{"GROUP", "ID", "HOSTNAME", "TYPE", "VERSION", "STATUS", "REVISION", "LAST PING", "LAST ERROR"}}
				for _, n := range nodes {
					lastErr := ""
					if n.LastError != nil {
						lastErr = *n.LastError
					}
					t.Rows = append(t.Rows, []string{n.GroupName, n.ID, n.Hostname, n.Type, n.Version, n.Status, fmt.Sprint(n.Revision),
						time.Unix(n.LastPing, 0).Local().Format(time.DateTime), lastErr})
				}
				return t
			})
		},
	}
	addClientFlags(list)
	addOutputFlag(list)
	addGroupFlag(list, false)
	return newParentCmd("nodes", "List runtime instances", "  gantry nodes list --group default", list)
}

func newCertificatesCmd() *cobra.Command {
	generate := &cobra.Command{
		Use:   "generate",
		Short: "Issue a client certificate for a new runtime instance of a group",
		Long: `Have the control plane issue and pin a client certificate for the group, write tls.crt, tls.key
and ca.crt into --out-dir, and print the 'gantry runtime' command that uses them. The key is
returned only once: keep the files.`,
		Example: `  gantry certificates generate --group default --out-dir ./runtime-2
  gantry certificates generate --group payments --title eu-west-1 --out-dir /etc/gantry
  gantry certificates generate --group default --out-dir /etc/gantry/certs --if-missing`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ifMissing, _ := cmd.Flags().GetBool("if-missing"); ifMissing && certificateFilesExist(flagString(cmd, "out-dir")) {
				say(cmd.OutOrStdout(), "%s already holds tls.crt, tls.key and ca.crt; no certificate issued.\n", flagString(cmd, "out-dir"))
				return nil
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			issued, err := c.GenerateCertificate(cmd.Context(), g.ID, flagString(cmd, "title"))
			if err != nil {
				return err
			}
			dir := flagString(cmd, "out-dir")
			files := []struct {
				name, pem string
			}{{"tls.crt", issued.Item.Cert}, {"tls.key", issued.Key}, {"ca.crt", issued.CACert}}
			for _, f := range files {
				if err := writeFile(filepath.Join(dir, f.name), []byte(f.pem), 0o600); err != nil {
					return fmt.Errorf("%w\nThe certificate %s is pinned; revoke it with 'gantry certificates revoke --group %s %s'.", err, issued.Item.ID, g.Name, issued.Item.ID) //nolint:revive,staticcheck // lines for the terminal, printed as is
				}
			}
			controlPlane := g.Config.ControlPlaneEndpoint
			if u, err := url.Parse(controlPlane); err == nil && u.Host != "" {
				controlPlane = u.Host
			}
			p := func(name string) string { return shellQuote(filepath.Join(dir, name)) }
			out := cmd.OutOrStdout()
			say(out, "Certificate %s issued for group %s (expires %s); wrote %s, %s and %s.\n", issued.Item.ID, g.Name,
				time.Unix(issued.Item.ExpiresAt, 0).UTC().Format(time.DateOnly), p("tls.crt"), p("tls.key"), p("ca.crt"))
			say(out, "Start a runtime instance with:\n  gantry runtime --control-plane %s --cert %s --key %s --ca %s\n", controlPlane, p("tls.crt"), p("tls.key"), p("ca.crt"))
			return nil
		},
	}
	addClientFlags(generate)
	addGroupFlag(generate, true)
	generate.Flags().String("out-dir", ".", "directory to write tls.crt, tls.key and ca.crt into")
	generate.Flags().String("title", "", "title of the certificate, shown in the list")
	generate.Flags().Bool("if-missing", false, "issue nothing and exit 0 when --out-dir already holds tls.crt, tls.key and ca.crt (for an init step run at every start)")
	perRun(generate, "if-missing")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the client certificates pinned to a group",
		Example: `  gantry certificates list --group default`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			certs, err := c.ListCertificates(cmd.Context(), g.ID)
			if err != nil {
				return err
			}
			if certs == nil {
				certs = []cli.Certificate{}
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), certs, func() cli.Table {
				t := cli.Table{Header: []string{"ID", "TITLE", "GENERATED", "FINGERPRINT", "CREATED", "EXPIRES"}}
				for _, ct := range certs {
					t.Rows = append(t.Rows, []string{ct.ID, ct.Title, fmt.Sprint(ct.Generated), ct.Fingerprint,
						time.Unix(ct.CreatedAt, 0).Local().Format(time.DateTime), time.Unix(ct.ExpiresAt, 0).Local().Format(time.DateOnly)})
				}
				return t
			})
		},
	}
	addClientFlags(list)
	addOutputFlag(list)
	addGroupFlag(list, true)

	revoke := &cobra.Command{
		Use:     "revoke CERTIFICATE-ID",
		Short:   "Unpin a client certificate; instances connected with it are dropped",
		Example: `  gantry certificates revoke --group default 5f1c2b7e-0d4a-4a8e-9a51-2d7f3c1e9b40`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			if err := c.RevokeCertificate(cmd.Context(), g.ID, a[0]); err != nil {
				return err
			}
			say(cmd.OutOrStdout(), "Revoked certificate %s of group %s.\n", a[0], g.Name)
			return nil
		},
	}
	addClientFlags(revoke)
	addGroupFlag(revoke, true)
	return newParentCmd("certificates", "Issue, list and revoke runtime instances' client certificates",
		"  gantry certificates generate --group default --out-dir ./runtime-2", generate, list, revoke)
}

// shellQuote quotes s for a POSIX shell when it holds characters the shell would read.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r == '@' || r == '+' || r == '=' ||
			'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func newTokensCmd() *cobra.Command {
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a personal access token; its secret is shown only once",
		Example: `  gantry tokens create ci --expires-in 720h
  gantry tokens create deploy -o json | jq -r .token`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			exp, _ := cmd.Flags().GetDuration("expires-in")
			if exp < 0 || (exp > 0 && exp < time.Second) {
				return &usageError{errors.New("--expires-in must be at least 1s, or 0 for a token that never expires")}
			}
			t, err := c.CreateToken(cmd.Context(), a[0], exp)
			if err != nil {
				return err
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), t, func() cli.Table {
				return cli.Table{Rows: [][]string{
					{"ID:", t.ID}, {"Name:", t.Name}, {"Expires:", timeOrNever(t.ExpiresAt)},
					{"Token:", t.Token}, {"", "(shown only now: store it safely)"},
				}}
			})
		},
	}
	addClientFlags(create)
	addOutputFlag(create)
	create.Flags().Duration("expires-in", 0, "lifetime of the token, such as 720h; 0 never expires")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List your personal access tokens",
		Example: `  gantry tokens list`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ts, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if ts == nil {
				ts = []cli.Token{}
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), ts, func() cli.Table {
				t := cli.Table{Header: []string{"ID", "NAME", "HINT", "CREATED", "EXPIRES", "LAST USED", "STATE"}}
				for _, tk := range ts {
					state := "active"
					switch {
					case tk.RevokedAt != nil:
						state = "revoked"
					case tk.ExpiresAt != nil && tk.ExpiresAt.Before(time.Now()):
						state = "expired"
					}
					last := "never"
					if tk.LastUsedAt != nil {
						last = tk.LastUsedAt.Local().Format(time.DateTime)
					}
					t.Rows = append(t.Rows, []string{tk.ID, tk.Name, tk.Hint, tk.CreatedAt.Local().Format(time.DateTime), timeOrNever(tk.ExpiresAt), last, state})
				}
				return t
			})
		},
	}
	addClientFlags(list)
	addOutputFlag(list)

	revoke := &cobra.Command{
		Use:     "revoke TOKEN-ID",
		Short:   "Revoke one of your personal access tokens",
		Example: `  gantry tokens revoke 0b6e7c1a-8f1e-4a37-9c51-6d1f3f0f2a11`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), a[0]); err != nil {
				return err
			}
			say(cmd.OutOrStdout(), "Revoked token %s.\n", a[0])
			return nil
		},
	}
	addClientFlags(revoke)
	return newParentCmd("tokens", "Create, list and revoke personal access tokens", "  gantry tokens create ci --expires-in 720h", create, list, revoke)
}

func timeOrNever(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Local().Format(time.DateTime)
}

// certificateFilesExist reports whether dir holds the three files 'certificates generate' writes.
func certificateFilesExist(dir string) bool {
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}
