package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cli"
	"github.com/spf13/cobra"
)

func newRevisionsCmd() *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List the revisions of a group's configuration, newest first",
		Example: `  gantry revisions list --group default
  gantry revisions list --group default --limit 5 -o json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			limit, _ := cmd.Flags().GetInt("limit")
			revs, err := c.ListRevisions(cmd.Context(), g.ID, limit)
			if err != nil {
				return err
			}
			if revs == nil {
				revs = []cli.Revision{}
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), revs, func() cli.Table {
				t := cli.Table{Header: []string{"REVISION", "CREATED", "SOURCE", "ACTOR", "CHANGES"}}
				for _, r := range revs {
					t.Rows = append(t.Rows, []string{strconv.FormatInt(r.Number, 10), r.CreatedAt.Local().Format(time.DateTime), r.Source, actorString(r), summaryString(r.Summary)})
				}
				return t
			})
		},
	}
	addClientFlags(list)
	addOutputFlag(list)
	addGroupFlag(list, true)
	list.Flags().Int("limit", 0, "show at most this many revisions (0: all)")

	show := &cobra.Command{
		Use:   "show REVISION",
		Short: "Show one revision; with --config, its configuration",
		Example: `  gantry revisions show 3 --group default
  gantry revisions show 3 --group default --config -o yaml`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			n, err := revisionArg(a[0])
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			withConfig, _ := cmd.Flags().GetBool("config")
			r, err := c.GetRevision(cmd.Context(), g.ID, n, withConfig)
			if err != nil {
				return err
			}
			if withConfig && (output(cmd) == "" || output(cmd) == cli.OutputTable) {
				return cli.WriteYAML(cmd.OutOrStdout(), r.Config)
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), r, func() cli.Table {
				hash := ""
				if r.ConfigHash != nil {
					hash = *r.ConfigHash
				}
				t := cli.Table{Rows: [][]string{
					{"Revision:", strconv.FormatInt(r.Number, 10)}, {"Created:", r.CreatedAt.Local().Format(time.DateTime)},
					{"Source:", r.Source}, {"Actor:", actorString(r)}, {"Config hash:", hash}, {"Changes:", ""},
				}}
				for _, typ := range slices.Sorted(maps.Keys(r.Summary)) {
					s := r.Summary[typ]
					t.Rows = append(t.Rows, []string{"", fmt.Sprintf("%s: %d created, %d updated, %d deleted", typ, s.Created, s.Updated, s.Deleted)})
				}
				return t
			})
		},
	}
	addClientFlags(show)
	addOutputFlag(show)
	addGroupFlag(show, true)
	show.Flags().Bool("config", false, "print the revision's configuration (Kong's flattened declarative 3.0)")

	diff := &cobra.Command{
		Use:   "diff REVISION",
		Short: "Show what changed in a revision, or between two revisions",
		Example: `  gantry revisions diff 3 --group default
  gantry revisions diff 5 --against 1 --group default -o json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			n, err := revisionArg(a[0])
			if err != nil {
				return err
			}
			against, _ := cmd.Flags().GetInt64("against")
			if against < 0 {
				return &usageError{errors.New("--against must be a revision number")}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			d, err := c.DiffRevisions(cmd.Context(), g.ID, n, against)
			if err != nil {
				return err
			}
			if d.Entities == nil {
				d.Entities = []cli.EntityDiff{}
			}
			if err := cli.Print(cmd.OutOrStdout(), output(cmd), d, func() cli.Table { return diffTable(d.Entities) }); err != nil {
				return err
			}
			// Like config diff: exit 3 when the two revisions differ.
			if len(d.Entities) > 0 {
				return &exitCodeError{code: exitDiff}
			}
			return nil
		},
	}
	addClientFlags(diff)
	addOutputFlag(diff)
	addGroupFlag(diff, true)
	diff.Flags().Int64("against", 0, "revision to compare with (default: the one before)")

	rollback := &cobra.Command{
		Use:   "rollback REVISION",
		Short: "Make a new revision whose configuration equals an earlier one",
		Example: `  gantry revisions rollback 1 --group default
  gantry revisions rollback 1 --group default -o json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			n, err := revisionArg(a[0])
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			r, changed, err := c.Rollback(cmd.Context(), g.ID, n)
			if err != nil {
				return err
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), r, func() cli.Table {
				msg := fmt.Sprintf("Rolled group %s back to revision %d: new revision %d.", g.Name, n, r.Number)
				if !changed {
					msg = fmt.Sprintf("Group %s already has the configuration of revision %d (revision %d); nothing changed.", g.Name, n, r.Number)
				}
				return cli.Table{Rows: [][]string{{msg}}}
			})
		},
	}
	addClientFlags(rollback)
	addOutputFlag(rollback)
	addGroupFlag(rollback, true)
	return newParentCmd("revisions", "List, show, diff and roll back the revisions of a group's configuration",
		"  gantry revisions list --group default\n  gantry revisions rollback 1 --group default", list, show, diff, rollback)
}

func revisionArg(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, &usageError{fmt.Errorf("revision %q: give a revision number (1 or more)", s)}
	}
	return n, nil
}

func actorString(r cli.Revision) string {
	if r.Actor == nil {
		return ""
	}
	if r.Actor.UserID != "" {
		return "user " + r.Actor.UserID
	}
	return "token " + r.Actor.TokenID
}

func summaryString(s map[string]cli.Counts) string {
	parts := make([]string, 0, len(s))
	for _, typ := range slices.Sorted(maps.Keys(s)) {
		c := s[typ]
		var ch []string
		if c.Created > 0 {
			ch = append(ch, fmt.Sprintf("+%d", c.Created))
		}
		if c.Updated > 0 {
			ch = append(ch, fmt.Sprintf("~%d", c.Updated))
		}
		if c.Deleted > 0 {
			ch = append(ch, fmt.Sprintf("-%d", c.Deleted))
		}
		if len(ch) > 0 {
			parts = append(parts, typ+" "+strings.Join(ch, " "))
		}
	}
	return strings.Join(parts, ", ")
}

// diffTable lists entity changes: + added, ~ changed (with the fields), - removed.
func diffTable(es []cli.EntityDiff) cli.Table {
	t := cli.Table{Header: []string{"CHANGE", "TYPE", "NAME", "ID", "FIELDS"}}
	for _, e := range es {
		t.Rows = append(t.Rows, []string{changeSign(e.Change), e.Type, e.Name, e.ID, strings.Join(e.Fields, ",")})
	}
	return t
}

func changeSign(change string) string {
	switch change {
	case "added":
		return "+ added"
	case "removed":
		return "- removed"
	case "changed":
		return "~ changed"
	}
	return change
}

// planSummary is "N to add, N to change, N to remove".
func planSummary(es []cli.EntityDiff) string {
	var add, change, remove int
	for _, e := range es {
		switch e.Change {
		case "added":
			add++
		case "removed":
			remove++
		default:
			change++
		}
	}
	return fmt.Sprintf("%d to add, %d to change, %d to remove", add, change, remove)
}

// readDeclarative reads the file argument, or stdin when it is absent or "-".
func readDeclarative(cmd *cobra.Command, a []string) (name string, body []byte, err error) {
	name = "-"
	if len(a) > 0 {
		name = a[0]
	}
	if name == "-" {
		if stdinIsTerminal(cmd) {
			return "", nil, &usageError{errors.New("give a declarative configuration file, or pipe one to stdin")}
		}
		body, err = io.ReadAll(cmd.InOrStdin())
	} else {
		body, err = os.ReadFile(name)
	}
	if err != nil {
		return "", nil, fmt.Errorf("read %s: %w", name, err)
	}
	return name, body, nil
}

func newConfigCmd() *cobra.Command {
	dump := &cobra.Command{
		Use:   "dump [FILE]",
		Short: "Write a group's configuration as Kong declarative 3.0 (YAML, or JSON with -o json)",
		Example: `  gantry config dump --group default > kong.yaml
  gantry config dump --group payments payments.json -o json`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			format := flagString(cmd, "output")
			if format != cli.FormatYAML && format != cli.FormatJSON {
				return &usageError{fmt.Errorf("-o %q: use yaml or json", format)}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			b, err := c.DumpConfig(cmd.Context(), g.ID, format)
			if err != nil {
				return err
			}
			if len(a) == 0 || a[0] == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if err := writeFile(a[0], b, 0o600); err != nil {
				return err
			}
			say(cmd.ErrOrStderr(), "Wrote the configuration of group %s to %s.\n", g.Name, a[0])
			return nil
		},
	}
	addClientFlags(dump)
	addGroupFlag(dump, true)
	dump.Flags().StringP("output", "o", cli.FormatYAML, "format: yaml or json")
	_ = dump.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))

	sync := &cobra.Command{
		Use:   "sync [FILE]",
		Short: "Replace a group's whole configuration with a declarative file, in one revision",
		Long: `Replace the group's whole configuration with the file (Kong declarative 3.0, YAML or JSON; stdin
when FILE is absent or -). The plan (what would be added, changed and removed) is shown first and
applied after confirmation, or at once with --yes. Entities absent from the file are removed.`,
		Example: `  gantry config sync --group default kong.yaml
  gantry config dump --group staging | gantry config sync --group production --yes`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			name, body, err := readDeclarative(cmd, a)
			if err != nil {
				return err
			}
			ct := cli.ContentType(name, body)
			plan, err := c.PlanConfig(cmd.Context(), g.ID, body, ct)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if plan.Changes() == 0 {
				say(out, "Group %s already has this configuration; nothing to do.\n", g.Name)
				return nil
			}
			say(out, "Plan for group %s: %s\n", g.Name, planSummary(plan.Diff.Entities))
			if err := diffTable(plan.Diff.Entities).Write(out); err != nil {
				return err
			}
			if yes, _ := cmd.Flags().GetBool("yes"); !yes {
				if name == "-" {
					return &usageError{errors.New("the file came from stdin, so there is no one to ask: pass --yes to apply the plan")}
				}
				ok, err := confirm(cmd, fmt.Sprintf("Apply this plan to group %s?", g.Name))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("aborted: nothing changed (pass --yes to apply without asking)")
				}
			}
			res, err := c.SyncConfig(cmd.Context(), g.ID, body, ct)
			if err != nil {
				return err
			}
			if sum := summaryString(res.Summary); sum != "" {
				say(out, "Applied to group %s: revision %d (%s).\n", g.Name, res.Revision, sum)
			} else {
				say(out, "Applied to group %s: revision %d.\n", g.Name, res.Revision)
			}
			return nil
		},
	}
	addClientFlags(sync)
	addGroupFlag(sync, true)
	sync.Flags().BoolP("yes", "y", false, "apply the plan without asking")

	diff := &cobra.Command{
		Use:   "diff [FILE]",
		Short: "Show what syncing a declarative file would change; exit 3 when it would change something",
		Example: `  gantry config diff --group default kong.yaml
  gantry config diff --group default kong.yaml -o json || echo "changes (exit $?)"`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			name, body, err := readDeclarative(cmd, a)
			if err != nil {
				return err
			}
			plan, err := c.PlanConfig(cmd.Context(), g.ID, body, cli.ContentType(name, body))
			if err != nil {
				return err
			}
			if plan.Diff.Entities == nil {
				plan.Diff.Entities = []cli.EntityDiff{}
			}
			out := cmd.OutOrStdout()
			err = cli.Print(out, output(cmd), plan.Diff, func() cli.Table {
				if plan.Changes() == 0 {
					return cli.Table{Rows: [][]string{{"No changes: group " + g.Name + " already has this configuration."}}}
				}
				say(out, "Plan for group %s: %s\n", g.Name, planSummary(plan.Diff.Entities))
				return diffTable(plan.Diff.Entities)
			})
			if err != nil {
				return err
			}
			if plan.Changes() > 0 {
				return &exitCodeError{code: exitDiff}
			}
			return nil
		},
	}
	addClientFlags(diff)
	addOutputFlag(diff)
	addGroupFlag(diff, true)

	validate := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a declarative file against a group without changing anything",
		Long: `Check the file as an import into the group would (a dry run: references, plugin
configurations, unique names); print every error and exit 1, or exit 0 when it is valid.`,
		Example: `  gantry config validate --group default kong.yaml`,
		Args:    args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := resolveGroup(cmd.Context(), cmd, c)
			if err != nil {
				return err
			}
			name, body, err := readDeclarative(cmd, a)
			if err != nil {
				return err
			}
			plan, err := c.PlanConfig(cmd.Context(), g.ID, body, cli.ContentType(name, body))
			if err != nil {
				var ae *cli.APIError
				if errors.As(err, &ae) && ae.Status == 400 {
					return fmt.Errorf("%s is not valid for group %s: %w", name, g.Name, err)
				}
				return err
			}
			say(cmd.OutOrStdout(), "%s is valid for group %s (syncing it would make %s).\n", name, g.Name, planSummary(plan.Diff.Entities))
			return nil
		},
	}
	addClientFlags(validate)
	addGroupFlag(validate, true)

	return newParentCmd("config", "Dump, sync, diff and validate a group's declarative configuration (Kong 3.0)",
		"  gantry config dump --group default > kong.yaml\n  gantry config diff --group default kong.yaml\n  gantry config sync --group default kong.yaml",
		dump, sync, diff, validate)
}

func newBackupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write every runtime group (metadata, certificates, configuration) to one file",
		Long: `Write every runtime group of the organization to one file: its name, description, labels,
