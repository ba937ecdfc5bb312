package revisions_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/revisions"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

func lookup(t testing.TB, name string) *schema.Entity {
	t.Helper()
	e, ok := schema.Lookup(name)
	if !ok {
		t.Fatalf("no entity %s", name)
	}
	return e
}

// doc processes input as the Admin API would.
func doc(t testing.TB, name string, in map[string]any) entitystore.Doc {
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
	return d
}

func ref(id string) map[string]any { return map[string]any{"id": id} }

// newGroup bootstraps an organization and returns its default group's id.
func newGroup(t testing.TB, s *sqlstore.Store) string {
	t.Helper()
	res, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "o", Region: "us", AdminName: "a", AdminToken: store.Token{Hash: uuid.NewString(), Hint: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Group.ID
}

func selfSigned(t testing.TB, host string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}

// write runs fn as one change and fails the test on error.
func write(t *testing.T, es *entitystore.Store, group string, fn func(w *writer)) int64 {
	t.Helper()
	rev, err := es.Write(context.Background(), group, func(tx *entitystore.Tx) error {
		w := &writer{t: t, tx: tx}
		fn(w)
		return w.err
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return rev
}

type writer struct {
	t   *testing.T
	tx  *entitystore.Tx
	err error
}

func (w *writer) ins(name string, in map[string]any) {
	if w.err == nil {
		w.err = w.tx.Insert(lookup(w.t, name), doc(w.t, name, in))
	}
}

func (w *writer) replace(name, id string, change map[string]any) {
	if w.err != nil {
		return
	}
	d, err := w.tx.Get(lookup(w.t, name), id)
	if err != nil {
		w.err = err
		return
	}
	for k, v := range change {
		d[k] = v
	}
	switch at := d["updated_at"].(type) {
	case int64:
		d["updated_at"] = at + 1
	case float64: // targets keep milliseconds
		d["updated_at"] = at + 0.001
	}
	w.err = w.tx.Replace(lookup(w.t, name), d)
}

func (w *writer) del(name, id string) {
	if w.err != nil {
		return
	}
	ok, err := w.tx.Delete(lookup(w.t, name), id)
	if err == nil && !ok {
		w.t.Errorf("delete %s %s: nothing deleted", name, id)
	}
	w.err = err
}

// canon renders a configuration for exact comparison.
func canon(t testing.TB, s entitystore.Snapshot) string {
	t.Helper()
	if s.Memberships == nil {
		s.Memberships = [][2]string{}
	}
	b, err := json.Marshal(map[string]any{"entities": s.Entities, "memberships": s.Memberships})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func export(t testing.TB, es *entitystore.Store, group string) entitystore.Snapshot {
	t.Helper()
	s, err := es.Export(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	svc      = "00000000-0000-4000-8000-000000000001"
	route1   = "00000000-0000-4000-8000-000000000002"
	route2   = "00000000-0000-4000-8000-000000000003"
	consumer = "00000000-0000-4000-8000-000000000004"
	keyAuth  = "00000000-0000-4000-8000-000000000005"
	acl      = "00000000-0000-4000-8000-000000000006"
	cgroup   = "00000000-0000-4000-8000-000000000007"
	plugRt   = "00000000-0000-4000-8000-000000000008"
	plugCons = "00000000-0000-4000-8000-000000000009"
	cert     = "00000000-0000-4000-8000-00000000000a"
	sni      = "00000000-0000-4000-8000-00000000000b"
	upstream = "00000000-0000-4000-8000-00000000000c"
	target1  = "00000000-0000-4000-8000-00000000000d"
	target2  = "00000000-0000-4000-8000-00000000000e"
)

func TestHistoryDiffRollback(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := entitystore.New(s)
		es.SetActor(func(ctx context.Context) entitystore.Actor {
			if v, ok := ctx.Value(actorKey{}).(string); ok {
				return entitystore.Actor{UserID: "user-1", TokenID: v}
			}
			return entitystore.Actor{}
		})
		svcRevs, err := revisions.New(revisions.Options{Entities: es})
		if err != nil {
			t.Fatal(err)
		}
		g := newGroup(t, s)
		certPEM, keyPEM := selfSigned(t, "a.example")

		r1 := write(t, es, g, func(w *writer) {
			w.ins("services", map[string]any{"id": svc, "name": "billing", "host": "billing.internal"})
			w.ins("routes", map[string]any{"id": route1, "name": "billing", "paths": []any{"/billing"}, "service": ref(svc)})
		})
		r2 := write(t, es, g, func(w *writer) {
			w.ins("consumers", map[string]any{"id": consumer, "username": "alice"})
			w.ins("keyauth_credentials", map[string]any{"id": keyAuth, "key": "alice-key", "consumer": ref(consumer)})
			w.ins("acls", map[string]any{"id": acl, "group": "admins", "consumer": ref(consumer)})
			w.ins("consumer_groups", map[string]any{"id": cgroup, "name": "gold"})
			w.ins("plugins", map[string]any{"id": plugRt, "name": "key-auth", "route": ref(route1)})
			w.ins("plugins", map[string]any{"id": plugCons, "name": "correlation-id", "consumer": ref(consumer)})
			if w.err == nil {
				w.err = w.tx.AddMember(cgroup, consumer)
			}
		})
		r3 := write(t, es, g, func(w *writer) {
			w.ins("certificates", map[string]any{"id": cert, "cert": certPEM, "key": keyPEM})
			w.ins("snis", map[string]any{"id": sni, "name": "a.example", "certificate": ref(cert)})
			w.ins("upstreams", map[string]any{"id": upstream, "name": "billing-up"})
			w.ins("targets", map[string]any{"id": target1, "target": "10.0.0.1:80", "upstream": ref(upstream)})
			w.ins("targets", map[string]any{"id": target2, "target": "10.0.0.2:80", "upstream": ref(upstream)})
		})
		config3 := export(t, es, g)
		r4 := write(t, es, g, func(w *writer) {
			w.replace("services", svc, map[string]any{"host": "billing-v2.internal"})
			w.ins("routes", map[string]any{"id": route2, "name": "later", "paths": []any{"/later"}, "service": ref(svc)})
		})
		config4 := export(t, es, g)
		// Deletes that cascade: credentials, consumer plugins and memberships with the consumer,
		// the SNI with the certificate, targets with the upstream, the route plugin with the route.
		actx := context.WithValue(ctx, actorKey{}, "token-9")
		r5, err := es.Write(actx, g, func(tx *entitystore.Tx) error {
			w := &writer{t: t, tx: tx}
			w.del("consumers", consumer)
			w.del("certificates", cert)
			w.del("upstreams", upstream)
			w.del("routes", route1)
			return w.err
		})
		if err != nil {
			t.Fatal(err)
		}
		config5 := export(t, es, g)
		if got := []int64{r1, r2, r3, r4, r5}; !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
			t.Fatalf("revisions %v", got)
		}
		for _, typ := range []string{"keyauth_credentials", "acls", "snis", "targets", "plugins"} {
			if len(config5.Entities[typ]) != 0 {
				t.Fatalf("after the deletes %s remain: %v", typ, config5.Entities[typ])
			}
		}

		// List: newest first, with summaries that count cascaded deletes.
		list, total, err := svcRevs.List(ctx, g, 2, 0)
		if err != nil || total != 5 || len(list) != 2 || list[0].Number != 5 || list[1].Number != 4 {
			t.Fatalf("list: %+v total %d, %v", list, total, err)
		}
		wantSummary := map[string]entitystore.Counts{
			"consumers": {Deleted: 1}, "keyauth_credentials": {Deleted: 1}, "acls": {Deleted: 1}, "plugins": {Deleted: 2},
			entitystore.MembershipType: {Deleted: 1}, "certificates": {Deleted: 1}, "snis": {Deleted: 1},
			"upstreams": {Deleted: 1}, "targets": {Deleted: 2}, "routes": {Deleted: 1},
		}
		if got, _ := json.Marshal(list[0].Summary); string(got) != mustJSON(t, wantSummary) {
			t.Errorf("summary of revision 5: %s, want %s", got, mustJSON(t, wantSummary))
		}
		if list[0].Source != entitystore.SourceAdminAPI || list[0].Actor != (entitystore.Actor{UserID: "user-1", TokenID: "token-9"}) || list[0].CreatedAt.IsZero() {
			t.Errorf("revision 5 metadata: %+v", list[0])
		}
		if list[1].Summary["services"] != (entitystore.Counts{Updated: 1}) || list[1].Summary["routes"] != (entitystore.Counts{Created: 1}) {
			t.Errorf("summary of revision 4: %+v", list[1].Summary)
		}

		// Configurations of past revisions equal what was exported then.
		for n, want := range map[int64]entitystore.Snapshot{3: config3, 4: config4, 5: config5} {
			got, err := svcRevs.Config(ctx, g, n)
			if err != nil {
				t.Fatalf("config %d: %v", n, err)
			}
			if canon(t, got.Snapshot) != canon(t, want) {
				t.Errorf("config of revision %d:\n got %s\nwant %s", n, canon(t, got.Snapshot), canon(t, want))
			}
			if got.Hash == "" || got.ConfigTable["_format_version"] != "3.0" {
				t.Errorf("config %d: hash %q format %v", n, got.Hash, got.ConfigTable["_format_version"])
			}
		}
		zero, err := svcRevs.Config(ctx, g, 0)
		if err != nil || len(zero.Entities) != 0 || len(zero.Memberships) != 0 {
			t.Errorf("config 0: %+v, %v", zero.Snapshot, err)
		}

		// Diff 4 against 3: the service changed its host, a route was added.
		d, err := svcRevs.Diff(ctx, g, 4, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := []revisions.EntityDiff{
			{Type: "services", ID: svc, Name: "billing", Change: revisions.Changed, Fields: []string{"host"}},
			{Type: "routes", ID: route2, Name: "later", Change: revisions.Added},
		}
		if mustJSON(t, d.Entities) != mustJSON(t, want) {
			t.Errorf("diff 4 against 3: %s", mustJSON(t, d.Entities))
		}
		d, err = svcRevs.Diff(ctx, g, 5, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Entities) != 12 {
			t.Errorf("diff 5 against 4 has %d entities, want 12 removals: %s", len(d.Entities), mustJSON(t, d.Entities))
		}
		for _, e := range d.Entities {
			if e.Change != revisions.Removed {
				t.Errorf("diff 5 against 4: %+v", e)
			}
		}

		// Roll back to 3: everything the deletes cascaded comes back with its ids.
		var commits []int64
		es.OnCommit(func(_ string, rev int64) { commits = append(commits, rev) })
		rev, rolled, err := svcRevs.Rollback(ctx, g, 3)
		if err != nil || !rolled || rev.Number != 6 || rev.Source != entitystore.SourceRollback {
			t.Fatalf("rollback to 3: %+v rolled %v, %v", rev, rolled, err)
		}
		if !slices.Equal(commits, []int64{6}) {
			t.Errorf("commits announced %v, want [6]", commits)
		}
		if got := export(t, es, g); canon(t, got) != canon(t, config3) {
			t.Errorf("after rollback to 3:\n got %s\nwant %s", canon(t, got), canon(t, config3))
		}
		// The rollback is a revision: diffing it against 5 shows the restored entities, and
		// revision 5 is still reachable.
		if got, err := svcRevs.Config(ctx, g, 5); err != nil || canon(t, got.Snapshot) != canon(t, config5) {
			t.Errorf("config 5 after the rollback: %v", err)
		}
		// Forward again to 4, then back to 5.
		for _, n := range []int64{4, 5} {
			want := map[int64]entitystore.Snapshot{4: config4, 5: config5}[n]
			if _, _, err := svcRevs.Rollback(ctx, g, n); err != nil {
				t.Fatalf("rollback to %d: %v", n, err)
			}
			if got := export(t, es, g); canon(t, got) != canon(t, want) {
				t.Errorf("after rollback to %d:\n got %s\nwant %s", n, canon(t, got), canon(t, want))
			}
		}
		// Rolling back to what is current changes nothing.
		cur, _ := es.Revision(ctx, g)
		rev, rolled, err = svcRevs.Rollback(ctx, g, cur)
		if err != nil || rolled || rev.Number != cur {
			t.Errorf("rollback to current: %+v rolled %v, %v", rev, rolled, err)
		}
		if after, _ := es.Revision(ctx, g); after != cur {
			t.Errorf("no-op rollback bumped the revision to %d", after)
		}

		// Unknown revisions.
		if _, err := svcRevs.Get(ctx, g, 99); !errors.Is(err, revisions.ErrNotFound) {
			t.Errorf("get 99: %v", err)
		}
		if _, _, err := svcRevs.Rollback(ctx, g, 99); !errors.Is(err, revisions.ErrNotFound) {
			t.Errorf("rollback 99: %v", err)
		}
		if _, err := svcRevs.Get(ctx, uuid.NewString(), 1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown group: %v", err)
		}
	})
}

type actorKey struct{}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Two services that swapped their names are rolled back: going back needs one name twice for a
// moment, so the blocked replacements give their names up first.
func TestRollbackSwappedNames(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := entitystore.New(s)
		svcRevs, _ := revisions.New(revisions.Options{Entities: es})
		g := newGroup(t, s)
		a, b := uuid.NewString(), uuid.NewString()
		write(t, es, g, func(w *writer) {
			w.ins("services", map[string]any{"id": a, "name": "a", "host": "a.internal"})
			w.ins("services", map[string]any{"id": b, "name": "b", "host": "b.internal"})
		})
		first := canon(t, export(t, es, g))
		write(t, es, g, func(w *writer) {
			w.replace("services", a, map[string]any{"name": "tmp"})
			w.replace("services", b, map[string]any{"name": "a"})
			w.replace("services", a, map[string]any{"name": "b"})
		})
		if _, _, err := svcRevs.Rollback(ctx, g, 1); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if got := canon(t, export(t, es, g)); got != first {
			t.Errorf("after rollback:\n got %s\nwant %s", got, first)
		}
	})
}

// A rollback the database refuses changes nothing: two targets of an upstream swapped their
// addresses (a composite key, which has no null state to pass through).
func TestRollbackThatCannotApplyChangesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := entitystore.New(s)
		svcRevs, _ := revisions.New(revisions.Options{Entities: es})
		g := newGroup(t, s)
		up, a, b, svc := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
		write(t, es, g, func(w *writer) {
			w.ins("upstreams", map[string]any{"id": up, "name": "up"})
			w.ins("targets", map[string]any{"id": a, "target": "10.0.0.1:80", "upstream": ref(up)})
			w.ins("targets", map[string]any{"id": b, "target": "10.0.0.2:80", "upstream": ref(up)})
		})
		write(t, es, g, func(w *writer) {
			w.ins("services", map[string]any{"id": svc, "name": "later", "host": "later.internal"})
			w.replace("targets", a, map[string]any{"target": "10.0.0.9:80"})
			w.replace("targets", b, map[string]any{"target": "10.0.0.1:80"})
			w.replace("targets", a, map[string]any{"target": "10.0.0.2:80"})
		})
		before := export(t, es, g)
		var commits int
		es.OnCommit(func(string, int64) { commits++ })
		_, _, err := svcRevs.Rollback(ctx, g, 1)
		var se *schema.Error
		if !errors.As(err, &se) || se.Code != schema.CodeUniqueViolation {
			t.Fatalf("rollback: %v, want a unique violation", err)
		}
		// Nothing changed, not even the service the rollback deleted first.
		if got := export(t, es, g); got.Revision != 2 || canon(t, got) != canon(t, before) || commits != 0 {
			t.Errorf("a failed rollback changed the group: revision %d, commits %d", got.Revision, commits)
		}
		if _, total, _ := svcRevs.List(ctx, g, 10, 0); total != 2 {
			t.Errorf("a failed rollback left %d revisions, want 2", total)
		}
	})
}

