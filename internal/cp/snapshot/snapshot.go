// Package snapshot turns one consistent read of a runtime group's configuration into what its
// instances receive: Kong's config_table (declarative format 3.0, flattened), Kong's config hash
// and per-collection hashes, and the encoded frames. A snapshot is immutable once built and is
// shared by every instance of the group, so each frame is encoded once per revision and kind.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/kongcompat"
	"github.com/google/uuid"
)

// FormatVersion is the declarative format of every config_table this package builds.
const FormatVersion = "3.0"

// exportOrder is Kong's export order (kong/db/declarative/export.lua walks the DAOs in
// topological order): parents before the entities that refer to them. Entity types known to the
// schema but missing here follow in name order. The order is kept for documentation and for
// ordered renderings; a config_table is a JSON object and its hash sorts keys anyway.
var exportOrder = []string{
	"workspaces", "consumers", "certificates", "services", "routes", "snis", "upstreams", "targets",
	"plugins", "ca_certificates", "vaults", "key_sets", "keys",
	"consumer_groups", "consumer_group_consumers",
	"keyauth_credentials", "basicauth_credentials", "jwt_secrets", "acls", "hmacauth_credentials",
}

// ExportOrder returns the collection names of a config_table in Kong's export order. The slice
// is a copy.
func ExportOrder() []string {
	out := slices.Clone(exportOrder)
	for _, e := range schema.Entities() {
		if !slices.Contains(out, e.Name) {
			out = append(out, e.Name)
		}
	}
	return out
}

// workspaceNamespace derives each group's default workspace id, so that the id (and therefore
// the config hash) is stable across builds and control plane restarts.
var workspaceNamespace = uuid.MustParse("5b0f3f6e-2f55-4d0e-9a43-8d1e0b6c9a11")

// WorkspaceID returns the id of the default workspace sent to the instances of a group: a
// name-based UUID of the group id, the same on every control plane process.
func WorkspaceID(groupID string) string {
	return uuid.NewSHA1(workspaceNamespace, []byte(groupID)).String()
}

// Snapshot is one revision of one group as its instances receive it. Every field is immutable
// after Build returns it; the encoded frames are computed on first use and then shared.
type Snapshot struct {
	// GroupID is the runtime group the snapshot belongs to.
	GroupID string
	// Revision is the group's revision the configuration was read at; > 0 once the group was
	// written to, 0 for a group that never was.
	Revision int64
	// ConfigTable is Kong's config_table. It must not be modified.
	ConfigTable map[string]any
	// Hash is wire.ConfigHash(ConfigTable): what an instance running it reports in its pings.
	Hash string
	// Hashes are the per-collection hashes; Hashes.Config == Hash.
	Hashes wire.Hashes
	// BuiltAt is when the snapshot was built (the export time in reconfigure frames).
	BuiltAt time.Time

	kongOnce    sync.Once
	kongFrame   []byte
	kongErr     error
	gantryOnce  sync.Once
	gantryFrame []byte
	gantryErr   error

	// kongMu guards kong: the variants for older Kong data planes, by version class.
	kongMu sync.Mutex
	kong   map[int64]*KongVariant
}

// KongVariant is a snapshot as the Kong data planes of one version class (kongcompat.Class)
// receive it: the configuration downgraded for them, its hashes and its frame. Every data plane of
// the class shares it, and it is computed once per snapshot (that is, per revision) and class.
// Fields are immutable.
type KongVariant struct {
	// Class is the version class (0: the newest, the snapshot itself).
	Class int64
	// ConfigTable is what the data planes receive; the snapshot's own table when nothing had to
	// be downgraded. It must not be modified.
	ConfigTable map[string]any
	// Hash is wire.ConfigHash(ConfigTable): what a data plane of the class reports once it runs
	// the revision, and so the hash the control plane expects from it.
	Hash string
	// Hashes are the per-collection hashes; Hashes.Config == Hash.
	Hashes wire.Hashes
	// Issues are the compatibility warnings of the downgrade (kongcompat.Result.Issues); nil
	// when nothing that changes behaviour was removed.
	Issues []wire.CompatibilityIssue

	snap      *Snapshot
	frameOnce sync.Once
	frame     []byte
	frameErr  error
}

