package sqlstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

func TestAuditAppendListFilters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		org := bootstrap(t, s).Org.ID
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		// 12 entries over 12 minutes by two actors on two groups.
		for i := range 12 {
			e := store.AuditEntry{
				OrgID: org, Timestamp: base.Add(time.Duration(i) * time.Minute),
				ActorType: store.KindUser, ActorID: fmt.Sprintf("actor-%d", i%2), ActorName: "a@example.com",
				Action:  []string{store.ActionCreate, store.ActionUpdate, store.ActionDelete}[i%3],
				GroupID: fmt.Sprintf("group-%d", i%2), EntityType: []string{"routes", "services"}[i/6], EntityID: fmt.Sprint(i),
				Method: http.MethodPost, Path: "/x", Status: 201,
			}
			if err := s.AppendAudit(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		other, _, _, err := s.CreateOrganization(ctx, "Other", "us", store.User{Name: "o"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAudit(ctx, store.AuditEntry{OrgID: other.ID, Action: "login", Timestamp: base}); err != nil {
			t.Fatal(err)
		}
		ids := func(es []store.AuditEntry) string {
			var out []string
			for _, e := range es {
				out = append(out, e.EntityID)
			}
			return strings.Join(out, ",")
		}
		cases := []struct {
			name string
			q    store.AuditQuery
			want string
		}{
			{"all, newest first", store.AuditQuery{}, "11,10,9,8,7,6,5,4,3,2,1,0"},
			{"actor", store.AuditQuery{ActorID: "actor-1"}, "11,9,7,5,3,1"},
			{"group", store.AuditQuery{GroupID: "group-0"}, "10,8,6,4,2,0"},
			{"entity type", store.AuditQuery{EntityType: "routes"}, "5,4,3,2,1,0"},
			{"action", store.AuditQuery{Action: store.ActionDelete}, "11,8,5,2"},
			{"window, inclusive", store.AuditQuery{Since: base.Add(3 * time.Minute), Until: base.Add(5 * time.Minute)}, "5,4,3"},
			{"combined", store.AuditQuery{ActorID: "actor-0", EntityType: "services", Action: store.ActionCreate}, "6"},
			{"nothing", store.AuditQuery{ActorID: "nobody"}, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.q.OrgID, c.q.Limit = org, 100
				got, next, err := s.ListAudit(ctx, c.q)
				if err != nil {
					t.Fatal(err)
				}
				if ids(got) != c.want || next != "" {
					t.Fatalf("got %q next %q, want %q", ids(got), next, c.want)
				}
			})
		}
		// Cursor paging walks every entry once, in order.
		var seen []string
		q := store.AuditQuery{OrgID: org, Limit: 5}
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			page, next, err := s.ListAudit(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, ids(page))
			if next == "" {
				break
			}
			q.After = next
		}
		if got := strings.Join(seen, "|"); got != "11,10,9,8,7|6,5,4,3,2|1,0" {
			t.Fatalf("pages = %s", got)
		}
		if _, _, err := s.ListAudit(ctx, store.AuditQuery{OrgID: org, After: "bogus"}); !errors.Is(err, sqlstore.ErrBadCursor) {
			t.Fatalf("bad cursor: err = %v", err)
		}
		// Every field survives the round trip.
		got, _, err := s.ListAudit(ctx, store.AuditQuery{OrgID: other.ID, Limit: 10})
		if err != nil || len(got) != 1 || got[0].Action != "login" || !got[0].Timestamp.Equal(base) || got[0].ID == "" {
			t.Fatalf("other org = %+v, %v", got, err)
		}
	})
}

