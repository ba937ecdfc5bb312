// Package revisions serves the history of runtime groups' configurations: the recorded revisions,
// the configuration of any retained revision, the diff between two, and rollback.
//
// Storage is by deltas. entitystore records, in the transaction of every change, one revision row
// and the changed entities' documents before and after (cascaded deletes included). The
// configuration of revision n is the current configuration with the changes of the revisions
// after n undone, newest first. Deltas keep the cost of a small change small in large groups (a
// one-route change stores one route twice, not the group's 10,000 routes), and the current
// configuration, always at hand, is the one full copy. Reading an old revision costs the changes
// made since, bounded by retention (entitystore.Retention), which prunes only from the oldest end.
package revisions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/snapshot"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/wire"
)

var (
	// ErrNotFound is returned for a revision the group never had (or not yet).
	ErrNotFound = errors.New("no such revision")
	// ErrPruned is returned for a revision that retention removed from history, or that was made
	// before history was recorded.
	ErrPruned = errors.New("revision no longer in history")
)

// Options configure New.
type Options struct {
	// Entities is the configuration store whose history is served. Required.
	Entities *entitystore.Store
	Logger   *slog.Logger
}

// Service answers history questions about runtime groups. Build it with New.
type Service struct {
	es  *entitystore.Store
	log *slog.Logger
}

// New checks opts and returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Entities == nil {
		return nil, errors.New("revisions: Entities is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{es: opts.Entities, log: opts.Logger.With("component", "revisions")}, nil
}

// List returns one page of the group's revisions, newest first, and how many are recorded.
func (s *Service) List(ctx context.Context, groupID string, limit, offset int) ([]entitystore.Revision, int, error) {
	return s.es.Revisions(ctx, groupID, limit, offset)
}

// Get returns the metadata of revision n.
func (s *Service) Get(ctx context.Context, groupID string, n int64) (entitystore.Revision, error) {
	var r entitystore.Revision
	err := s.es.Read(ctx, groupID, func(t *entitystore.Tx) error {
		var err error
		r, err = info(t, n)
		return err
	})
	return r, err
}

// info returns revision n's metadata, or ErrNotFound / ErrPruned.
func info(t *entitystore.Tx, n int64) (entitystore.Revision, error) {
	r, err := t.RevisionInfo(n)
	if errors.Is(err, store.ErrNotFound) {
		if n >= 1 && n <= t.Revision() {
			return r, fmt.Errorf("revision %d: %w", n, ErrPruned)
		}
		return r, fmt.Errorf("revision %d: %w", n, ErrNotFound)
	}
	return r, err
}

// Config is the configuration of one revision.
type Config struct {
	entitystore.Snapshot
	// Hash is the configuration hash runtimes report when they run it.
	Hash string
	// ConfigTable is Kong's flattened declarative 3.0 configuration, as sent to runtimes.
	ConfigTable map[string]any
}

// Config returns the configuration of revision n. Revision oldest-1 (0 for a group whose whole
// history is kept) is available too: it is what the oldest recorded change started from.
func (s *Service) Config(ctx context.Context, groupID string, n int64) (Config, error) {
	var snap entitystore.Snapshot
	err := s.es.Read(ctx, groupID, func(t *entitystore.Tx) error {
		var err error
		snap, err = configAt(t, n)
		return err
	})
	if err != nil {
		return Config{}, err
	}
	return compile(groupID, snap)
}

func compile(groupID string, snap entitystore.Snapshot) (Config, error) {
	table, err := snapshot.Compile(groupID, snap)
	if err != nil {
		return Config{}, fmt.Errorf("compile revision %d: %w", snap.Revision, err)
	}
	sum, _, err := wire.ConfigHash(table)
	if err != nil {
		return Config{}, fmt.Errorf("hash revision %d: %w", snap.Revision, err)
	}
	return Config{Snapshot: snap, Hash: sum, ConfigTable: table}, nil
}