// ForKong returns the snapshot as a Kong data plane of version dpVersion must receive it. The
// variant of each version class is computed on first use and then shared; the newest class, and a
// class whose downgrade changes nothing, get the snapshot's own table, hash and frame.
func (s *Snapshot) ForKong(dpVersion string) (*KongVariant, error) {
	class := kongcompat.Class(dpVersion)
	s.kongMu.Lock()
	defer s.kongMu.Unlock()
	if v, ok := s.kong[class]; ok {
		return v, nil
	}
	v := &KongVariant{Class: class, ConfigTable: s.ConfigTable, Hash: s.Hash, Hashes: s.Hashes, snap: s}
	if res := kongcompat.Downgrade(s.ConfigTable, class); res.Changed {
		sum, hashes, err := wire.ConfigHash(res.Config)
		if err != nil {
			return nil, fmt.Errorf("snapshot of group %s revision %d for Kong %s: hashing: %w", s.GroupID, s.Revision, dpVersion, err)
		}
		v.ConfigTable, v.Hash, v.Hashes, v.Issues = res.Config, sum, hashes, res.Issues
	}
	if s.kong == nil {
		s.kong = map[int64]*KongVariant{}
	}
	s.kong[class] = v
	return v, nil
}

// KongFrame returns the gzip'd reconfigure frame of the variant, encoded once and shared like
// Snapshot.KongFrame (which it is when the variant is the snapshot's own table).
func (v *KongVariant) KongFrame() ([]byte, error) {
	if v.Hash == v.snap.Hash {
		return v.snap.KongFrame()
	}
	v.frameOnce.Do(func() {
		v.frame, v.frameErr = wire.EncodeCPFrame(&wire.Reconfigure{
			Timestamp: wire.UnixSeconds(v.snap.BuiltAt), ConfigTable: v.ConfigTable, ConfigHash: v.Hash, Hashes: v.Hashes,
		})
	})
	return v.frame, v.frameErr
}

// KongFrame returns the gzip'd reconfigure frame for Kong data planes. It is encoded once and
// the same bytes are returned to every caller, who must not modify them.
func (s *Snapshot) KongFrame() ([]byte, error) {
	s.kongOnce.Do(func() {
		s.kongFrame, s.kongErr = wire.EncodeCPFrame(&wire.Reconfigure{
			Timestamp: wire.UnixSeconds(s.BuiltAt), ConfigTable: s.ConfigTable, ConfigHash: s.Hash, Hashes: s.Hashes,
		})
	})
	return s.kongFrame, s.kongErr
}

// GantryFrame returns the gzip'd revision frame for Gantry runtimes that negotiated
// wire.CapRevisions. Encoded once, shared like KongFrame. A snapshot of revision 0 has no
// revision frame (the runtime is sent the reconfigure frame instead).
func (s *Snapshot) GantryFrame() ([]byte, error) {
	s.gantryOnce.Do(func() {
		if s.Revision <= 0 {
			s.gantryErr = errors.New("snapshot: revision 0 has no revision frame")
			return
		}
		s.gantryFrame, s.gantryErr = wire.EncodeCPFrame(&wire.Revision{
			Revision: s.Revision, Timestamp: wire.UnixSeconds(s.BuiltAt), ConfigTable: s.ConfigTable, ConfigHash: s.Hash, Hashes: s.Hashes,
		})
	})
	return s.gantryFrame, s.gantryErr
}

// Compile builds Kong's config_table from one export of a group, the way Kong's control plane
// exports its database for data planes:
//
//   - `_format_version` "3.0" and `_transform` false (values are stored already transformed);
//   - one array per DAO name, rows ordered by id, every field present (null when unset);
//   - foreign keys flattened to the referenced id string;
//   - empty collections left out (a missing key and [] hash differently);
//   - disabled services, the routes of disabled services, plugins on either, and disabled
//     plugins left out;
//   - consumer group memberships as `consumer_group_consumers` rows {consumer_group, consumer};
//   - the group's default workspace, with a stable id (WorkspaceID).
//
// snap is not modified; the result shares no maps with it.
func Compile(groupID string, snap entitystore.Snapshot) (map[string]any, error) {
	out := map[string]any{
		"_format_version": FormatVersion,
		"_transform":      false,
		"workspaces": []any{map[string]any{
			"id": WorkspaceID(groupID), "name": "default", "comment": nil, "config": map[string]any{}, "meta": map[string]any{},
		}},
	}
	disabledServices := map[string]bool{}
	for _, d := range snap.Entities["services"] {
		if d["enabled"] == false {
			disabledServices[idOf(d)] = true
		}
	}
	skippedRoutes := map[string]bool{}
	for _, d := range snap.Entities["routes"] {
		if disabledServices[refID(d["service"])] {
			skippedRoutes[idOf(d)] = true
		}
	}
	skip := func(name string, d entitystore.Doc) bool {
		switch name {
		case "services":
			return disabledServices[idOf(d)]
		case "routes":
			return skippedRoutes[idOf(d)]
		case "plugins":
			return d["enabled"] == false || disabledServices[refID(d["service"])] || skippedRoutes[refID(d["route"])]
		}
		return false
	}
	for name, docs := range snap.Entities {
		e, ok := schema.Lookup(name)
		if !ok || e.Name != name {
			return nil, fmt.Errorf("snapshot: unknown entity type %q", name)
		}
		rows := make([]any, 0, len(docs))
		for _, d := range docs {
			if skip(name, d) {
				continue
			}
			rows = append(rows, flatten(e, d))
		}
		if len(rows) > 0 {
			out[name] = rows
		}
	}
	if len(snap.Memberships) > 0 {
		rows := make([]any, 0, len(snap.Memberships))
		for _, m := range snap.Memberships {
			rows = append(rows, map[string]any{"consumer_group": m[0], "consumer": m[1]})
		}
		out["consumer_group_consumers"] = rows
	}
	return out, nil
}