func TestRetention(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := entitystore.New(s)
		svcRevs, _ := revisions.New(revisions.Options{Entities: es})
		g := newGroup(t, s)
		id := uuid.NewString()
		write(t, es, g, func(w *writer) { w.ins("services", map[string]any{"id": id, "name": "s", "host": "h0"}) })
		configs := map[int64]string{1: canon(t, export(t, es, g))}
		for i := 2; i <= 10; i++ {
			n := write(t, es, g, func(w *writer) { w.replace("services", id, map[string]any{"host": "h" + string(rune('0'+i))}) })
			configs[n] = canon(t, export(t, es, g))
		}
		now := time.Now()
		// Revisions 1-6 are 40 days old, 7-10 are recent.
		if _, err := s.DB().ExecContext(ctx, s.Rebind(`UPDATE revisions SET created_at = ? WHERE group_id = ? AND number <= 6`), now.Add(-40*24*time.Hour).Unix(), g); err != nil {
			t.Fatal(err)
		}
		// Keeping 2 by count still keeps the last 30 days: 7-10.
		n, err := es.PruneRevisions(ctx, entitystore.Retention{Count: 2, Age: 30 * 24 * time.Hour}, now)
		if err != nil || n != 6 {
			t.Fatalf("pruned %d, %v; want 6", n, err)
		}
		if _, total, _ := svcRevs.List(ctx, g, 100, 0); total != 4 {
			t.Errorf("%d revisions left, want 4", total)
		}
		if _, err := svcRevs.Get(ctx, g, 3); !errors.Is(err, revisions.ErrPruned) {
			t.Errorf("get pruned revision: %v", err)
		}
		if _, err := svcRevs.Config(ctx, g, 5); !errors.Is(err, revisions.ErrPruned) {
			t.Errorf("config of pruned revision: %v", err)
		}
		if _, _, err := svcRevs.Rollback(ctx, g, 2); !errors.Is(err, revisions.ErrPruned) {
			t.Errorf("rollback to pruned revision: %v", err)
		}
		for _, n := range []int64{6, 7, 10} {
			got, err := svcRevs.Config(ctx, g, n)
			if err != nil || canon(t, got.Snapshot) != configs[n] {
				t.Errorf("config %d after pruning: %v", n, err)
			}
		}
		// Count alone: the newest 3 stay.
		if n, err := es.PruneRevisions(ctx, entitystore.Retention{Count: 3}, now); err != nil || n != 1 {
			t.Errorf("count-only prune removed %d, %v; want 1", n, err)
		}
		// Defaults keep all of these.
		if n, err := es.PruneRevisions(ctx, entitystore.DefaultRetention, now); err != nil || n != 0 {
			t.Errorf("default prune removed %d, %v", n, err)
		}
		if _, _, err := svcRevs.Rollback(ctx, g, 8); err != nil {
			t.Errorf("rollback to a kept revision: %v", err)
		}
		if got := canon(t, export(t, es, g)); got != configs[8] {
			t.Errorf("rollback to 8 after pruning: %s", got)
		}
	})
}

