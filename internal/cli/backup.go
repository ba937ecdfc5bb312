package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gantry-gw/gantry/internal/config/backup"
)

// BackupFormatVersion is the version of the backup file format this CLI writes and reads.
const BackupFormatVersion = backup.FormatVersion

// Backup is the content of a backup file (package backup holds the format, shared with the
// control plane's DELETE ?backup=true).
type Backup = backup.File

// BackupGroup is one runtime group of a backup.
type BackupGroup = backup.Group

// BackupCertificate is a pinned certificate of a backed up group.
type BackupCertificate = backup.Certificate

// Progress reports the progress of a transfer over several groups; nil reports nothing.
type Progress func(done, total int, group string)

// BackupGroups reads each group's metadata, certificates and configuration into a Backup.
func (c *Client) BackupGroups(ctx context.Context, groups []Group, progress Progress) (*Backup, error) {
	b := &Backup{FormatVersion: BackupFormatVersion, CreatedAt: time.Now().UTC().Truncate(time.Second), Server: c.Server(), Groups: []BackupGroup{}}
	for i, g := range groups {
		if progress != nil {
			progress(i, len(groups), g.Name)
		}
		cfg, err := c.DumpConfigMap(ctx, g.ID)
		if err != nil {
			return nil, fmt.Errorf("back up group %s: %w", g.Name, err)
		}
		certs, err := c.ListCertificates(ctx, g.ID)
		if err != nil {
			return nil, fmt.Errorf("back up the certificates of group %s: %w", g.Name, err)
		}
		bg := BackupGroup{Name: g.Name, Description: g.Description, Labels: g.Labels, IsDefault: g.IsDefault, Config: cfg}
		if len(bg.Labels) == 0 {
			bg.Labels = nil
		}
		for _, ct := range certs {
			bg.Certificates = append(bg.Certificates, BackupCertificate{Title: ct.Title, Cert: ct.Cert})
		}
		b.Groups = append(b.Groups, bg)
	}
	if progress != nil {
		progress(len(groups), len(groups), "")
	}
	return b, nil
}

// EncodeBackup writes b in format (yaml or json).
func EncodeBackup(w io.Writer, b *Backup, format string) error {
	if format == FormatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(b) //nolint:wrapcheck // the writer's error is the caller's to wrap
	}
	return WriteYAML(w, b)
}

// ReadBackup decodes a backup file in YAML or JSON and checks its format version.
func ReadBackup(r io.Reader) (*Backup, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	var generic any
	if err := yaml.Unmarshal(raw, &generic); err != nil {
		return nil, fmt.Errorf("the backup file is not valid YAML or JSON: %w", err)
	}
	j, err := json.Marshal(generic)
	if err != nil {
		return nil, fmt.Errorf("the backup file holds values JSON cannot represent: %w", err)
	}
	var b Backup
	if err := json.Unmarshal(j, &b); err != nil {
		return nil, fmt.Errorf("the backup file does not have the backup shape: %w", err)
	}
	switch b.FormatVersion {
	case BackupFormatVersion:
	case "":
		return nil, errors.New("the file is not a gantry backup: it has no gantry_backup_format")
	default:
		return nil, fmt.Errorf("the backup has format %q; this gantry reads format %s: use a newer gantry", b.FormatVersion, BackupFormatVersion)
	}
	for i, g := range b.Groups {
		if strings.TrimSpace(g.Name) == "" {
			return nil, fmt.Errorf("group %d of the backup has no name", i+1)
		}
	}
	return &b, nil
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Progress reports each group; nil reports nothing.
	Progress Progress
	// Log receives one line per restored group; nil discards them.
	Log io.Writer
}