// reachable checks that the configuration of revision n can be rebuilt: n is at most the
// current revision and every revision after it is still recorded.
func reachable(t *entitystore.Tx, n int64) error {
	cur := t.Revision()
	if n < 0 || n > cur {
		return fmt.Errorf("revision %d: %w", n, ErrNotFound)
	}
	if n == cur {
		return nil
	}
	oldest, ok, err := t.OldestRevision()
	if err != nil {
		return err
	}
	if !ok || n < oldest-1 {
		return fmt.Errorf("revision %d: %w", n, ErrPruned)
	}
	return nil
}

// configAt rebuilds revision n's configuration: the current one with the later changes undone.
func configAt(t *entitystore.Tx, n int64) (entitystore.Snapshot, error) {
	if err := reachable(t, n); err != nil {
		return entitystore.Snapshot{}, err
	}
	cur, err := t.Snapshot()
	if err != nil {
		return cur, err
	}
	if n == cur.Revision {
		return cur, nil
	}
	changes, err := t.ChangesAfter(n)
	if err != nil {
		return cur, err
	}
	m := newModel(cur)
	for _, c := range changes {
		m.set(c.Type, c.ID, c.Before)
	}
	out := m.snapshot()
	out.Revision = n
	return out, nil
}

// model is a configuration keyed by type and id, memberships included as MembershipType.
type model map[string]map[string]entitystore.Doc

func newModel(s entitystore.Snapshot) model {
	m := model{}
	for typ, docs := range s.Entities {
		for _, d := range docs {
			m.set(typ, d["id"].(string), d)
		}
	}
	for _, p := range s.Memberships {
		m.set(entitystore.MembershipType, entitystore.MembershipID(p[0], p[1]), entitystore.Doc{
			"consumer_group": map[string]any{"id": p[0]}, "consumer": map[string]any{"id": p[1]},
		})
	}
	return m
}

// set stores d under typ and id, or removes the entry when d is nil.
func (m model) set(typ, id string, d entitystore.Doc) {
	if d == nil {
		delete(m[typ], id)
		return
	}
	if m[typ] == nil {
		m[typ] = map[string]entitystore.Doc{}
	}
	m[typ][id] = d
}