// Memberships are history too: added, removed directly, and removed with their consumer group.
func TestMembershipHistory(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := entitystore.New(s)
		svcRevs, _ := revisions.New(revisions.Options{Entities: es})
		g := newGroup(t, s)
		c1, c2, gold := uuid.NewString(), uuid.NewString(), uuid.NewString()
		write(t, es, g, func(w *writer) {
			w.ins("consumers", map[string]any{"id": c1, "username": "one"})
			w.ins("consumers", map[string]any{"id": c2, "username": "two"})
			w.ins("consumer_groups", map[string]any{"id": gold, "name": "gold"})
		})
		added := write(t, es, g, func(w *writer) {
			w.err = errors.Join(w.tx.AddMember(gold, c1), w.tx.AddMember(gold, c2))
		})
		withBoth := canon(t, export(t, es, g))
		write(t, es, g, func(w *writer) {
			ok, err := w.tx.RemoveMember(gold, c1)
			if !ok && err == nil {
				err = errors.New("not a member")
			}
			w.err = err
		})
		write(t, es, g, func(w *writer) { w.del("consumer_groups", gold) })
		if got := export(t, es, g); len(got.Memberships) != 0 || len(got.Entities["consumer_groups"]) != 0 {
			t.Fatalf("after deleting the group: %+v", got)
		}
		d, err := svcRevs.Diff(ctx, g, 4, added)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range d.Entities {
			kinds = append(kinds, e.Type+" "+e.Change)
		}
		if want := []string{"consumer_groups removed", entitystore.MembershipType + " removed", entitystore.MembershipType + " removed"}; !slices.Equal(kinds, want) {
			t.Errorf("diff: %v, want %v", kinds, want)
		}
		if _, _, err := svcRevs.Rollback(ctx, g, added); err != nil {
			t.Fatal(err)
		}
		if got := canon(t, export(t, es, g)); got != withBoth {
			t.Errorf("after rollback:\n got %s\nwant %s", got, withBoth)
		}
	})
}
