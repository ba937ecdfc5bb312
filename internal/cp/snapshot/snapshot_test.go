package snapshot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/snapshot"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Fixed ids keep the golden file stable.
const (
	svcA      = "00000000-0000-4000-8000-00000000000a"
	svcOff    = "00000000-0000-4000-8000-00000000000b"
	routeA    = "00000000-0000-4000-8000-0000000000a1"
	routeOff  = "00000000-0000-4000-8000-0000000000b1"
	consumer  = "00000000-0000-4000-8000-0000000000c1"
	cgroup    = "00000000-0000-4000-8000-0000000000c9"
	keyAuth   = "00000000-0000-4000-8000-0000000000d1"
	plugRoute = "00000000-0000-4000-8000-0000000000e1"
	plugOffSv = "00000000-0000-4000-8000-0000000000e2"
	plugOff   = "00000000-0000-4000-8000-0000000000e3"
	plugOnRtB = "00000000-0000-4000-8000-0000000000e4"
	groupID   = "11111111-1111-4111-8111-111111111111"
)

func lookup(t *testing.T, name string) *schema.Entity {
	t.Helper()
	e, ok := schema.Lookup(name)
	if !ok {
		t.Fatalf("no entity %s", name)
	}
	return e
}

// doc processes input as the Admin API would, with fixed timestamps.
func doc(t *testing.T, name string, in map[string]any) entitystore.Doc {
	t.Helper()
	e := lookup(t, name)
	if name == "plugins" {
		p, ok := schema.LookupPlugin(in["name"].(string))
		if !ok {
			t.Fatalf("no plugin %v", in["name"])
		}
		e = p.Entity()
	}
	d, _, err := e.Process(schema.OpCreate, in, nil)
	if err != nil {
		t.Fatalf("process %s: %v", name, err)
	}
	for _, f := range []string{"created_at", "updated_at"} {
		if _, ok := d[f]; ok {
			d[f] = int64(1700000000)
		}
	}
	return d
}

