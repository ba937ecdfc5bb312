package entitystore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

func entity(t *testing.T, name string) *schema.Entity {
	t.Helper()
	e, ok := schema.Lookup(name)
	if !ok {
		t.Fatalf("no entity %s", name)
	}
	return e
}

// process builds a stored document the way the API does.
func process(t *testing.T, name string, in map[string]any) entitystore.Doc {
	t.Helper()
	doc, _, err := entity(t, name).Process(schema.OpCreate, in, nil)
	if err != nil {
		t.Fatalf("process %s: %v", name, err)
	}
	return doc
}

// twoGroups bootstraps an organization and adds a second group.
func twoGroups(t *testing.T, s *sqlstore.Store) (string, string) {
	t.Helper()
	res, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "o", Region: "us", AdminName: "a", AdminToken: store.Token{Hash: uuid.NewString(), Hint: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	g2 := store.RuntimeGroup{ID: uuid.NewString(), OrgID: res.Org.ID, Region: "us", Name: "second", ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := s.CreateGroup(context.Background(), g2); err != nil {
		t.Fatal(err)
	}
	return res.Group.ID, g2.ID
}

func TestWritesAndRevisions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := entitystore.New(s)
		var commits []int64
		es.OnCommit(func(_ string, rev int64) { commits = append(commits, rev) })
		g1, g2 := twoGroups(t, s)
		services, routes := entity(t, "services"), entity(t, "routes")
		svc := process(t, "services", map[string]any{"name": "billing", "host": "billing.internal", "tags": []any{"a", "b"}})
		rev, err := es.Write(ctx, g1, func(tx *entitystore.Tx) error { return tx.Insert(services, svc) })
		if err != nil || rev != 1 {
			t.Fatalf("first write: rev %d, %v", rev, err)
		}
		// The same id and name in another group are independent.
		if _, err := es.Write(ctx, g2, func(tx *entitystore.Tx) error { return tx.Insert(services, svc) }); err != nil {
			t.Fatalf("same entity in second group: %v", err)
		}
		cases := []struct {
			name     string
			fn       func(tx *entitystore.Tx) error
			wantCode int
		}{
			{"duplicate name", func(tx *entitystore.Tx) error {
				return tx.Insert(services, process(t, "services", map[string]any{"name": "billing", "host": "x"}))
			}, schema.CodeUniqueViolation},
			{"duplicate id", func(tx *entitystore.Tx) error {
				d := process(t, "services", map[string]any{"name": "other", "host": "x"})
				d["id"] = svc["id"]
				return tx.Insert(services, d)
			}, schema.CodePrimaryKeyViolation},
			{"route to missing service", func(tx *entitystore.Tx) error {
				return tx.Insert(routes, process(t, "routes", map[string]any{"paths": []any{"/x"}, "service": map[string]any{"id": uuid.NewString()}}))
			}, schema.CodeForeignKeyViolation},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := es.Write(ctx, g1, c.fn)
				var se *schema.Error
				if !errors.As(err, &se) || se.Code != c.wantCode {
					t.Fatalf("err = %v, want Kong code %d", err, c.wantCode)
				}
			})
		}
		if r, err := es.Revision(ctx, g1); err != nil || r != 1 {
			t.Fatalf("refused writes bumped the revision to %d (%v)", r, err)
		}
		route := process(t, "routes", map[string]any{"name": "r1", "paths": []any{"/billing"}, "service": map[string]any{"id": svc["id"]}})
		plugin := process(t, "plugins", map[string]any{"name": "key-auth", "route": map[string]any{"id": route["id"]}})
		rev, err = es.Write(ctx, g1, func(tx *entitystore.Tx) error {
			if err := tx.Insert(routes, route); err != nil {
				return err
			}
			return tx.Insert(entity(t, "plugins"), plugin)
		})
		if err != nil || rev != 2 {
			t.Fatalf("two inserts in one write: rev %d, %v (want one bump)", rev, err)
		}
		if fmt.Sprint(commits) != "[1 1 2]" {
			t.Fatalf("commit notifications %v, want [1 1 2] (group 1, group 2, group 1)", commits)
		}
		t.Run("restrict", func(t *testing.T) {
			_, err := es.Write(ctx, g1, func(tx *entitystore.Tx) error { _, err := tx.Delete(services, svc["id"].(string)); return err })
			var se *schema.Error
			if !errors.As(err, &se) || se.Code != schema.CodeForeignKeyViolation || se.Message != "an existing 'routes' entity references this 'services' entity" {
				t.Fatalf("delete referenced service: %v", err)
			}
		})
		t.Run("cascade", func(t *testing.T) {
			_, err := es.Write(ctx, g1, func(tx *entitystore.Tx) error {
				ok, err := tx.Delete(routes, route["id"].(string))
				if !ok {
					return fmt.Errorf("route not deleted")
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			err = es.Read(ctx, g1, func(tx *entitystore.Tx) error {
				n, err := tx.Count(entity(t, "plugins"))
				if err != nil {
					return err
				}
				if n != 0 {
					t.Fatalf("%d plugins of the deleted route remain", n)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
		t.Run("read-only writes keep the revision", func(t *testing.T) {
			before, err := es.Revision(ctx, g1)
			if err != nil {
				t.Fatal(err)
			}
			rev, err := es.Write(ctx, g1, func(tx *entitystore.Tx) error {
				_, err := tx.Delete(routes, uuid.NewString())
				return err
			})
			if err != nil || rev != before {
				t.Fatalf("deleting nothing: rev %d (was %d), %v", rev, before, err)
			}
		})
		t.Run("replace and find", func(t *testing.T) {
			_, err := es.Write(ctx, g1, func(tx *entitystore.Tx) error {
				d, err := tx.FindBy(services, "name", "billing")
				if err != nil {
					return err
				}
				d["name"], d["port"] = "billing2", int64(8080)
				return tx.Replace(services, d)
			})
			if err != nil {
				t.Fatal(err)
			}
			err = es.Read(ctx, g1, func(tx *entitystore.Tx) error {
				d, err := tx.Get(services, svc["id"].(string))
				if err != nil || d["name"] != "billing2" || d["port"] != int64(8080) {
					t.Fatalf("after replace: %v %v", d, err)
				}
				if _, err := tx.FindBy(services, "name", "billing"); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("old name still found: %v", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
		t.Run("second group untouched", func(t *testing.T) {
			err := es.Read(ctx, g2, func(tx *entitystore.Tx) error {
				d, err := tx.Get(services, svc["id"].(string))
				if err != nil || d["name"] != "billing" {
					t.Fatalf("second group's service: %v %v", d, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if r, err := es.Revision(ctx, g2); err != nil || r != 1 {
				t.Fatalf("second group revision %d (%v)", r, err)
			}
		})
		t.Run("deleting the group deletes its configuration", func(t *testing.T) {
			if err := s.DeleteGroup(ctx, mustOrg(t, s, g2), g2); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := s.DB().QueryRow(s.Rebind(`SELECT COUNT(*) FROM services WHERE group_id = ?`), g2).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d services of the deleted group remain", n)
			}
			if _, err := es.Write(ctx, g2, func(tx *entitystore.Tx) error { return nil }); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("write to a deleted group: %v", err)
			}
		})
	})
}

func mustOrg(t *testing.T, s *sqlstore.Store, group string) string {
	var org string
	if err := s.DB().QueryRow(s.Rebind(`SELECT org_id FROM runtime_groups WHERE id = ?`), group).Scan(&org); err != nil {
		t.Fatal(err)
	}
	return org
}

func TestListPagingTagsAndMembers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		es := entitystore.New(s)
		g, _ := twoGroups(t, s)
		consumers := entity(t, "consumers")
		tags := [][]any{{"a"}, {"a", "b"}, {"b"}, nil, {"a", "c"}}
		_, err := es.Write(ctx, g, func(tx *entitystore.Tx) error {
			for i, tg := range tags {
				in := map[string]any{"username": fmt.Sprintf("u%d", i), "custom_id": fmt.Sprintf("c%d", i)}
				if tg != nil {
					in["tags"] = tg
				}
				if err := tx.Insert(consumers, process(t, "consumers", in)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		names := func(docs []entitystore.Doc) map[string]bool {
			m := map[string]bool{}
			for _, d := range docs {
				m[d["username"].(string)] = true
			}
			return m
		}
		err = es.Read(ctx, g, func(tx *entitystore.Tx) error {
			for _, c := range []struct {
				q    entitystore.ListQuery
				want string
			}{
				{entitystore.ListQuery{Tags: []string{"a"}}, "map[u0:true u1:true u4:true]"},
				{entitystore.ListQuery{Tags: []string{"a", "b"}}, "map[u1:true]"},
				{entitystore.ListQuery{Tags: []string{"b", "c"}, TagsAny: true}, "map[u1:true u2:true u4:true]"},
				{entitystore.ListQuery{Where: map[string]any{"custom_id": "c3"}}, "map[u3:true]"},
			} {
				docs, _, err := tx.List(consumers, c.q)
				if err != nil || fmt.Sprint(names(docs)) != c.want {
					t.Fatalf("%+v: %v %v, want %s", c.q, names(docs), err, c.want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Page through while another writer inserts: no entity is skipped or seen twice.
		seen := map[string]int{}
		after, late := "", ""
		for page := 0; ; page++ {
			var docs []entitystore.Doc
			var more bool
			err := es.Read(ctx, g, func(tx *entitystore.Tx) error {
				var err error
				docs, more, err = tx.List(consumers, entitystore.ListQuery{After: after, Limit: 2})
				return err
			})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			for _, d := range docs {
				seen[d["id"].(string)]++
				after = d["id"].(string)
			}
			if page == 0 {
				_, err := es.Write(ctx, g, func(tx *entitystore.Tx) error {
					d := process(t, "consumers", map[string]any{"username": "late"})
					late = d["id"].(string)
					return tx.Insert(consumers, d)
				})
				if err != nil {
					t.Fatalf("concurrent insert: %v", err)
				}
			}
			if !more {
				break
			}
		}
		err = es.Read(ctx, g, func(tx *entitystore.Tx) error {
			all, _, err := tx.List(consumers, entitystore.ListQuery{})
			if err != nil {
				return err
			}
			if len(all) != len(tags)+1 {
				t.Fatalf("%d consumers, want %d", len(all), len(tags)+1)
			}
			for _, d := range all {
				id := d["id"].(string)
				if seen[id] > 1 {
					t.Fatalf("%s seen %d times", id, seen[id])
				}
				if seen[id] == 0 && id != late {
					t.Fatalf("%s skipped though it sorts before the cursor", id)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Consumer groups.
		cgs := entity(t, "consumer_groups")
		cg := process(t, "consumer_groups", map[string]any{"name": "gold"})
		var u0 entitystore.Doc
		_, err = es.Write(ctx, g, func(tx *entitystore.Tx) error {
			if err := tx.Insert(cgs, cg); err != nil {
				return err
			}
			var err error
			if u0, err = tx.FindBy(consumers, "username", "u0"); err != nil {
				return err
			}
			return tx.AddMember(cg["id"].(string), u0["id"].(string))
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = es.Write(ctx, g, func(tx *entitystore.Tx) error { return tx.AddMember(cg["id"].(string), u0["id"].(string)) })
		var se *schema.Error
		if !errors.As(err, &se) || se.Code != schema.CodeUniqueViolation {
			t.Fatalf("second add: %v", err)
		}
		snap, err := es.Export(ctx, g)
		if err != nil || len(snap.Entities["consumers"]) != 6 || len(snap.Memberships) != 1 || snap.Memberships[0] != [2]string{cg["id"].(string), u0["id"].(string)} {
			t.Fatalf("export: %+v %v", snap, err)
		}
		_, err = es.Write(ctx, g, func(tx *entitystore.Tx) error { _, err := tx.Delete(consumers, u0["id"].(string)); return err })
		if err != nil {
			t.Fatal(err)
		}
		err = es.Read(ctx, g, func(tx *entitystore.Tx) error {
			m, err := tx.Members(cg["id"].(string))
			if err != nil {
				return err
			}
			if len(m) != 0 {
				t.Fatalf("deleted consumer still a member: %v", m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