pinned certificates and declarative configuration, with the file's format version. The file is
JSON when its name ends in .json, YAML otherwise; - writes to stdout. 'gantry restore' reads it.`,
		Example: `  gantry backup --output gantry-backup.yaml
  gantry backup --output - --group payments > payments.yaml`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := flagString(cmd, "output")
			if path == "" {
				return &usageError{errors.New("--output is required: the file to write (- for stdout)")}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var groups []cli.Group
			if names, _ := cmd.Flags().GetStringArray("group"); len(names) > 0 {
				for _, n := range names {
					g, err := c.ResolveGroup(ctx, n)
					if err != nil {
						return err
					}
					groups = append(groups, g)
				}
			} else if groups, err = c.ListGroups(ctx, nil); err != nil {
				return err
			}
			b, err := c.BackupGroups(ctx, groups, cli.TerminalProgress(os.Stderr, "backup"))
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := cli.EncodeBackup(&buf, b, fileFormat(path, flagString(cmd, "format"))); err != nil {
				return err
			}
			if path == "-" {
				_, err = cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			if err := writeFile(path, buf.Bytes(), 0o600); err != nil {
				return err
			}
			say(cmd.OutOrStdout(), "Backed up %d runtime groups to %s.\n", len(b.Groups), path)
			return nil
		},
	}
	addClientFlags(cmd)
	cmd.Flags().StringP("output", "o", "", "file to write (.json for JSON, else YAML; - for stdout); required")
	perRun(cmd, "output")
	cmd.Flags().String("format", "", "yaml or json (default: from the file name)")
	cmd.Flags().StringArray("group", nil, "back up only this group, by name or id (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("group", completeGroups)
	return cmd
}

func newRestoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into an empty control plane, or one group of it into a named group",
		Long: `Restore a file written by 'gantry backup' (or 'gantry groups delete --backup-to').