func TestAuditPrune(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		org := bootstrap(t, s).Org.ID
		now := time.Now().UTC()
		for _, age := range []time.Duration{400 * 24 * time.Hour, 366 * 24 * time.Hour, 364 * 24 * time.Hour, time.Hour} {
			if err := s.AppendAudit(ctx, store.AuditEntry{OrgID: org, Action: "login", Timestamp: now.Add(-age), EntityID: age.String()}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.PruneAudit(ctx, now.Add(-365*24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("pruned %d, %v; want 2", n, err)
		}
		left, _, err := s.ListAudit(ctx, store.AuditQuery{OrgID: org, Limit: 10})
		if err != nil || len(left) != 2 || left[0].EntityID != "1h0m0s" || left[1].EntityID != "8736h0m0s" {
			t.Fatalf("left = %+v, %v", left, err)
		}
	})
}

// TestRecordAuditInTransaction: the entry commits and rolls back with the write's transaction,
// takes the request's fields from the pending entry, and its documents are redacted.
func TestRecordAuditInTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		org := bootstrap(t, s).Org.ID
		pending := &store.AuditEntry{OrgID: org, ActorType: store.KindUser, ActorID: "u1", ActorName: "u1@example.com",
			AuthMethod: store.AuthPersonalToken, TokenID: "t1", Method: http.MethodPatch, Path: "/v2/x", RequestID: "req-1",
			SourceAddr: "192.0.2.1", UserAgent: "test"}
		ctx := store.WithPendingAudit(context.Background(), pending)
		change := store.AuditChange{Action: store.ActionUpdate, GroupID: "g1", EntityType: "keyauth_credentials", EntityID: "k1", EntityName: "k1",
			Before: map[string]any{"key": "old-key-secret", "tags": []string{"a"}}, After: json.RawMessage(`{"key":"new-key-secret","tags":["b"]}`)}
		boom := errors.New("later statement failed")
		err := s.InTx(ctx, func(tx *sql.Tx) error {
			if err := s.RecordAudit(ctx, tx, change); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if got, _, _ := s.ListAudit(context.Background(), store.AuditQuery{OrgID: org, Limit: 10}); len(got) != 0 {
			t.Fatalf("a rolled back write left %d entries", len(got))
		}
		*pending = store.AuditEntry{OrgID: org, ActorType: store.KindUser, ActorID: "u1", ActorName: "u1@example.com",
			AuthMethod: store.AuthPersonalToken, TokenID: "t1", Method: http.MethodPatch, Path: "/v2/x", RequestID: "req-1",
			SourceAddr: "192.0.2.1", UserAgent: "test"}
		if err := s.InTx(ctx, func(tx *sql.Tx) error { return s.RecordAudit(ctx, tx, change) }); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.ListAudit(context.Background(), store.AuditQuery{OrgID: org, Limit: 10})
		if err != nil || len(got) != 1 {
			t.Fatalf("entries = %+v, %v", got, err)
		}
		e := got[0]
		if e.ID != pending.ID || e.Status != http.StatusOK || e.ActorID != "u1" || e.AuthMethod != store.AuthPersonalToken || e.TokenID != "t1" ||
			e.RequestID != "req-1" || e.SourceAddr != "192.0.2.1" || e.UserAgent != "test" || e.GroupID != "g1" || e.EntityType != "keyauth_credentials" ||
			e.Action != store.ActionUpdate || e.Method != http.MethodPatch || e.Path != "/v2/x" {
			t.Fatalf("entry = %+v (pending %+v)", e, pending)
		}
		if strings.Contains(string(e.Before)+string(e.After), "key-secret") || !strings.Contains(string(e.After), `"tags":["b"]`) {
			t.Fatalf("before %s after %s", e.Before, e.After)
		}
		// The status can be corrected after the answer.
		if err := s.SetAuditStatus(context.Background(), e.ID, 201); err != nil {
			t.Fatal(err)
		}
		got, _, _ = s.ListAudit(context.Background(), store.AuditQuery{OrgID: org, Limit: 10})
		if got[0].Status != 201 {
			t.Fatalf("status = %d", got[0].Status)
		}
		// Without a pending entry nothing is recorded.
		if err := s.InTx(context.Background(), func(tx *sql.Tx) error { return s.RecordAudit(context.Background(), tx, change) }); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.ListAudit(context.Background(), store.AuditQuery{OrgID: org, Limit: 10}); len(got) != 1 {
			t.Fatalf("internal write recorded: %d entries", len(got))
		}
	})
}

func TestAuditAfterDeliveryOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		org := bootstrap(t, s).Org.ID
		for i := range 5 {
			if err := s.AppendAudit(ctx, store.AuditEntry{OrgID: org, Action: "login", EntityID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		// On a PostgreSQL server shared with other work, entries become deliverable once every
		// transaction older than theirs ended: poll.
		var got []string
		var cur sqlstore.AuditCursor
		deadline := time.Now().Add(30 * time.Second)
		for len(got) < 5 && time.Now().Before(deadline) {
			es, curs, err := s.AuditAfter(ctx, org, cur, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) == 0 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			for _, e := range es {
				got = append(got, e.EntityID)
			}
			cur = curs[len(curs)-1]
		}
		if strings.Join(got, ",") != "0,1,2,3,4" {
			t.Fatalf("delivered %v", got)
		}
		tail, err := s.AuditTail(ctx, org)
		if err != nil || tail != cur {
			t.Fatalf("tail = %+v, %v; want %+v", tail, err, cur)
		}
	})
}

// TestAuditAfterWaitsForRunningTransactions: on PostgreSQL an entry inserted by a transaction
// that is still running (and so invisible) holds back every entry of later transactions, so that
// a cursor cannot move past it.
func TestAuditAfterWaitsForRunningTransactions(t *testing.T) {
	s := storetest.Open(t, "postgres")
	ctx := context.Background()
	org := bootstrap(t, s).Org.ID
	long, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = long.Rollback() }()
	if _, err := long.ExecContext(ctx, `INSERT INTO audit_log (id, org_id, created_at, action) VALUES ('slow', $1, 0, 'update')`, org); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, store.AuditEntry{OrgID: org, Action: "login", ID: "fast"}); err != nil {
		t.Fatal(err)
	}
	es, _, err := s.AuditAfter(ctx, org, sqlstore.AuditCursor{}, 10)
	if err != nil || len(es) != 0 {
		t.Fatalf("while a transaction runs: %d entries, %v", len(es), err)
	}
	if err := long.Commit(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(es) < 2 && err == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		es, _, err = s.AuditAfter(ctx, org, sqlstore.AuditCursor{}, 10)
	}
	if err != nil || len(es) != 2 || es[0].ID != "slow" || es[1].ID != "fast" {
		t.Fatalf("after commit: %+v, %v", es, err)
	}
}

// TestAuditFailureRollsBackTheWrite: the entry is part of the write's transaction, so a write
// whose entry cannot be recorded is not made either.
func TestAuditFailureRollsBackTheWrite(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		org := bootstrap(t, s).Org.ID
		// An organization that does not exist fails the entry's foreign key.
		ctx := store.WithPendingAudit(context.Background(), &store.AuditEntry{OrgID: "no-such-organization", Method: http.MethodPost})
		g := store.RuntimeGroup{ID: "7d1e6b7e-0000-4000-8000-000000000001", OrgID: org, Region: "us", Name: "unrecorded",
			ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs", Labels: map[string]string{"a": "b"},
			CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if err := s.CreateGroup(ctx, g); err == nil {
			t.Fatal("the write succeeded without its audit entry")
		}
		if _, err := s.GetGroup(context.Background(), org, g.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the group was written: %v", err)
		}
	})
}
