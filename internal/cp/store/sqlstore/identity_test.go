package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

func countRows(t *testing.T, s *sqlstore.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(s.Rebind(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestBootstrapIdentities(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		p := store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin", AdminEmail: "Admin@Example.COM", AdminPasswordHash: "$argon2id$first",
			AdminToken: store.Token{Name: "first", Hash: uuid.NewString(), Hint: "gpat_x"}}
		first, err := s.Bootstrap(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !first.PasswordSet || first.Admin.Email != "admin@example.com" || first.Admin.PasswordHash != "$argon2id$first" || !first.Admin.Active || first.Admin.Kind != store.KindUser {
			t.Fatalf("admin after first start = %+v", first)
		}
		teams, total, err := s.ListTeams(ctx, store.IdentityQuery{OrgID: first.Org.ID, PageSize: 10})
		if err != nil || total != 2 {
			t.Fatalf("teams = %+v, %d, %v", teams, total, err)
		}
		byDuty := map[string]store.Team{}
		for _, tm := range teams {
			byDuty[tm.Predefined] = tm
		}
		oa, ra := byDuty[store.TeamOrganizationAdmin], byDuty[store.TeamRuntimeAdmin]
		if oa.Name != "Organization Admin" || ra.Name != "Runtime Admin" {
			t.Fatalf("predefined teams = %+v", teams)
		}
		members, _, err := s.ListUsers(ctx, store.IdentityQuery{OrgID: first.Org.ID, Kind: store.KindUser, TeamID: oa.ID, PageSize: 10})
		if err != nil || len(members) != 1 || members[0].ID != first.Admin.ID {
			t.Fatalf("Organization Admin members = %+v, %v", members, err)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM role_assignments WHERE subject_type = 'team' AND subject_id = ? AND role_name = 'Admin'
			AND entity_type_name = 'Runtime Groups' AND entity_id = '*' AND entity_region = '*'`, ra.ID); n != 1 {
			t.Fatalf("Runtime Admin assignments = %d, want 1", n)
		}

		// A later start changes neither the password nor the email, and adds nothing twice.
		p.AdminPasswordHash, p.AdminEmail = "$argon2id$second", "other@example.com"
		again, err := s.Bootstrap(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if again.PasswordSet || again.Admin.PasswordHash != "$argon2id$first" || again.Admin.Email != "admin@example.com" {
			t.Fatalf("second start changed the admin: %+v", again)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM teams`); n != 2 {
			t.Fatalf("teams after second start = %d", n)
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM role_assignments`); n != 1 {
			t.Fatalf("assignments after second start = %d", n)
		}

		// An administrator without a login (a database from before identities) gets one.
		if _, err := s.DB().Exec(s.Rebind(`UPDATE users SET email = '', password_hash = '' WHERE id = ?`), first.Admin.ID); err != nil {
			t.Fatal(err)
		}
		upgraded, err := s.Bootstrap(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if !upgraded.PasswordSet || upgraded.Admin.PasswordHash != "$argon2id$second" || upgraded.Admin.Email != "other@example.com" {
			t.Fatalf("upgraded admin = %+v", upgraded.Admin)
		}

		// Organizations made later get their teams too.
		other, _, _, err := s.CreateOrganization(ctx, "Other", "us", store.User{Name: "o"})
		if err != nil {
			t.Fatal(err)
		}
		if _, n, _ := s.ListTeams(ctx, store.IdentityQuery{OrgID: other.ID, PageSize: 10}); n != 2 {
			t.Fatalf("other organization has %d teams", n)
		}
	})
}

func TestUsersAndSystemAccounts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		org := bootstrap(t, s)
		orgID := org.Org.ID
		now := time.Now().UTC()
		ann := store.User{ID: uuid.NewString(), OrgID: orgID, Email: " Ann@Example.com", FullName: "Ann", Active: true, CreatedAt: now}
		if err := s.CreateUser(ctx, ann); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetUser(ctx, orgID, store.KindUser, ann.ID)
		if err != nil || got.Email != "ann@example.com" || got.Name != "ann@example.com" || got.Kind != store.KindUser || !got.Active {
			t.Fatalf("GetUser = %+v, %v", got, err)
		}
		dup := store.User{ID: uuid.NewString(), OrgID: orgID, Email: "ANN@example.com", Active: true, CreatedAt: now}
		if err := s.CreateUser(ctx, dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate email: %v", err)
		}
		ci := store.User{ID: uuid.NewString(), OrgID: orgID, Kind: store.KindSystemAccount, Name: "ci", Description: "pipelines", Active: true, CreatedAt: now}
		if err := s.CreateUser(ctx, ci); err != nil {
			t.Fatal(err)
		}
		ci2 := ci
		ci2.ID = uuid.NewString()
		if err := s.CreateUser(ctx, ci2); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate system account name: %v", err)
		}
		// Kinds do not mix.
		if _, err := s.GetUser(ctx, orgID, store.KindUser, ci.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("system account read as user: %v", err)
		}
		if _, err := s.GetUser(ctx, orgID, store.KindSystemAccount, ann.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("user read as system account: %v", err)
		}
		if _, err := s.GetUser(ctx, uuid.NewString(), "", ann.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("user read from another organization: %v", err)
		}
		found, err := s.UsersByEmail(ctx, "ANN@EXAMPLE.COM")
		if err != nil || len(found) != 1 || found[0].ID != ann.ID {
			t.Fatalf("UsersByEmail = %+v, %v", found, err)
		}

		for _, tc := range []struct {
			name    string
			filters []store.GroupFilter
			want    int
		}{
			{"all", nil, 2}, // the administrator and Ann
			{"email eq any case", []store.GroupFilter{{Field: "email", Op: "eq", Value: "ANN@example.com"}}, 1},
			{"email contains", []store.GroupFilter{{Field: "email", Op: "contains", Value: "EXAMPLE"}}, 1},
			{"inactive", []store.GroupFilter{{Field: "active", Op: "eq", Value: "false"}}, 0},
			{"full name", []store.GroupFilter{{Field: "full_name", Op: "eq", Value: "Ann"}}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, total, err := s.ListUsers(ctx, store.IdentityQuery{OrgID: orgID, Kind: store.KindUser, Filters: tc.filters, PageSize: 10})
				if err != nil || total != tc.want {
					t.Fatalf("total = %d, %v; want %d", total, err, tc.want)
				}
			})
		}
		if _, _, err := s.ListUsers(ctx, store.IdentityQuery{OrgID: orgID, Filters: []store.GroupFilter{{Field: "password_hash", Op: "eq", Value: "x"}}}); err == nil {
			t.Fatal("filter on password_hash accepted")
		}
		page2, total, err := s.ListUsers(ctx, store.IdentityQuery{OrgID: orgID, Kind: store.KindUser, PageSize: 1, PageNumber: 2})
		if err != nil || total != 2 || len(page2) != 1 || page2[0].ID != ann.ID {
			t.Fatalf("page 2 = %+v, %d, %v", page2, total, err)
		}
		accounts, total, err := s.ListUsers(ctx, store.IdentityQuery{OrgID: orgID, Kind: store.KindSystemAccount, PageSize: 10})
		if err != nil || total != 1 || accounts[0].Name != "ci" {
			t.Fatalf("system accounts = %+v, %v", accounts, err)
		}

		upd, err := s.UpdateUser(ctx, orgID, store.KindUser, ann.ID, func(u *store.User) error {
			u.Email, u.Active, u.Kind = "ann.new@example.com", false, store.KindSystemAccount
			return nil
		})
		if err != nil || upd.Email != "ann.new@example.com" || upd.Name != upd.Email || upd.Active || upd.Kind != store.KindUser || !upd.UpdatedAt.After(upd.CreatedAt) {
			t.Fatalf("UpdateUser = %+v, %v", upd, err)
		}
		if _, err := s.UpdateUser(ctx, orgID, store.KindUser, org.Admin.ID, func(u *store.User) error { u.Email = "ANN.new@example.com"; return nil }); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("email of another user: %v", err)
		}
		if _, err := s.UpdateUser(ctx, orgID, store.KindSystemAccount, ci.ID, func(u *store.User) error { return errors.New("stop") }); err == nil || err.Error() != "stop" {
			t.Fatalf("fn error not returned: %v", err)
		}
	})
}

func TestTeamsAndMembers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		org := bootstrap(t, s)
		orgID := org.Org.ID
		now := time.Now().UTC()
		team := store.Team{ID: uuid.NewString(), OrgID: orgID, Name: "on-call", Description: "pagers", CreatedAt: now}
		if err := s.CreateTeam(ctx, team); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTeam(ctx, store.Team{ID: uuid.NewString(), OrgID: orgID, Name: "on-call", CreatedAt: now}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate team name: %v", err)
		}
		bob := store.User{ID: uuid.NewString(), OrgID: orgID, Email: "bob@example.com", Active: true, CreatedAt: now}
		ci := store.User{ID: uuid.NewString(), OrgID: orgID, Kind: store.KindSystemAccount, Name: "ci", Active: true, CreatedAt: now}
		for _, u := range []store.User{bob, ci} {
			if err := s.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddTeamMember(ctx, orgID, team.ID, store.KindUser, bob.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := s.AddTeamMember(ctx, orgID, team.ID, store.KindUser, bob.ID, now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second add: %v", err)
		}
		if err := s.AddTeamMember(ctx, orgID, team.ID, store.KindUser, ci.ID, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("system account added as user: %v", err)
		}
		if err := s.AddTeamMember(ctx, orgID, team.ID, store.KindSystemAccount, ci.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := s.AddTeamMember(ctx, uuid.NewString(), team.ID, store.KindUser, bob.ID, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("add through another organization: %v", err)
		}
		users, total, err := s.ListUsers(ctx, store.IdentityQuery{OrgID: orgID, Kind: store.KindUser, TeamID: team.ID, PageSize: 10})
		if err != nil || total != 1 || users[0].ID != bob.ID {
			t.Fatalf("team users = %+v, %v", users, err)
		}
		teams, err := s.UserTeams(ctx, orgID, ci.ID)
		if err != nil || len(teams) != 1 || teams[0].ID != team.ID {
			t.Fatalf("UserTeams = %+v, %v", teams, err)
		}
		if err := s.RemoveTeamMember(ctx, orgID, team.ID, store.KindSystemAccount, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("remove user as system account: %v", err)
		}
		if err := s.RemoveTeamMember(ctx, orgID, team.ID, store.KindUser, bob.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveTeamMember(ctx, orgID, team.ID, store.KindUser, bob.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second remove: %v", err)
		}

		// Predefined teams keep their names and cannot be deleted.
		all, _, _ := s.ListTeams(ctx, store.IdentityQuery{OrgID: orgID, Filters: []store.GroupFilter{{Field: "name", Op: "eq", Value: "Runtime Admin"}}, PageSize: 10})
		if len(all) != 1 {
			t.Fatalf("Runtime Admin team: %+v", all)
		}
		ra := all[0]
		if _, err := s.UpdateTeam(ctx, orgID, ra.ID, func(t *store.Team) error { t.Name = "Runtime"; return nil }); !errors.Is(err, store.ErrPredefinedTeam) {
			t.Fatalf("rename predefined: %v", err)
		}
		if got, err := s.UpdateTeam(ctx, orgID, ra.ID, func(t *store.Team) error { t.Description = "ours"; return nil }); err != nil || got.Description != "ours" || got.Name != "Runtime Admin" {
			t.Fatalf("describe predefined: %+v, %v", got, err)
		}
		if err := s.DeleteTeam(ctx, orgID, ra.ID); !errors.Is(err, store.ErrPredefinedTeam) {
			t.Fatalf("delete predefined: %v", err)
		}
		renamed, err := s.UpdateTeam(ctx, orgID, team.ID, func(t *store.Team) error { t.Name = "sre"; return nil })
		if err != nil || renamed.Name != "sre" {
			t.Fatalf("rename: %+v, %v", renamed, err)
		}

		// Deleting a team or an identity removes its role assignments in the same transaction.
		assign := func(subjectType, subjectID string) {
			t.Helper()
			if _, err := s.DB().Exec(s.Rebind(`INSERT INTO role_assignments (id, org_id, subject_type, subject_id, role_name, entity_type_name, entity_id, entity_region, created_at)
				VALUES (?, ?, ?, ?, 'Viewer', 'Runtime Groups', '*', '*', 0)`), uuid.NewString(), orgID, subjectType, subjectID); err != nil {
				t.Fatal(err)
			}
		}
		assign("team", team.ID)
		assign("user", bob.ID)
		assign("user", ci.ID)
		if err := s.DeleteTeam(ctx, orgID, team.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, orgID, store.KindUser, bob.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, orgID, store.KindUser, ci.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete system account as user: %v", err)
		}
		if err := s.DeleteUser(ctx, orgID, store.KindSystemAccount, ci.ID); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{team.ID, bob.ID, ci.ID} {
			if n := countRows(t, s, `SELECT COUNT(*) FROM role_assignments WHERE subject_id = ?`, id); n != 0 {
				t.Fatalf("%d assignments of %s left", n, id)
			}
		}
		if n := countRows(t, s, `SELECT COUNT(*) FROM team_members WHERE team_id = ? OR user_id = ?`, team.ID, ci.ID); n != 0 {
			t.Fatalf("%d memberships left", n)
		}
	})
}

func TestSessionsAndTokenUsers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		ctx := context.Background()
		org := bootstrap(t, s)
		now := time.Now().UTC().Truncate(time.Microsecond)
		se := store.Session{ID: "hash1", OrgID: org.Org.ID, UserID: org.Admin.ID, CSRFToken: "csrf", SourceAddress: "192.0.2.1", UserAgent: "ua",
			CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
		got, u, err := s.LookupSession(ctx, "hash1")
		if err != nil || got != se || u.ID != org.Admin.ID || u.Role != "admin" {
			t.Fatalf("LookupSession = %+v, %+v, %v", got, u, err)
		}
		if err := s.TouchSession(ctx, "hash1", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.LookupSession(ctx, "hash1"); !got.LastSeenAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("last seen = %v", got.LastSeenAt)
		}
		idle := se
		idle.ID, idle.LastSeenAt = "hash2", now.Add(-time.Hour)
		expired := se
		expired.ID, expired.ExpiresAt = "hash3", now.Add(-time.Second)
		for _, x := range []store.Session{idle, expired} {
			if err := s.CreateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.DeleteSessions(ctx, now, now.Add(-30*time.Minute)); err != nil || n != 2 {
			t.Fatalf("DeleteSessions = %d, %v; want 2", n, err)
		}
		other := se
		other.ID = "hash4"
		if err := s.CreateSession(ctx, other); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DeleteUserSessions(ctx, org.Admin.ID, "hash1"); err != nil || n != 1 {
			t.Fatalf("DeleteUserSessions = %d, %v; want 1", n, err)
		}
		if _, _, err := s.LookupSession(ctx, "hash1"); err != nil {
			t.Fatalf("the kept session is gone: %v", err)
		}
		if err := s.DeleteSession(ctx, "hash1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSession(ctx, "hash1"); err != nil {
			t.Fatalf("deleting a gone session: %v", err)
		}
		if _, _, err := s.LookupSession(ctx, "hash1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted session: %v", err)
		}

		tok, u, err := s.LookupTokenUser(ctx, countTokenHash(t, s, org.Admin.ID))
		if err != nil || tok.UserID != org.Admin.ID || u.ID != org.Admin.ID || !u.Active {
			t.Fatalf("LookupTokenUser = %+v, %+v, %v", tok, u, err)
		}
		if _, _, err := s.LookupTokenUser(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
	})
}

// countTokenHash returns the hash of the user's one token.
func countTokenHash(t *testing.T, s *sqlstore.Store, userID string) string {
	t.Helper()
	var h string
	if err := s.DB().QueryRow(s.Rebind(`SELECT hash FROM tokens WHERE user_id = ?`), userID).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}
