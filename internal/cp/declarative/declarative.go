// Package declarative exports and imports a runtime group's whole configuration as Kong's
// declarative format 3.0 (YAML or JSON), the way decK dumps a workspace and Kong DB-less loads
// one with POST /config.
//
// Export writes every entity with its id and every field, foreign keys as the referenced id, in
// Kong's export order and, inside a collection, by id, so that the same configuration always
// encodes to the same bytes. Import reads nested or flat files, resolves references by name or
// id, validates every entity with the schemas the Admin API uses (internal/config/schema), and
// replaces the group's configuration in one transaction, recorded as one revision whose source is
// entitystore.SourceImport. An invalid file changes nothing and is answered with every invalid
// entity, in Kong's flattened error format.
package declarative

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/snapshot"
	"go.yaml.in/yaml/v3"
)

// FormatVersion is the declarative format version this package reads and writes.
const FormatVersion = "3.0"

// Options configure New.
type Options struct {
	// Entities is the configuration store; required.
	Entities *entitystore.Store
	// Logger receives unexpected errors; nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes bounds posted files (bytes); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Service exports and imports runtime groups' configurations. Build it with New; it is safe for
// concurrent use.
type Service struct {
	es      *entitystore.Store
	log     *slog.Logger
	maxBody int64
}

// New checks opts and returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Entities == nil {
		return nil, errors.New("declarative: Entities is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes < 0 {
		return nil, errors.New("declarative: MaxBodyBytes must not be negative")
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Service{es: opts.Entities, log: opts.Logger.With("component", "declarative"), maxBody: opts.MaxBodyBytes}, nil
}

// Section is one collection of a declarative file: a DAO name and its rows.
type Section struct {
	Name string
	Rows []map[string]any
}

// Document is a group's configuration in declarative form, collections in Kong's export order.
// Rows are flat: foreign keys hold the referenced id.
type Document struct {
	// Revision is the group's revision the export read.
	Revision int64
	Sections []Section
}

// Export reads the group's whole configuration in one transaction.
func (s *Service) Export(ctx context.Context, groupID string) (Document, error) {
	snap, err := s.es.Export(ctx, groupID)
	if err != nil {
		return Document{}, fmt.Errorf("export group %s: %w", groupID, err)
	}
	return FromSnapshot(snap), nil
}

// FromSnapshot renders one read of a group's configuration as a declarative document: every
// entity, disabled ones included, rows ordered by id, foreign keys flattened to the id, consumer
// group memberships as consumer_group_consumers rows {consumer_group, consumer}. snap is not
// modified.
func FromSnapshot(snap entitystore.Snapshot) Document {
	doc := Document{Revision: snap.Revision}
	for _, name := range snapshot.ExportOrder() {
		if name == entitystore.MembershipType {
			if len(snap.Memberships) == 0 {
				continue
			}
			rows := make([]map[string]any, 0, len(snap.Memberships))
			for _, m := range snap.Memberships {
				rows = append(rows, map[string]any{"consumer_group": m[0], "consumer": m[1]})
			}
			doc.Sections = append(doc.Sections, Section{Name: name, Rows: rows})
			continue
		}
		docs := snap.Entities[name]
		e, ok := schema.Lookup(name)
		if !ok || len(docs) == 0 {
			continue
		}
		rows := make([]map[string]any, 0, len(docs))
		for _, d := range docs {
			row := make(map[string]any, len(d))
			for k, v := range d {
				row[k] = v
			}
			for _, r := range e.Refs {
				if v := row[r.Field]; v != nil {
					row[r.Field] = refID(v)
				}
			}
			rows = append(rows, row)
		}
		doc.Sections = append(doc.Sections, Section{Name: name, Rows: rows})
	}
	return doc
}

// refID returns the id of a foreign key value: {"id": x}, or x itself when it is a string.
func refID(v any) string {
	switch x := v.(type) {
	case map[string]any:
		s, _ := x["id"].(string)
		return s
	case string:
		return x
	}
	return ""
}

// header is the start of every exported file: the format, and _transform false because stored
// values are already transformed (basic-auth passwords are hashes), as Kong's own export says.
var header = []struct {
	key string
	val any
}{{"_format_version", FormatVersion}, {"_transform", false}}

// JSON encodes the document: the header keys, then one collection per key in export order, one
// row per line with its keys sorted. The encoding is deterministic.
func (d Document) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteString("{\n")
	for i, h := range header {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "  %q: ", h.key)
		if err := enc.Encode(h.val); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1)
	}
	for _, s := range d.Sections {
		fmt.Fprintf(&b, ",\n  %q: [", s.Name)
		for j, row := range s.Rows {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString("\n    ")
			if err := enc.Encode(row); err != nil {
				return nil, fmt.Errorf("encode %s %v: %w", s.Name, row["id"], err)
			}
			b.Truncate(b.Len() - 1)
		}
		b.WriteString("\n  ]")
	}
	b.WriteString("\n}\n")
	return b.Bytes(), nil
}

// YAML encodes the document as YAML: the same keys in the same order as JSON, row keys sorted.
// The encoding is deterministic.
func (d Document) YAML() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, val any) error {
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
		v := &yaml.Node{}
		if err := v.Encode(val); err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		root.Content = append(root.Content, k, v)
		return nil
	}
	for _, h := range header {
		if err := add(h.key, h.val); err != nil {
			return nil, err
		}
	}
	for _, s := range d.Sections {
		rows := make([]any, len(s.Rows))
		for i, r := range s.Rows {
			rows[i] = r
		}
		if err := add(s.Name, rows); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