func (m model) snapshot() entitystore.Snapshot {
	s := entitystore.Snapshot{Entities: map[string][]entitystore.Doc{}}
	for typ, byID := range m {
		ids := make([]string, 0, len(byID))
		for id := range byID {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if typ == entitystore.MembershipType {
			for _, id := range ids {
				s.Memberships = append(s.Memberships, entitystore.MembershipPair(byID[id]))
			}
			continue
		}
		if len(ids) == 0 {
			continue
		}
		docs := make([]entitystore.Doc, 0, len(ids))
		for _, id := range ids {
			docs = append(docs, byID[id])
		}
		s.Entities[typ] = docs
	}
	slices.SortFunc(s.Memberships, func(a, b [2]string) int {
		if c := cmpString(a[0], b[0]); c != 0 {
			return c
		}
		return cmpString(a[1], b[1])
	})
	return s
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Diff kinds.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// EntityDiff is one entity that differs between two revisions.
type EntityDiff struct {
	// Type is the entity type (DAO name) or consumer_group_consumers for a membership.
	Type string `json:"entity_type"`
	ID   string `json:"id"`
	// Name is the entity's endpoint key value (name, username, …) when it has one.
	Name string `json:"name,omitempty"`
	// Change is added, removed or changed.
	Change string `json:"change"`
	// Fields are the changed top-level fields, sorted; updated_at is ignored.
	Fields []string `json:"fields,omitempty"`
}

// Diff is what changed from revision From to revision To.
type Diff struct {
	From     int64        `json:"from"`
	To       int64        `json:"to"`
	Entities []EntityDiff `json:"entities"`
}

// Diff returns what changed from revision against to revision n (per entity: added, removed, or
// changed with the changed fields).
func (s *Service) Diff(ctx context.Context, groupID string, n, against int64) (Diff, error) {
	var from, to entitystore.Snapshot
	err := s.es.Read(ctx, groupID, func(t *entitystore.Tx) error {
		var err error
		if from, err = configAt(t, against); err != nil {
			return err
		}
		to, err = configAt(t, n)
		return err
	})
	if err != nil {
		return Diff{}, err
	}
	return Diff{From: against, To: n, Entities: diff(newModel(from), newModel(to))}, nil
}

// typeOrder lists entity types parents first, memberships last.
func typeOrder() []string {
	var out []string
	for _, e := range schema.Entities() {
		out = append(out, e.Name)
	}
	return append(out, entitystore.MembershipType)
}

func diff(from, to model) []EntityDiff {
	out := []EntityDiff{}
	for _, typ := range typeOrder() {
		ids := map[string]bool{}
		for id := range from[typ] {
			ids[id] = true
		}
		for id := range to[typ] {
			ids[id] = true
		}
		sorted := make([]string, 0, len(ids))
		for id := range ids {
			sorted = append(sorted, id)
		}
		sort.Strings(sorted)
		for _, id := range sorted {
			a, b := from[typ][id], to[typ][id]
			d := EntityDiff{Type: typ, ID: id}
			switch {
			case a == nil:
				d.Change, d.Name = Added, name(typ, b)
			case b == nil:
				d.Change, d.Name = Removed, name(typ, a)
			default:
				d.Fields = changedFields(a, b)
				if len(d.Fields) == 0 {
					continue
				}
				d.Change, d.Name = Changed, name(typ, b)
			}
			out = append(out, d)
		}
	}
	return out
}

func name(typ string, d entitystore.Doc) string {
	e, ok := schema.Lookup(typ)
	if !ok || e.EndpointKey == "" || d[e.EndpointKey] == nil {
		return ""
	}
	return fmt.Sprint(d[e.EndpointKey])
}

// changedFields returns the top-level fields whose values differ, updated_at aside.
func changedFields(a, b entitystore.Doc) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range []entitystore.Doc{a, b} {
		for k := range d {
			if seen[k] || k == "updated_at" {
				continue
			}
			seen[k] = true
			if !sameJSON(a[k], b[k]) {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// Rollback makes a new revision whose configuration equals revision n's, ids kept, in one
// transaction: entities absent from n are deleted (children first), entities missing are
// inserted (parents first), entities that differ are replaced (in rounds, so that names passed
// between entities, even swapped, are taken in turn), and memberships follow. The database
// checks the result like any write, and any failure changes nothing; what cannot be applied is
// a swap of composite keys (two targets of an upstream exchanging addresses). When the current
// configuration already equals revision n, nothing is written and rolledBack is false; the
// answer is then the current revision.
func (s *Service) Rollback(ctx context.Context, groupID string, n int64) (rev entitystore.Revision, rolledBack bool, err error) {
	var before int64
	newRev, err := s.es.Write(entitystore.WithSource(ctx, entitystore.SourceRollback), groupID, func(t *entitystore.Tx) error {
		before = t.Revision()
		if _, err := info(t, n); err != nil {
			return err
		}
		target, err := configAt(t, n)
		if err != nil {
			return err
		}
		cur, err := t.Snapshot()
		if err != nil {
			return err
		}
		return apply(t, newModel(cur), newModel(target))
	})
	if err != nil {
		return rev, false, fmt.Errorf("roll group %s back to revision %d: %w", groupID, n, err)
	}
	err = s.es.Read(ctx, groupID, func(t *entitystore.Tx) error {
		var err error
		rev, err = t.RevisionInfo(newRev)
		if errors.Is(err, store.ErrNotFound) && newRev == before {
			// Nothing changed and the current revision predates history: answer its number.
			rev, err = entitystore.Revision{Number: newRev}, nil
		}
		return err
	})
	return rev, newRev != before, err
}

// apply turns the configuration cur into target inside t.
func apply(t *entitystore.Tx, cur, target model) error {
	types := schema.Entities()
	// Memberships that go, then entities that go, children before parents. A delete refused
	// because an entity that stays still references it waits until that entity is replaced.
	for _, id := range sortedIDs(cur[entitystore.MembershipType]) {
		if target[entitystore.MembershipType][id] == nil {
			p := entitystore.MembershipPair(cur[entitystore.MembershipType][id])
			if _, err := t.RemoveMember(p[0], p[1]); err != nil {
				return err
			}
		}
	}
	type ref struct {
		e  *schema.Entity
		id string
	}
	var deferred []ref
	for i := len(types) - 1; i >= 0; i-- {
		e := types[i]
		for _, id := range sortedIDs(cur[e.Name]) {
			if target[e.Name][id] != nil {
				continue
			}
			if _, err := t.Delete(e, id); err != nil {
				var se *schema.Error
				if errors.As(err, &se) {
					deferred = append(deferred, ref{e, id})
					continue
				}
				return err
			}
		}
	}
	// Deletes may have cascaded to entities that stay with other references: compare with what
	// is left.
	left, err := t.Snapshot()
	if err != nil {
		return err
	}
	cur = newModel(left)
	// Entities that come back or change, parents before children. A write the store refuses
	// (a name another entity still holds, a parent not yet restored) waits for the next round;
	// when a round makes no progress, the blocked replacements first give up their unique
	// values, which breaks cycles such as two services that swapped names.
	var pending []write
	for _, e := range types {
		for _, id := range sortedIDs(target[e.Name]) {
			want, have := target[e.Name][id], cur[e.Name][id]
			switch {
			case have == nil:
				pending = append(pending, write{e: e, id: id, doc: want, insert: true})
			case !sameJSON(have, want):
				pending = append(pending, write{e: e, id: id, doc: want, current: have})
			}
		}
	}
	for len(pending) > 0 {
		var (
			blocked  []write
			firstErr error
		)
		for _, w := range pending {
			err := w.apply(t)
			var se *schema.Error
			switch {
			case err == nil:
			case errors.As(err, &se):
				blocked = append(blocked, w)
				if firstErr == nil {
					firstErr = fmt.Errorf("restore %s %s: %w", w.e.Name, w.id, err)
				}
			default:
				return fmt.Errorf("restore %s %s: %w", w.e.Name, w.id, err)
			}
		}
		if len(blocked) == len(pending) {
			freed := false
			for i, w := range blocked {
				if w.insert || w.freed || !entitystore.HasUniqueValue(w.e, w.current) {
					continue
				}
				if err := t.Replace(w.e, entitystore.WithoutUnique(w.e, w.current)); err != nil {
					return fmt.Errorf("restore %s %s: %w", w.e.Name, w.id, err)
				}
				blocked[i].freed, freed = true, true
			}
			if !freed {
				return firstErr
			}
		}
		pending = blocked
	}
	for _, r := range deferred {
		if _, err := t.Delete(r.e, r.id); err != nil {
			return fmt.Errorf("remove %s %s: %w", r.e.Name, r.id, err)
		}
	}
	for _, id := range sortedIDs(target[entitystore.MembershipType]) {
		if cur[entitystore.MembershipType][id] == nil {
			p := entitystore.MembershipPair(target[entitystore.MembershipType][id])
			if err := t.AddMember(p[0], p[1]); err != nil {
				return fmt.Errorf("restore membership %s: %w", id, err)
			}
		}
	}
	return nil
}

// write is one insert or replacement of apply.
type write struct {
	e      *schema.Entity
	id     string
	doc    entitystore.Doc
	insert bool
	// current is the stored document a replacement overwrites; freed is set once it was
	// rewritten without its unique values.
	current entitystore.Doc
	freed   bool
}

func (w write) apply(t *entitystore.Tx) error {
	if w.insert {
		return t.Insert(w.e, w.doc)
	}
	return t.Replace(w.e, w.doc)
}

func sortedIDs(m map[string]entitystore.Doc) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// DefaultPruneInterval is how often RunRetention prunes history.
const DefaultPruneInterval = time.Hour

// RunRetention prunes every group's history by r now and then every interval (DefaultPruneInterval
// when zero) until ctx ends. When several control plane processes share the database, one of them
// prunes at a time (the others skip that tick). Failures are logged and retried at the next tick.
func (s *Service) RunRetention(ctx context.Context, r entitystore.Retention, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPruneInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var n int64
		_, err := s.es.Exclusive(ctx, "revision-retention", func(ctx context.Context) error {
			var err error
			n, err = s.es.PruneRevisions(ctx, r, time.Now())
			return err
		})
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.ErrorContext(ctx, "prune revision history", "err", err)
		case n > 0:
			s.log.InfoContext(ctx, "pruned revision history", "revisions", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