// Restore creates every group of the backup in a control plane that has none of them yet (the
// backed up default group goes into the target's default group) and imports each group's
// configuration. It checks every name first and changes nothing when one is taken.
func (c *Client) Restore(ctx context.Context, b *Backup, opts RestoreOptions) error {
	existing, err := c.ListGroups(ctx, nil)
	if err != nil {
		return err
	}
	var def *Group
	names := map[string]Group{}
	for i, g := range existing {
		names[g.Name] = g
		if g.IsDefault {
			def = &existing[i]
		}
	}
	var taken []string
	for _, bg := range b.Groups {
		if g, ok := names[bg.Name]; ok && !(bg.IsDefault && g.IsDefault) {
			taken = append(taken, bg.Name)
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("the control plane already has runtime groups named %s: restore into an empty control plane, or restore one group with --group NAME --into NEW-NAME", strings.Join(taken, ", "))
	}
	for i, bg := range b.Groups {
		if opts.Progress != nil {
			opts.Progress(i, len(b.Groups), bg.Name)
		}
		var target Group
		if bg.IsDefault && def != nil {
			target, err = c.updateFromBackup(ctx, *def, bg)
		} else {
			target, err = c.createFromBackup(ctx, bg.Name, bg)
		}
		if err != nil {
			return fmt.Errorf("restore group %s: %w", bg.Name, err)
		}
		res, err := c.restoreGroupContent(ctx, target, bg, opts.Log)
		if err != nil {
			return fmt.Errorf("restore group %s: %w", bg.Name, err)
		}
		if opts.Log != nil {
			_, _ = fmt.Fprintf(opts.Log, "restored group %s (%s): revision %d\n", target.Name, target.ID, res.Revision)
		}
	}
	if opts.Progress != nil {
		opts.Progress(len(b.Groups), len(b.Groups), "")
	}
	return nil
}

// RestoreGroup puts one backed up group into the group named into: created when missing, its
// configuration replaced when it exists.
func (c *Client) RestoreGroup(ctx context.Context, bg BackupGroup, into string, log io.Writer) (Group, SyncResult, error) {
	target, err := c.ResolveGroup(ctx, into)
	switch {
	case err == nil:
	case IsNotFound(err):
		if target, err = c.createFromBackup(ctx, into, bg); err != nil {
			return Group{}, SyncResult{}, err
		}
	default:
		return Group{}, SyncResult{}, err
	}
	res, err := c.restoreGroupContent(ctx, target, bg, log)
	return target, res, err
}

func (c *Client) createFromBackup(ctx context.Context, name string, bg BackupGroup) (Group, error) {
	in := GroupInput{Name: &name, Labels: labelInput(bg.Labels)}
	if bg.Description != "" {
		in.Description = &bg.Description
	}
	return c.CreateGroup(ctx, in)
}

func (c *Client) updateFromBackup(ctx context.Context, g Group, bg BackupGroup) (Group, error) {
	desc := bg.Description
	in := GroupInput{Description: &desc, Labels: labelInput(bg.Labels)}
	return c.UpdateGroup(ctx, g.ID, in)
}

func labelInput(labels map[string]string) map[string]*string {
	if len(labels) == 0 {
		return nil
	}
	out := make(map[string]*string, len(labels))
	for k, v := range labels {
		out[k] = &v
	}
	return out
}

// restoreGroupContent pins the group's certificates (a certificate already pinned elsewhere is
// skipped with a note) and imports its configuration.
func (c *Client) restoreGroupContent(ctx context.Context, target Group, bg BackupGroup, log io.Writer) (SyncResult, error) {
	for _, ct := range bg.Certificates {
		if _, err := c.PinCertificate(ctx, target.ID, ct.Title, ct.Cert); err != nil {
			if !IsConflict(err) {
				return SyncResult{}, fmt.Errorf("pin certificate %q: %w", ct.Title, err)
			}
			if log != nil {
				_, _ = fmt.Fprintf(log, "certificate %q is already pinned on this control plane; skipped\n", ct.Title)
			}
		}
	}
	cfg := bg.Config
	if cfg == nil {
		cfg = map[string]any{"_format_version": "3.0"}
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return SyncResult{}, fmt.Errorf("encode configuration: %w", err)
	}
	return c.SyncConfig(ctx, target.ID, body, "application/json")
}
