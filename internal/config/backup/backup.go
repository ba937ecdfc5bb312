// Package backup is the backup file format: runtime groups with their pinned certificates and
// declarative configuration. `gantry backup` writes it, `gantry restore` reads it, and the control
// plane answers it for DELETE of a group with ?backup=true, so a group deleted that way can be
// restored with `gantry restore --input file --group name`.
package backup

import "time"

// FormatVersion is the version of the format written; readers refuse other versions.
const FormatVersion = "1"

// File is the content of a backup file.
type File struct {
	// FormatVersion is FormatVersion.
	FormatVersion string    `json:"gantry_backup_format"`
	CreatedAt     time.Time `json:"created_at"`
	// Server is the control plane the backup was read from, when known.
	Server string  `json:"server,omitempty"`
	Groups []Group `json:"groups"`
}

// Group is one runtime group of a backup.
type Group struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// IsDefault marks the organization's default group, whose configuration a restore puts into
	// the default group of the target control plane.
	IsDefault bool `json:"is_default,omitempty"`
	// Certificates are the data-plane client certificates pinned to the group (no keys).
	Certificates []Certificate `json:"certificates,omitempty"`
	// Config is the group's configuration as Kong declarative 3.0.
	Config map[string]any `json:"config"`
}

// Certificate is a pinned certificate of a backed up group.
type Certificate struct {
	Title string `json:"title,omitempty"`
	Cert  string `json:"cert"`
}

// Group returns the backed up group with that name.
func (f *File) Group(name string) (Group, bool) {
	for _, g := range f.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}