Without --group, every group of the file is created, with its labels, certificates and
configuration, in a control plane that has none of them yet; the file's default group goes into
the control plane's default group. Nothing is changed when a name is taken.

With --group NAME, only that group of the file is restored, into the group named by --into (the
same name by default): created when missing, its configuration replaced (after confirmation,
unless --yes) when it exists.`,
		Example: `  gantry restore --input gantry-backup.yaml
  gantry restore --input gantry-backup.yaml --group payments --into payments-copy`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := flagString(cmd, "input")
			if path == "" {
				return &usageError{errors.New("--input is required: the backup file to read (- for stdin)")}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			r := cmd.InOrStdin()
			if path != "-" {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("open the backup: %w", err)
				}
				defer func() { _ = f.Close() }() // read only
				r = f
			}
			b, err := cli.ReadBackup(r)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			name := flagString(cmd, "group")
			if name == "" {
				if flagString(cmd, "into") != "" {
					return &usageError{errors.New("--into needs --group: the group of the backup to restore")}
				}
				if err := c.Restore(ctx, b, cli.RestoreOptions{Progress: cli.TerminalProgress(os.Stderr, "restore"), Log: out}); err != nil {
					return err
				}
				say(out, "Restored %d runtime groups from %s.\n", len(b.Groups), path)
				return nil
			}
			bg, ok := b.Group(name)
			if !ok {
				names := make([]string, 0, len(b.Groups))
				for _, g := range b.Groups {
					names = append(names, g.Name)
				}
				return fmt.Errorf("the backup has no group named %q; it has: %s", name, strings.Join(names, ", "))
			}
			into := flagString(cmd, "into")
			if into == "" {
				into = name
			}
			if yes, _ := cmd.Flags().GetBool("yes"); !yes {
				existing, err := c.ResolveGroup(ctx, into)
				switch {
				case err == nil:
					ok, err := confirm(cmd, fmt.Sprintf("Replace the whole configuration of group %s (%s) with the backup's?", existing.Name, existing.ID))
					if err != nil {
						return err
					}
					if !ok {
						return errors.New("aborted: nothing changed (pass --yes to restore without asking)")
					}
				case !cli.IsNotFound(err):
					return err
				}
			}
			g, res, err := c.RestoreGroup(ctx, bg, into, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if res.Revision == 0 {
				say(out, "Restored group %s of %s into group %s (%s); its configuration is empty.\n", name, path, g.Name, g.ID)
				return nil
			}
			say(out, "Restored group %s of %s into group %s (%s): revision %d.\n", name, path, g.Name, g.ID, res.Revision)
			return nil
		},
	}
	addClientFlags(cmd)
	cmd.Flags().StringP("input", "i", "", "backup file to read (- for stdin); required")
	cmd.Flags().String("group", "", "restore only this group of the backup")
	cmd.Flags().String("into", "", "with --group: the group to restore into, created when missing (default: the same name)")
	cmd.Flags().BoolP("yes", "y", false, "replace an existing group's configuration without asking")
	return cmd
}