// seed creates a group with a small configuration covering every rule of Compile.
func seed(t *testing.T, s *sqlstore.Store, groupID string) *entitystore.Store {
	t.Helper()
	ctx := context.Background()
	res, err := s.Bootstrap(ctx, store.BootstrapParams{OrgName: "o", Region: "us", AdminName: "a", AdminToken: store.Token{Hash: uuid.NewString(), Hint: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	g := store.RuntimeGroup{ID: groupID, OrgID: res.Org.ID, Region: "us", Name: "golden", ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs"}
	if err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	es := entitystore.New(s)
	_, err = es.Write(ctx, groupID, func(tx *entitystore.Tx) error {
		ins := func(name string, in map[string]any) {
			if err != nil {
				return
			}
			err = tx.Insert(lookup(t, name), doc(t, name, in))
		}
		ref := func(id string) map[string]any { return map[string]any{"id": id} }
		ins("services", map[string]any{"id": svcA, "name": "billing", "host": "billing.internal", "tags": []any{"team-a"}})
		ins("services", map[string]any{"id": svcOff, "name": "legacy", "host": "legacy.internal", "enabled": false})
		ins("routes", map[string]any{"id": routeA, "name": "billing", "paths": []any{"/billing"}, "service": ref(svcA)})
		ins("routes", map[string]any{"id": routeOff, "name": "legacy", "paths": []any{"/legacy"}, "service": ref(svcOff)})
		ins("consumers", map[string]any{"id": consumer, "username": "alice"})
		ins("consumer_groups", map[string]any{"id": cgroup, "name": "gold"})
		ins("keyauth_credentials", map[string]any{"id": keyAuth, "key": "alice-key", "consumer": ref(consumer)})
		ins("plugins", map[string]any{"id": plugRoute, "name": "key-auth", "route": ref(routeA)})
		ins("plugins", map[string]any{"id": plugOffSv, "name": "correlation-id", "service": ref(svcOff)})
		ins("plugins", map[string]any{"id": plugOff, "name": "cors", "enabled": false})
		ins("plugins", map[string]any{"id": plugOnRtB, "name": "request-termination", "route": ref(routeOff)})
		if err != nil {
			return err
		}
		return tx.AddMember(cgroup, consumer)
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return es
}

func TestBuildGolden(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	es := seed(t, s, groupID)
	b, err := snapshot.New(snapshot.Options{Entities: es})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.Build(context.Background(), groupID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(map[string]any{"config_table": snap.ConfigTable, "config_hash": snap.Hash, "hashes": snap.Hashes}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden_config.json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("config_table differs from %s (run with -update if the change is intended):\n%s", path, got)
	}

	// The rules the golden file encodes, asserted directly so a careless -update cannot hide a
	// regression.
	ct := snap.ConfigTable
	ids := func(name string) []string {
		var out []string
		rows, _ := ct[name].([]any)
		for _, r := range rows {
			id, _ := r.(map[string]any)["id"].(string)
			out = append(out, id)
		}
		return out
	}
	cases := []struct {
		name string
		got  any
		want any
	}{
		{"format", ct["_format_version"], "3.0"},
		{"transform", ct["_transform"], false},
		{"disabled service left out", strings.Join(ids("services"), ","), svcA},
		{"routes of disabled services left out", strings.Join(ids("routes"), ","), routeA},
		{"plugins on disabled services, their routes, and disabled plugins left out", strings.Join(ids("plugins"), ","), plugRoute},
		{"route service flattened", ct["routes"].([]any)[0].(map[string]any)["service"], svcA},
		{"credential consumer flattened", ct["keyauth_credentials"].([]any)[0].(map[string]any)["consumer"], consumer},
		{"unset fields are null", hasNull(ct["services"].([]any)[0].(map[string]any), "client_certificate"), true},
		{"empty collections left out", ct["upstreams"] == nil && ct["targets"] == nil, true},
		{"membership", ct["consumer_group_consumers"].([]any)[0], map[string]any{"consumer_group": cgroup, "consumer": consumer}},
		{"revision", snap.Revision, int64(1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gj, _ := json.Marshal(c.got)
			wj, _ := json.Marshal(c.want)
			if !bytes.Equal(gj, wj) {
				t.Errorf("got %s, want %s", gj, wj)
			}
		})
	}
	sum, _, _ := wire.ConfigHash(ct)
	if sum != snap.Hash || snap.Hashes.Config != sum {
		t.Errorf("hash %s / %s, recomputed %s", snap.Hash, snap.Hashes.Config, sum)
	}
}

func hasNull(m map[string]any, k string) bool {
	v, ok := m[k]
	return ok && v == nil
}

// TestFramesDecode checks that the shared frames decode as the instances will decode them, and
// that the hash an instance recomputes from the decoded JSON equals the control plane's.
func TestFramesDecode(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	es := seed(t, s, groupID)
	b, _ := snapshot.New(snapshot.Options{Entities: es})
	snap, err := b.Build(context.Background(), groupID)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := snap.KongFrame()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := snap.KongFrame(); &again[0] != &kf[0] {
		t.Error("KongFrame re-encoded instead of sharing the first encoding")
	}
	r, err := wire.DecodeReconfigure(kf, 0)
	if err != nil {
		t.Fatal(err)
	}
	computed, _, err := wire.ConfigHash(r.ConfigTable)
	if err != nil || computed != snap.Hash || r.ConfigHash != snap.Hash || r.Hashes != snap.Hashes {
		t.Fatalf("decoded reconfigure: recomputed %s, sent %s, want %s (%v)", computed, r.ConfigHash, snap.Hash, err)
	}
	gf, err := snap.GantryFrame()
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.DecodeCPFrame(gf, 0)
	if err != nil {
		t.Fatal(err)
	}
	rev, ok := m.(*wire.Revision)
	if !ok || rev.Revision != snap.Revision || rev.ConfigHash != snap.Hash {
		t.Fatalf("revision frame %#v", m)
	}
}

func TestBuildCachesPerRevision(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := seed(t, s, groupID)
		b, _ := snapshot.New(snapshot.Options{Entities: es})
		first, err := b.Build(ctx, groupID)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := b.Build(ctx, groupID)
		if again != first {
			t.Error("same revision built twice")
		}
		if _, err := es.Write(ctx, groupID, func(tx *entitystore.Tx) error {
			return tx.Insert(lookup(t, "upstreams"), doc(t, "upstreams", map[string]any{"name": "pool"}))
		}); err != nil {
			t.Fatal(err)
		}
		next, err := b.Build(ctx, groupID)
		if err != nil {
			t.Fatal(err)
		}
		if next == first || next.Revision != first.Revision+1 || next.Hash == first.Hash || next.Hashes.Upstreams == wire.EmptyConfigHash {
			t.Errorf("after a write: revision %d -> %d, hash %s -> %s", first.Revision, next.Revision, first.Hash, next.Hash)
		}
		if b.Cached(groupID) != next {
			t.Error("Cached does not return the newest build")
		}
		if _, err := b.Build(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown group: %v", err)
		}
	})
}

func TestCheck(t *testing.T) {
	ok := map[string]any{
		"services": []any{map[string]any{"id": "s1", "client_certificate": nil}},
		"routes":   []any{map[string]any{"id": "r1", "service": "s1"}},
	}
	cases := []struct {
		name    string
		config  map[string]any
		dangles int
	}{
		{"consistent", ok, 0},
		{"route to missing service", map[string]any{"routes": []any{map[string]any{"id": "r1", "service": "nope"}}}, 1},
		{"plugin to missing route and consumer", map[string]any{"plugins": []any{map[string]any{"id": "p1", "route": "r9", "consumer": "c9"}}}, 2},
		{"membership to missing consumer", map[string]any{"consumer_groups": []any{map[string]any{"id": "g"}}, "consumer_group_consumers": []any{map[string]any{"consumer_group": "g", "consumer": "c"}}}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := snapshot.Check(c.config)
			var ce *snapshot.ConsistencyError
			switch {
			case c.dangles == 0 && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.dangles > 0 && (!errors.As(err, &ce) || ce.Total != c.dangles):
				t.Fatalf("got %v, want %d dangling", err, c.dangles)
			}
		})
	}
}

func BenchmarkKongFrame(b *testing.B) {
	cfg := map[string]any{"_format_version": "3.0", "services": []any{}}
	rows := make([]any, 0, 1000)
	for i := range 1000 {
		rows = append(rows, map[string]any{"id": uuid.NewString(), "name": "svc" + string(rune('a'+i%26)), "host": "h", "port": int64(80), "enabled": true})
	}
	cfg["services"] = rows
	b.ReportAllocs()
	for b.Loop() {
		sn := &snapshot.Snapshot{ConfigTable: cfg}
		if _, err := sn.KongFrame(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBuildRecordsRevisionHash checks a build records its hash in the revision's history row,
// and that BuildSoon, served by Run, builds after a commit without anyone asking for the
// configuration.
func TestBuildRecordsRevisionHash(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		es := seed(t, s, groupID)
		b, _ := snapshot.New(snapshot.Options{Entities: es})
		hashOf := func(n int64) string {
			t.Helper()
			revs, _, err := es.Revisions(ctx, groupID, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range revs {
				if r.Number == n {
					return r.Hash
				}
			}
			t.Fatalf("revision %d is not recorded", n)
			return ""
		}
		snap, err := b.Build(ctx, groupID)
		if err != nil {
			t.Fatal(err)
		}
		if got := hashOf(snap.Revision); got != snap.Hash {
			t.Fatalf("revision %d records hash %q, built %q", snap.Revision, got, snap.Hash)
		}

		go b.Run(ctx)
		rev, err := es.Write(ctx, groupID, func(tx *entitystore.Tx) error {
			return tx.Insert(lookup(t, "upstreams"), doc(t, "upstreams", map[string]any{"name": "pool"}))
		})
		if err != nil {
			t.Fatal(err)
		}
		if hashOf(rev) != "" {
			t.Fatal("a hash before any build")
		}
		b.BuildSoon(groupID)
		deadline := time.Now().Add(10 * time.Second)
		for hashOf(rev) == "" {
			if time.Now().After(deadline) {
				t.Fatal("BuildSoon did not build the new revision")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if c := b.Cached(groupID); c == nil || c.Revision != rev || hashOf(rev) != c.Hash {
			t.Errorf("revision %d: recorded %q, built %+v", rev, hashOf(rev), c)
		}
	})
}

// TestForKongIsComputedOncePerClass: data planes of one version class share one downgraded
// variant (and frame) per snapshot; the newest class is the snapshot itself.
func TestForKongIsComputedOncePerClass(t *testing.T) {
	t.Parallel()
	config := map[string]any{"_format_version": "3.0", "plugins": []any{map[string]any{"id": "p1", "name": "cors",
		"config": map[string]any{"private_network": true, "allow_origin_absent": false}}}}
	sum, hashes, err := wire.ConfigHash(config)
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshot.Snapshot{GroupID: groupID, Revision: 3, ConfigTable: config, Hash: sum, Hashes: hashes, BuiltAt: time.Unix(1700000000, 0)}
	get := func(v string) *snapshot.KongVariant {
		t.Helper()
		kv, err := s.ForKong(v)
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	a, b, c := get("3.4.2"), get("3.4.3.12-enterprise-edition"), get("3.9.1")
	if a != b || a == c {
		t.Fatalf("variants: 3.4.2 %p, 3.4.3.12 %p, 3.9.1 %p; want the first two shared, the third apart", a, b, c)
	}
	if a.Hash == sum || c.Hash == sum || a.Hash == c.Hash || len(a.Issues) != 2 || len(c.Issues) != 1 {
		t.Fatalf("hashes %s %s (full %s), issues %d %d", a.Hash, c.Hash, sum, len(a.Issues), len(c.Issues))
	}
	if h, _, _ := wire.ConfigHash(a.ConfigTable); h != a.Hash || a.Hashes.Config != a.Hash {
		t.Fatalf("variant hash %s, computed %s", a.Hash, h)
	}
	fa, err := a.KongFrame()
	if err != nil {
		t.Fatal(err)
	}
	if fb, _ := b.KongFrame(); &fa[0] != &fb[0] {
		t.Fatal("frame encoded twice for one class")
	}
	r, err := wire.DecodeReconfigure(fa, 0)
	if err != nil || r.ConfigHash != a.Hash {
		t.Fatalf("frame: %v, hash %s", err, r.ConfigHash)
	}
	for _, v := range []string{"3.10.0", "3.12.0", schema.KongVersion} {
		n := get(v)
		if n.Hash != sum || n.Issues != nil {
			t.Fatalf("%s: variant %+v, want the snapshot itself", v, n)
		}
		fn, _ := n.KongFrame()
		if fs, _ := s.KongFrame(); &fn[0] != &fs[0] {
			t.Fatalf("%s: frame is not the snapshot's", v)
		}
	}
	if _, ok := config["plugins"].([]any)[0].(map[string]any)["config"].(map[string]any)["private_network"]; !ok {
		t.Fatal("ForKong modified the snapshot's table")
	}
}
