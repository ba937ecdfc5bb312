package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cli"
	"github.com/spf13/cobra"
)

func newGroupsCmd() *cobra.Command {
	return newParentCmd("groups", "Manage runtime groups (list, get, create, update, delete)",
		`  gantry groups list
  gantry groups create payments --description "Payments API" --label team=billing
  gantry groups delete payments --backup-to payments-backup.yaml`,
		newGroupsListCmd(), newGroupsGetCmd(), newGroupsCreateCmd(), newGroupsUpdateCmd(), newGroupsDeleteCmd())
}

func groupsTable(gs ...cli.Group) cli.Table {
	t := cli.Table{Header: []string{"NAME", "ID", "DEFAULT", "LABELS", "INSTANCES", "CREATED"}}
	for _, g := range gs {
		def := ""
		if g.IsDefault {
			def = "yes"
		}
		t.Rows = append(t.Rows, []string{g.Name, g.ID, def, labelsString(g.Labels), countsString(g.InstanceCounts), g.CreatedAt.Local().Format(time.DateTime)})
	}
	return t
}

func labelsString(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

func countsString(counts map[string]int) string {
	if len(counts) == 0 {
		return "0"
	}
	parts := make([]string, 0, len(counts))
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return strings.Join(parts, ", ")
}

func newGroupsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the runtime groups of the organization",
		Example: `  gantry groups list
  gantry groups list --name-contains pay -o json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			filter := map[string][]string{}
			if s := flagString(cmd, "name-contains"); s != "" {
				filter["filter[name][contains]"] = []string{s}
			}
			gs, err := c.ListGroups(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if gs == nil {
				gs = []cli.Group{}
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), gs, func() cli.Table { return groupsTable(gs...) })
		},
	}
	addClientFlags(cmd)
	addOutputFlag(cmd)
	cmd.Flags().String("name-contains", "", "only groups whose name contains this text")
	return cmd
}

func newGroupsGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME|ID",
		Short: "Show one runtime group",
		Example: `  gantry groups get default
  gantry groups get payments -o yaml`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completeGroups,
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			g, err := c.ResolveGroup(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), g, func() cli.Table {
				return cli.Table{Rows: [][]string{
					{"Name:", g.Name}, {"ID:", g.ID}, {"Description:", g.Description}, {"Default:", fmt.Sprint(g.IsDefault)},
					{"Labels:", labelsString(g.Labels)}, {"Instances:", countsString(g.InstanceCounts)}, {"Traffic (24h):", trafficString(g)},
					{"Cluster endpoint:", g.Config.ControlPlaneEndpoint}, {"Created:", g.CreatedAt.Local().Format(time.DateTime)},
					{"Updated:", g.UpdatedAt.Local().Format(time.DateTime)},
				}}
			})
		},
	}
	addClientFlags(cmd)
	addOutputFlag(cmd)
	return cmd
}

// parseLabelFlags reads the key=value pairs of --label.
func parseLabelFlags(pairs []string) (map[string]*string, error) {
	out := map[string]*string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, &usageError{fmt.Errorf("--label %q: use key=value", p)}
		}
		out[k] = &v
	}
	return out, nil
}

func newGroupsCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a runtime group",
		Example: `  gantry groups create payments
  gantry groups create payments --description "Payments API" --label team=billing --label env=prod`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			pairs, _ := cmd.Flags().GetStringArray("label")
			labels, err := parseLabelFlags(pairs)
			if err != nil {
				return err
			}
			in := cli.GroupInput{Name: &a[0], Labels: labels}
			if cmd.Flags().Changed("description") {
				d := flagString(cmd, "description")
				in.Description = &d
			}
			g, err := c.CreateGroup(cmd.Context(), in)
			if err != nil {
				return err
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), g, func() cli.Table { return groupsTable(g) })
		},
	}
	addClientFlags(cmd)
	addOutputFlag(cmd)
	cmd.Flags().String("description", "", "description of the group")
	cmd.Flags().StringArray("label", nil, "label key=value (repeatable)")
	return cmd
}

func newGroupsUpdateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update NAME|ID",
		Short: "Rename a runtime group, change its description or labels",
		Example: `  gantry groups update payments --name payments-eu
  gantry groups update payments --label env=staging --remove-label team`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completeGroups,
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			pairs, _ := cmd.Flags().GetStringArray("label")
			labels, err := parseLabelFlags(pairs)
			if err != nil {
				return err
			}
			removed, _ := cmd.Flags().GetStringArray("remove-label")
			for _, k := range removed {
				labels[k] = nil
			}
			in := cli.GroupInput{Labels: labels}
			if cmd.Flags().Changed("name") {
				n := flagString(cmd, "name")
				in.Name = &n
			}
			if cmd.Flags().Changed("description") {
				d := flagString(cmd, "description")
				in.Description = &d
			}
			if in.Name == nil && in.Description == nil && len(labels) == 0 {
				return &usageError{errors.New("nothing to change: give --name, --description, --label or --remove-label")}
			}
			g, err := c.ResolveGroup(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if g, err = c.UpdateGroup(cmd.Context(), g.ID, in); err != nil {
				return err
			}
			return cli.Print(cmd.OutOrStdout(), output(cmd), g, func() cli.Table { return groupsTable(g) })
		},
	}
	addClientFlags(cmd)
	addOutputFlag(cmd)
	cmd.Flags().String("name", "", "new name")
	cmd.Flags().String("description", "", "new description")
	cmd.Flags().StringArray("label", nil, "set label key=value (repeatable)")
	cmd.Flags().StringArray("remove-label", nil, "remove the label with this key (repeatable)")
	return cmd
}

func newGroupsDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME|ID",
		Short: "Delete a runtime group and its configuration, after offering a backup",
		Long: `Delete a runtime group and its configuration. Deleting cannot be undone: with --backup-to the
group (name, description, labels, certificates and configuration) is first written to a file that
'gantry restore --input FILE --group NAME' brings back; in a terminal, without --backup-to, the
command offers to write one. It asks for confirmation unless --yes. The instances of the group keep
serving their last configuration. The default group cannot be deleted.`,
		Example: `  gantry groups delete payments --backup-to payments.yaml
  gantry groups delete payments --yes`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completeGroups,
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			g, err := c.ResolveGroup(ctx, a[0])
			if err != nil {
				return err
			}
			if g.IsDefault {
				// The API refuses and says why.
				return c.DeleteGroup(ctx, g.ID)
			}
			yes, _ := cmd.Flags().GetBool("yes")
			backupTo := flagString(cmd, "backup-to")
			if backupTo == "" && !yes && stdinIsTerminal(cmd) {
				say(cmd.ErrOrStderr(), "Write a backup of group %s first? File name (empty for none): ", g.Name)
				line, err := readLine(cmd.InOrStdin())
				if err != nil && line == "" {
					return fmt.Errorf("read the answer: %w", err)
				}
				backupTo = strings.TrimSpace(line)
			}
			if backupTo != "" {
				b, err := c.BackupGroups(ctx, []cli.Group{g}, nil)
				if err != nil {
					return fmt.Errorf("%w\nNothing was deleted.", err) //nolint:revive,staticcheck // a second line for the terminal, printed as is
				}
				var buf bytes.Buffer
				if err := cli.EncodeBackup(&buf, b, fileFormat(backupTo, "")); err != nil {
					return err
				}
				if err := writeFile(backupTo, buf.Bytes(), 0o600); err != nil {
					return fmt.Errorf("%w\nNothing was deleted.", err) //nolint:revive,staticcheck // a second line for the terminal, printed as is
				}
				say(cmd.ErrOrStderr(), "Backup of group %s written to %s (restore it with: gantry restore --input %s --group %s)\n", g.Name, backupTo, backupTo, g.Name)
			}
			if !yes {
				ok, err := confirm(cmd, fmt.Sprintf("Delete runtime group %s (%s) and its configuration? This cannot be undone.", g.Name, g.ID))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("aborted: nothing was deleted (pass --yes to delete without asking)")
				}
			}
			if err := c.DeleteGroup(ctx, g.ID); err != nil {
				return err
			}
			say(cmd.OutOrStdout(), "Deleted runtime group %s (%s).\n", g.Name, g.ID)
			return nil
		},
	}
	addClientFlags(cmd)
	cmd.Flags().BoolP("yes", "y", false, "delete without asking")
	cmd.Flags().String("backup-to", "", "first write a backup of the group to this file (.json for JSON, else YAML)")
	return cmd
}

// trafficString is "N requests, P% errors" over the last 24 hours, or "" without analytics.
func trafficString(g cli.Group) string {
	if g.Requests24h == nil {
		return ""
	}
	if g.ErrorRate24h == nil {
		return fmt.Sprintf("%d requests", *g.Requests24h)
	}
	return fmt.Sprintf("%d requests, %.2f%% errors", *g.Requests24h, *g.ErrorRate24h*100)
}
