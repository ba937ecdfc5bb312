package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// addTeam inserts a team and its members directly: the teams API belongs to another component,
// and these tests are about what role assignments do with teams.
func addTeam(t *testing.T, s *sqlstore.Store, orgID, predefined string, members ...string) string {
	t.Helper()
	id := uuid.NewString()
	err := s.InTx(context.Background(), func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		if _, err := tx.Exec(s.Rebind(`INSERT INTO teams (id, org_id, name, predefined, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
			id, orgID, "team "+id, predefined, now, now); err != nil {
			return err
		}
		for _, m := range members {
			if _, err := tx.Exec(s.Rebind(`INSERT INTO team_members (team_id, user_id, created_at) VALUES (?, ?, ?)`), id, m, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// addUser inserts a user with no team and no role.
func addUser(t *testing.T, s *sqlstore.Store, orgID string) string {
	t.Helper()
	id := uuid.NewString()
	err := s.InTx(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(s.Rebind(`INSERT INTO users (id, org_id, name, role, created_at) VALUES (?, ?, ?, ?, ?)`), id, orgID, "someone", "", time.Now().UnixMicro())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRoleAssignments(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		b := bootstrap(t, s)
		// A user of its own: the bootstrap administrator belongs to predefined teams.
		org, user := b.Org.ID, addUser(t, s, b.Org.ID)
		g := store.RuntimeGroup{ID: uuid.NewString(), OrgID: org, Region: "us", Name: "payments", ClusterType: "CLUSTER_TYPE_HYBRID", AuthType: "pinned_client_certs", CreatedAt: time.Now(), UpdatedAt: time.Now()}
		assign := func(subjectType, subject, role, entity string) store.RoleAssignment {
			return store.RoleAssignment{ID: uuid.NewString(), OrgID: org, SubjectType: subjectType, SubjectID: subject, RoleName: role,
				EntityTypeName: "Runtime Groups", EntityID: entity, EntityRegion: "us", CreatedAt: time.Now()}
		}
		if err := s.CreateGroupWithAdmin(ctx, g, assign(store.SubjectUser, user, "Admin", g.ID)); err != nil {
			t.Fatal(err)
		}
		viewer := assign(store.SubjectUser, user, "Viewer", "*")
		if err := s.CreateRoleAssignment(ctx, viewer); err != nil {
			t.Fatal(err)
		}
		dup := viewer
		dup.ID = uuid.NewString()
		if err := s.CreateRoleAssignment(ctx, dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate assignment: %v, want ErrConflict", err)
		}
		if err := s.CreateRoleAssignment(ctx, assign(store.SubjectUser, uuid.NewString(), "Viewer", "*")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("assignment to an unknown user: %v, want ErrNotFound", err)
		}
		if err := s.CreateRoleAssignment(ctx, assign(store.SubjectTeam, uuid.NewString(), "Viewer", "*")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("assignment to an unknown team: %v, want ErrNotFound", err)
		}

		team := addTeam(t, s, org, "", user)
		if err := s.CreateRoleAssignment(ctx, assign(store.SubjectTeam, team, "Route Admin", g.ID)); err != nil {
			t.Fatal(err)
		}
		gr, err := s.GrantsOf(ctx, org, user)
		if err != nil {
			t.Fatal(err)
		}
		roles := map[string]bool{}
		for _, a := range gr.Assignments {
			roles[a.RoleName+"@"+a.EntityID] = true
		}
		if gr.OrgAdmin || len(gr.Assignments) != 3 || !roles["Admin@"+g.ID] || !roles["Viewer@*"] || !roles["Route Admin@"+g.ID] {
			t.Fatalf("grants = %+v, want Admin and Route Admin on the group and Viewer on *, not org admin", gr)
		}
		addTeam(t, s, org, store.TeamOrganizationAdmin, user)
		if gr, _ = s.GrantsOf(ctx, org, user); !gr.OrgAdmin {
			t.Fatal("a member of the Organization Admin team is not an org admin")
		}
		if gr, _ = s.GrantsOf(ctx, uuid.NewString(), user); len(gr.Assignments) != 0 || gr.OrgAdmin {
			t.Fatalf("grants seen from another organization: %+v", gr)
		}

		list, err := s.ListRoleAssignments(ctx, org, store.SubjectUser, user)
		if err != nil || len(list) != 2 {
			t.Fatalf("direct assignments = %+v, %v; want 2", list, err)
		}
		if err := s.DeleteRoleAssignment(ctx, org, store.SubjectUser, user, viewer.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRoleAssignment(ctx, org, store.SubjectUser, user, viewer.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if err := s.DeleteRoleAssignment(ctx, org, store.SubjectTeam, team, list[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete through another subject: %v, want ErrNotFound", err)
		}

		// Deleting the group removes every assignment naming it, direct and of teams.
		if err := s.DeleteGroup(ctx, org, g.ID); err != nil {
			t.Fatal(err)
		}
		gr, _ = s.GrantsOf(ctx, org, user)
		for _, a := range gr.Assignments {
			if a.EntityID == g.ID {
				t.Fatalf("assignment %+v survived its group", a)
			}
		}

		// A failed group creation leaves no assignment and no group behind.
		g2 := g
		g2.ID, g2.Name = uuid.NewString(), "orphan"
		if err := s.CreateGroupWithAdmin(ctx, g2, assign(store.SubjectUser, uuid.NewString(), "Admin", g2.ID)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("creation for an unknown creator: %v", err)
		}
		if _, err := s.GetGroup(ctx, org, g2.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the group of a failed creation exists: %v", err)
		}

		// Listing restricted to some ids.
		gs, total, err := s.ListGroups(ctx, store.GroupQuery{OrgID: org, Region: "us", Restricted: true, PageSize: 10, PageNumber: 1})
		if err != nil || total != 0 || len(gs) != 0 {
			t.Fatalf("restricted to nothing: %d groups, total %d, %v", len(gs), total, err)
		}
		gs, total, err = s.ListGroups(ctx, store.GroupQuery{OrgID: org, Region: "us", Restricted: true, IDs: []string{b.Group.ID, uuid.NewString()}, PageSize: 10, PageNumber: 1})
		if err != nil || total != 1 || len(gs) != 1 || gs[0].ID != b.Group.ID {
			t.Fatalf("restricted to the default group: %+v, total %d, %v", gs, total, err)
		}
	})
}

// TestRoleAssignmentLimit fills a subject up to MaxRoleAssignments: one more is refused with
// ErrTooManyAssignments and not stored.
func TestRoleAssignmentLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		b := bootstrap(t, s)
		user := addUser(t, s, b.Org.ID)
		assign := func() error {
			return s.CreateRoleAssignment(ctx, store.RoleAssignment{ID: uuid.NewString(), OrgID: b.Org.ID, SubjectType: store.SubjectUser, SubjectID: user,
				RoleName: "Viewer", EntityTypeName: "Runtime Groups", EntityID: uuid.NewString(), EntityRegion: "us", CreatedAt: time.Now()})
		}
		for i := range store.MaxRoleAssignments {
			if err := assign(); err != nil {
				t.Fatalf("assignment %d: %v", i+1, err)
			}
		}
		if err := assign(); !errors.Is(err, store.ErrTooManyAssignments) {
			t.Fatalf("assignment %d: %v, want ErrTooManyAssignments", store.MaxRoleAssignments+1, err)
		}
		if list, _ := s.ListRoleAssignments(ctx, b.Org.ID, store.SubjectUser, user); len(list) != store.MaxRoleAssignments {
			t.Fatalf("%d assignments stored, want %d", len(list), store.MaxRoleAssignments)
		}
	})
}