// flatten copies d, replacing each foreign key {"id": x} by x. Nested values are shared with d,
// which is fine because neither side is modified afterwards.
func flatten(e *schema.Entity, d entitystore.Doc) map[string]any {
	row := make(map[string]any, len(d))
	for k, v := range d {
		row[k] = v
	}
	for _, r := range e.Refs {
		if v, ok := row[r.Field]; ok && v != nil {
			row[r.Field] = refID(v)
		}
	}
	return row
}

func idOf(d map[string]any) string { s, _ := d["id"].(string); return s }

// refID returns the id of a foreign key value, {"id": x} or already flattened x.
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

// ConsistencyError lists the references of a config_table that do not resolve.
type ConsistencyError struct {
	// Dangling lists "collection id field -> target id", at most 20 of them, sorted.
	Dangling []string
	// Total is how many dangling references were found.
	Total int
}

// Error implements error.
func (e *ConsistencyError) Error() string {
	return fmt.Sprintf("configuration is inconsistent: %d dangling reference(s): %s", e.Total, strings.Join(e.Dangling, "; "))
}

// Check verifies that every reference in a compiled config_table resolves to a row that is also
// in it: a configuration that fails here must never reach an instance, which would refuse it (or
// worse, half apply it). It returns a *ConsistencyError.
func Check(config map[string]any) error {
	ids := map[string]map[string]bool{}
	for name, v := range config {
		rows, _ := v.([]any)
		set := make(map[string]bool, len(rows))
		for _, r := range rows {
			if m, ok := r.(map[string]any); ok {
				set[idOf(m)] = true
			}
		}
		ids[name] = set
	}
	var dangling []string
	check := func(name, id, field, target string, v any) {
		s, _ := v.(string)
		if v == nil || (s != "" && ids[target][s]) {
			return
		}
		dangling = append(dangling, fmt.Sprintf("%s %s %s -> %s %v", name, id, field, target, v))
	}
	for _, e := range schema.Entities() {
		rows, _ := config[e.Name].([]any)
		for _, r := range rows {
			m, _ := r.(map[string]any)
			for _, ref := range e.Refs {
				check(e.Name, idOf(m), ref.Field, ref.Entity, m[ref.Field])
			}
		}
	}
	rows, _ := config["consumer_group_consumers"].([]any)
	for _, r := range rows {
		m, _ := r.(map[string]any)
		check("consumer_group_consumers", "", "consumer_group", "consumer_groups", m["consumer_group"])
		check("consumer_group_consumers", "", "consumer", "consumers", m["consumer"])
	}
	if len(dangling) == 0 {
		return nil
	}
	sort.Strings(dangling)
	ce := &ConsistencyError{Total: len(dangling), Dangling: dangling}
	if len(ce.Dangling) > 20 {
		ce.Dangling = ce.Dangling[:20]
	}
	return ce
}

// Options configure a Builder.
type Options struct {
	// Entities is the configuration store; required.
	Entities *entitystore.Store
	// Now returns the current time; defaults to time.Now.
	Now func() time.Time
	// Logger receives build failures; defaults to discarding them.
	Logger *slog.Logger
}

