package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

func bootstrap(t *testing.T, s store.Store) store.BootstrapResult {
	t.Helper()
	res, err := s.Bootstrap(context.Background(), store.BootstrapParams{
		OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "first", Hash: uuid.NewString(), Hint: "gpat_x"},
	})
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return res
}

func TestBootstrapIsIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		first := bootstrap(t, s)
		if !first.Created || !first.Group.IsDefault || first.Group.Name != "default" {
			t.Fatalf("first bootstrap = %+v", first)
		}
		second := bootstrap(t, s)
		if second.Created || second.Org.ID != first.Org.ID || second.Group.ID != first.Group.ID || second.Admin.ID != first.Admin.ID {
			t.Fatalf("second bootstrap made new objects: %+v vs %+v", second, first)
		}
		// Another region gets its own default group in the same organization.
		eu, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "eu", AdminName: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		if eu.Org.ID != first.Org.ID || eu.Group.ID == first.Group.ID || eu.Group.Region != "eu" {
			t.Fatalf("eu bootstrap = %+v", eu)
		}
	})
}

func TestConcurrentBootstrapOnOnePostgres(t *testing.T) {
	url := storetest.NewPostgresDatabase(t)
	const n = 6
	var wg sync.WaitGroup
	results := make([]store.BootstrapResult, n)
	errs := make([]error, n)
	stores := make([]*sqlstore.Store, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate pools stand for separate control plane processes.
			s, err := sqlstore.Open(context.Background(), sqlstore.Options{DatabaseURL: url})
			if err != nil {
				errs[i] = err
				return
			}
			stores[i] = s
			results[i], errs[i] = s.Bootstrap(context.Background(), store.BootstrapParams{
				OrgName: "Acme", Region: "us", AdminName: "admin",
				AdminToken: store.Token{Name: "first", Hash: fmt.Sprintf("hash-%d", i), Hint: "gpat_x"},
			})
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("process %d: %v", i, errs[i])
		}
		s := stores[i]
		t.Cleanup(func() { _ = s.Close() })
		if results[i].Created {
			created++
		}
		if results[i].Org.ID != results[0].Org.ID || results[i].Group.ID != results[0].Group.ID {
			t.Fatalf("process %d saw org %s group %s, process 0 saw %s %s", i, results[i].Org.ID, results[i].Group.ID, results[0].Org.ID, results[0].Group.ID)
		}
	}
	if created != 1 {
		t.Fatalf("%d processes created the organization, want exactly 1", created)
	}
	var orgs, defaults, tokens int
	db := stores[0].DB()
	for q, n := range map[string]*int{
		`SELECT COUNT(*) FROM organizations`:                   &orgs,
		`SELECT COUNT(*) FROM runtime_groups WHERE is_default`: &defaults,
		`SELECT COUNT(*) FROM tokens`:                          &tokens,
	} {
		if err := db.QueryRow(q).Scan(n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if orgs != 1 || defaults != 1 || tokens != 1 {
		t.Fatalf("after concurrent start: %d organizations, %d default groups, %d tokens; want 1 each", orgs, defaults, tokens)
	}
}

func newGroup(orgID, name string, labels map[string]string, at time.Time) store.RuntimeGroup {
	return store.RuntimeGroup{ID: uuid.NewString(), OrgID: orgID, Region: "us", Name: name, ClusterType: "CLUSTER_TYPE_CONTROL_PLANE",
		AuthType: "pinned_client_certs", Labels: labels, CreatedAt: at, UpdatedAt: at}
}

func TestGroups(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		b := bootstrap(t, s)
		org := b.Org.ID
		base := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
		names := []string{"bravo", "alpha", "charlie", "alphabet"}
		for i, n := range names {
			labels := map[string]string{"team": "a"}
			if i%2 == 1 {
				labels = map[string]string{"team": "b", "env": "prod"}
			}
			if err := s.CreateGroup(ctx, newGroup(org, n, labels, base.Add(time.Duration(i+1)*time.Second))); err != nil {
				t.Fatalf("create %s: %v", n, err)
			}
		}
		t.Run("duplicate name conflicts", func(t *testing.T) {
			err := s.CreateGroup(ctx, newGroup(org, "alpha", nil, base))
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
		})
		t.Run("same name in another region is allowed", func(t *testing.T) {
			g := newGroup(org, "alpha", nil, base)
			g.Region = "eu"
			if err := s.CreateGroup(ctx, g); err != nil {
				t.Fatal(err)
			}
		})
		list := func(q store.GroupQuery) ([]string, int) {
			t.Helper()
			q.OrgID, q.Region = org, "us"
			if q.PageSize == 0 {
				q.PageSize = 100
			}
			gs, total, err := s.ListGroups(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, g := range gs {
				out = append(out, g.Name)
			}
			return out, total
		}
		cases := []struct {
			name  string
			q     store.GroupQuery
			want  []string
			total int
		}{
			{"created order", store.GroupQuery{}, []string{"bravo", "alpha", "charlie", "alphabet", "default"}, 5},
			{"sort by name", store.GroupQuery{Sort: "name"}, []string{"alpha", "alphabet", "bravo", "charlie", "default"}, 5},
			{"sort by name desc", store.GroupQuery{Sort: "name", Desc: true}, []string{"default", "charlie", "bravo", "alphabet", "alpha"}, 5},
			{"eq", store.GroupQuery{Filters: []store.GroupFilter{f("name", "eq", "alpha")}}, []string{"alpha"}, 1},
			{"neq", store.GroupQuery{Sort: "name", Filters: []store.GroupFilter{f("name", "neq", "alpha")}}, []string{"alphabet", "bravo", "charlie", "default"}, 4},
			{"contains is case-sensitive", store.GroupQuery{Sort: "name", Filters: []store.GroupFilter{f("name", "contains", "pha")}}, []string{"alpha", "alphabet"}, 2},
			{"contains other case", store.GroupQuery{Filters: []store.GroupFilter{f("name", "contains", "PHA")}}, nil, 0},
			{"oeq", store.GroupQuery{Sort: "name", Filters: []store.GroupFilter{f("name", "oeq", "alpha,charlie")}}, []string{"alpha", "charlie"}, 2},
			{"labels value", store.GroupQuery{Sort: "name", Labels: map[string]string{"team": "b"}}, []string{"alpha", "alphabet"}, 2},
			{"labels key only", store.GroupQuery{Sort: "name", Labels: map[string]string{"env": ""}}, []string{"alpha", "alphabet"}, 2},
			{"page 2 of size 2", store.GroupQuery{Sort: "name", PageSize: 2, PageNumber: 2}, []string{"bravo", "charlie"}, 5},
			{"past the end", store.GroupQuery{PageSize: 2, PageNumber: 9}, nil, 5},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, total := list(c.q)
				if fmt.Sprint(got) != fmt.Sprint(c.want) || total != c.total {
					t.Fatalf("got %v (total %d), want %v (total %d)", got, total, c.want, c.total)
				}
			})
		}
		t.Run("update", func(t *testing.T) {
			all, _, _ := s.ListGroups(ctx, store.GroupQuery{OrgID: org, Region: "us", Filters: []store.GroupFilter{f("name", "eq", "bravo")}, PageSize: 1})
			g, err := s.UpdateGroup(ctx, org, all[0].ID, func(g *store.RuntimeGroup) error {
				g.Description = "changed"
				g.Labels = map[string]string{"x": "y"}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.GetGroup(ctx, org, g.ID)
			if err != nil || got.Description != "changed" || fmt.Sprint(got.Labels) != "map[x:y]" || !got.UpdatedAt.After(got.CreatedAt) {
				t.Fatalf("after update: %+v, %v", got, err)
			}
			_, err = s.UpdateGroup(ctx, org, g.ID, func(g *store.RuntimeGroup) error { g.Name = "alpha"; return nil })
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("rename onto existing name: %v, want ErrConflict", err)
			}
			_, err = s.UpdateGroup(ctx, org, g.ID, func(g *store.RuntimeGroup) error { g.IsDefault = true; return nil })
			if !errors.Is(err, store.ErrDefaultGroup) {
				t.Fatalf("make default: %v, want ErrDefaultGroup", err)
			}
			again, _ := s.GetGroup(ctx, org, g.ID)
			if again.Name != "bravo" || again.IsDefault {
				t.Fatalf("failed updates were written: %+v", again)
			}
		})
		t.Run("default group", func(t *testing.T) {
			if err := s.DeleteGroup(ctx, org, b.Group.ID); !errors.Is(err, store.ErrDefaultGroup) {
				t.Fatalf("delete default: %v", err)
			}
			_, err := s.UpdateGroup(ctx, org, b.Group.ID, func(g *store.RuntimeGroup) error { g.IsDefault = false; return nil })
			if !errors.Is(err, store.ErrDefaultGroup) {
				t.Fatalf("undefault: %v", err)
			}
			if _, err := s.GetGroup(ctx, org, b.Group.ID); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("delete cascades", func(t *testing.T) {
			gs, _, _ := s.ListGroups(ctx, store.GroupQuery{OrgID: org, Region: "us", Filters: []store.GroupFilter{f("name", "eq", "charlie")}, PageSize: 1})
			id := gs[0].ID
			if err := s.DeleteGroup(ctx, org, id); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetGroup(ctx, org, id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("get deleted: %v", err)
			}
			var n int
			if err := s.DB().QueryRow(s.Rebind(`SELECT COUNT(*) FROM runtime_group_labels WHERE group_id = ?`), id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d labels of the deleted group remain", n)
			}
			if err := s.DeleteGroup(ctx, org, id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("delete twice: %v", err)
			}
		})
		t.Run("other organizations see nothing", func(t *testing.T) {
			other, _, otherDefault, err := s.CreateOrganization(ctx, "Other", "us", store.User{Name: "o"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetGroup(ctx, other.ID, b.Group.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-org get: %v", err)
			}
			if err := s.DeleteGroup(ctx, other.ID, gsID(t, s, org, "alpha")); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-org delete: %v", err)
			}
			gs, total, _ := s.ListGroups(ctx, store.GroupQuery{OrgID: other.ID, Region: "us", PageSize: 10})
			if total != 1 || gs[0].ID != otherDefault.ID {
				t.Fatalf("other org lists %v", gs)
			}
			// Group names are unique per organization, not globally.
			if err := s.CreateGroup(ctx, newGroup(other.ID, "alpha", nil, base)); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func gsID(t *testing.T, s store.Store, org, name string) string {
	gs, _, err := s.ListGroups(context.Background(), store.GroupQuery{OrgID: org, Region: "us", Filters: []store.GroupFilter{f("name", "eq", name)}, PageSize: 1})
	if err != nil || len(gs) != 1 {
		t.Fatalf("find %s: %v %v", name, gs, err)
	}
	return gs[0].ID
}

func TestTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		b := bootstrap(t, s)
		exp := time.Now().Add(time.Hour).UTC()
		tok := store.Token{ID: uuid.NewString(), OrgID: b.Org.ID, UserID: b.Admin.ID, Name: "ci", Hash: "h2", Hint: "gpat_ab", CreatedAt: time.Now(), ExpiresAt: &exp}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, store.Token{ID: uuid.NewString(), OrgID: b.Org.ID, UserID: b.Admin.ID, Name: "dup", Hash: "h2", Hint: "x", CreatedAt: time.Now()}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate hash: %v", err)
		}
		got, err := s.LookupToken(ctx, "h2")
		if err != nil || got.ID != tok.ID || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp.Truncate(time.Microsecond)) || !got.Active(time.Now()) {
			t.Fatalf("lookup: %+v %v", got, err)
		}
		if got.Active(exp.Add(time.Second)) {
			t.Fatal("token active after expiry")
		}
		list, _ := s.ListTokens(ctx, b.Org.ID, b.Admin.ID)
		if len(list) != 2 {
			t.Fatalf("list has %d tokens, want 2", len(list))
		}
		if err := s.RevokeToken(ctx, b.Org.ID, b.Admin.ID, tok.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		got, _ = s.LookupToken(ctx, "h2")
		if got.Active(time.Now()) || got.RevokedAt == nil {
			t.Fatalf("revoked token still active: %+v", got)
		}
		if err := s.RevokeToken(ctx, b.Org.ID, b.Admin.ID, uuid.NewString(), time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		if _, err := s.LookupToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("lookup unknown: %v", err)
		}
	})
}

func TestReady(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		if err := s.Ready(context.Background()); err != nil {
			t.Fatalf("ready: %v", err)
		}
		s.Close()
		if err := s.Ready(context.Background()); err == nil {
			t.Fatal("closed store reports ready")
		}
	})
}

// f builds a filter compactly for the tables above.
func f(field, op, value string) store.GroupFilter {
	return store.GroupFilter{Field: field, Op: op, Value: value}
}
