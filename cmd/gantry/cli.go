package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-gw/gantry/internal/cli"
	"github.com/spf13/cobra"
)

// exitDiff is the exit code of a diff that found changes.
const exitDiff = 3

// exitCodeError ends the process with code after the command printed what it had to say.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// clientFlags are the connection flags of every CLI verb.
func addClientFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("server", "", "control plane HTTP API URL (default "+cli.DefaultServer+", or the one stored by 'gantry login')")
	f.String("token", "", "personal access token sent as a bearer token (default: the one stored by 'gantry login')")
}

// formatAnnotation marks an --output flag that is a format (table, json, yaml), not a file.
const formatAnnotation = "gantry_output_format"

// addOutputFlag adds -o to a verb that prints results.
func addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", "table", "output format: table, json or yaml")
	_ = cmd.Flags().SetAnnotation("output", formatAnnotation, []string{"true"})
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// addGroupFlag adds --group, completed with the groups' names.
func addGroupFlag(cmd *cobra.Command, required bool) {
	help := "runtime group, by name or id"
	if required {
		help += " (required)"
	}
	cmd.Flags().StringP("group", "g", "", help)
	_ = cmd.RegisterFlagCompletionFunc("group", completeGroups)
}

// completeGroups lists the groups' names for shell completion, when the control plane answers.
func completeGroups(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	c, err := newClient(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	gs, err := c.ListGroups(cmd.Context(), nil)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(gs))
	for _, g := range gs {
		names = append(names, g.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// newClient binds the verb's flags to the environment and --config file, then builds the client:
// --server and --token win over GANTRY_SERVER and GANTRY_TOKEN, which win over the stored login.
func newClient(cmd *cobra.Command) (*cli.Client, error) {
	if err := bindConfig(cmd); err != nil {
		return nil, err
	}
	if f := cmd.Flags().Lookup("output"); f != nil && f.Annotations[formatAnnotation] != nil {
		if err := cli.CheckOutput(f.Value.String()); err != nil {
			return nil, &usageError{err}
		}
	}
	server, token := flagString(cmd, "server"), flagString(cmd, "token")
	if server == "" || token == "" {
		login, err := cli.LoadLogin()
		if err != nil {
			return nil, err
		}
		if server == "" {
			server = login.Server
		}
		if token == "" && (login.Server == "" || sameServer(login.Server, server)) {
			token = login.Token
		}
	}
	if server == "" {
		server = cli.DefaultServer
	}
	c, err := cli.New(cli.Options{Server: server, Token: token, UserAgent: "gantry-cli/" + version})
	if err != nil {
		return nil, &usageError{err}
	}
	return c, nil
}

func sameServer(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimRight(s, "/")
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		return s
	}
	return norm(a) == norm(b)
}

// resolveGroup returns the group named by --group, which must be set.
func resolveGroup(ctx context.Context, cmd *cobra.Command, c *cli.Client) (cli.Group, error) {
	ref := flagString(cmd, "group")
	if ref == "" {
		return cli.Group{}, &usageError{fmt.Errorf("--group is required: name a runtime group by name or id (list them with 'gantry groups list')")}
	}
	return c.ResolveGroup(ctx, ref)
}

// args returns a cobra argument check whose failures are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())} //nolint:revive,staticcheck // a second line for the terminal, printed as is
		}
		return nil
	}
}

// newParentCmd is a command that only groups verbs: alone it prints its help; with an unknown
// verb it is a usage error.
func newParentCmd(use, short, example string, children ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 {
				return &usageError{fmt.Errorf("unknown command %q for %q\nRun '%s --help' for usage.", a[0], cmd.CommandPath(), cmd.CommandPath())} //nolint:revive,staticcheck // a second line for the terminal, printed as is
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(children...)
	return cmd
}

// output returns the -o format.
func output(cmd *cobra.Command) string { return flagString(cmd, "output") }

// confirm asks question on stderr and reads a yes or no from stdin; anything but y or yes, or the
// end of the input, is no.
func confirm(cmd *cobra.Command, question string) (bool, error) {
	say(cmd.ErrOrStderr(), "%s [y/N] ", question)
	line, err := readLine(cmd.InOrStdin())
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// readLine reads one line byte by byte, so that a second question still finds its answer in the
// same input.
func readLine(r io.Reader) (string, error) {
	if br, ok := r.(*bufio.Reader); ok {
		return br.ReadString('\n')
	}
	var b strings.Builder
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(one[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

// stdinIsTerminal reports whether the command reads from a terminal.
func stdinIsTerminal(cmd *cobra.Command) bool {
	f, ok := cmd.InOrStdin().(*os.File)
	return ok && cli.IsTerminal(f)
}

// writeFile writes b to path with mode, creating its directory.
func writeFile(path string, b []byte, mode os.FileMode) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fileFormat returns json for a .json path and yaml otherwise, unless format is set.
func fileFormat(path, format string) string {
	if format != "" {
		return format
	}
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return cli.FormatJSON
	}
	return cli.FormatYAML
}

// newCLICmds returns the client verbs of the binary.
func newCLICmds() []*cobra.Command {
	return []*cobra.Command{
		newLoginCmd(), newLogoutCmd(), newGroupsCmd(), newNodesCmd(), newCertificatesCmd(), newTokensCmd(),
		newRevisionsCmd(), newConfigCmd(), newBackupCmd(), newRestoreCmd(),
	}
}

// say prints a message for the user. A failed write to the terminal leaves no one to tell, and a
// redirected output that fails is seen by the shell that redirected it.
func say(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }

// sayln prints a line for the user, as say does.
func sayln(w io.Writer, a ...any) { _, _ = fmt.Fprintln(w, a...) }