// Builder builds snapshots and keeps the newest one of each group, so that every instance and
// every API call asking for the same revision shares one build. Safe for concurrent use.
type Builder struct {
	es  *entitystore.Store
	now func() time.Time
	log *slog.Logger

	// mu guards groups (the map itself) and pending; each group's entry has its own lock.
	mu     sync.Mutex
	groups map[string]*groupCache
	// pending are the groups BuildSoon asked for and Run has not built yet.
	pending map[string]bool

	kick chan struct{} // wakes Run; capacity 1
}

// groupCache holds a group's newest snapshot.
type groupCache struct {
	// mu serializes builds of the group (concurrent callers wait for one build instead of each
	// reading the whole configuration) and guards last.
	mu   sync.Mutex
	last *Snapshot
}

// New checks opts and returns a Builder.
func New(opts Options) (*Builder, error) {
	if opts.Entities == nil {
		return nil, errors.New("snapshot: Entities is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Builder{es: opts.Entities, now: opts.Now, log: opts.Logger.With("component", "snapshot"), groups: map[string]*groupCache{},
		kick: make(chan struct{}, 1)}, nil
}

// Build returns the snapshot of the group's current revision, building it only when the cached
// one is older. Bursts of writes coalesce here: a build reads the newest state, whatever
// revision triggered it. A group that does not exist yields an error wrapping store.ErrNotFound;
// a configuration that fails Check is an error and nothing is cached.
func (b *Builder) Build(ctx context.Context, groupID string) (*Snapshot, error) {
	rev, err := b.es.Revision(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("snapshot of group %s: %w", groupID, err)
	}
	b.mu.Lock()
	gc := b.groups[groupID]
	if gc == nil {
		gc = &groupCache{}
		b.groups[groupID] = gc
	}
	b.mu.Unlock()

	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.last != nil && gc.last.Revision >= rev {
		return gc.last, nil
	}
	exp, err := b.es.Export(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("snapshot of group %s: %w", groupID, err)
	}
	config, err := Compile(groupID, exp)
	if err != nil {
		return nil, err
	}
	if err := Check(config); err != nil {
		b.log.ErrorContext(ctx, "refusing to publish an inconsistent configuration", "group", groupID, "revision", exp.Revision, "err", err)
		return nil, fmt.Errorf("snapshot of group %s revision %d: %w", groupID, exp.Revision, err)
	}
	sum, hashes, err := wire.ConfigHash(config)
	if err != nil {
		return nil, fmt.Errorf("snapshot of group %s: hashing: %w", groupID, err)
	}
	s := &Snapshot{GroupID: groupID, Revision: exp.Revision, ConfigTable: config, Hash: sum, Hashes: hashes, BuiltAt: b.now()}
	gc.last = s
	// The revision's history row gets the hash its runtimes will report.
	if err := b.es.SetRevisionHash(ctx, groupID, s.Revision, s.Hash); err != nil {
		b.log.WarnContext(ctx, "cannot record the revision's hash", "group", groupID, "revision", s.Revision, "err", err)
	}
	return s, nil
}

// BuildSoon asks Run to build the group's snapshot: after a commit, so that every revision a
// burst ends with gets its hash recorded even when no instance is connected to ask for it.
// Requests for one group coalesce; it never blocks.
func (b *Builder) BuildSoon(groupID string) {
	b.mu.Lock()
	if b.pending == nil {
		b.pending = map[string]bool{}
	}
	b.pending[groupID] = true
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Run builds the snapshots BuildSoon asked for, one group at a time, until ctx ends. A group that
// is gone or whose configuration fails to build is logged and skipped.
func (b *Builder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		b.mu.Lock()
		groups := b.pending
		b.pending = nil
		b.mu.Unlock()
		for g := range groups {
			if ctx.Err() != nil {
				return
			}
			if _, err := b.Build(ctx, g); err != nil && !errors.Is(err, store.ErrNotFound) {
				b.log.WarnContext(ctx, "building the configuration after a commit", "group", g, "err", err)
			}
		}
	}
}

// Cached returns the newest snapshot built for the group, or nil.
func (b *Builder) Cached(groupID string) *Snapshot {
	b.mu.Lock()
	gc := b.groups[groupID]
	b.mu.Unlock()
	if gc == nil {
		return nil
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.last
}

// Forget drops the group's cached snapshot (after the group was deleted).
func (b *Builder) Forget(groupID string) {
	b.mu.Lock()
	delete(b.groups, groupID)
	b.mu.Unlock()
}
