package sqlstore

import (
	"context"
	"database/sql"

	"github.com/gantry-gw/gantry/internal/cp/store"
)

// Audit entity types and actions of identities, teams, memberships and role assignments.
const (
	AuditUsers               = "users"
	AuditSystemAccounts      = "system_accounts"
	AuditTeams               = "teams"
	AuditTeamMembers         = "team_members"
	AuditRoleAssignments     = "role_assignments"
	AuditSystemAccountTokens = "system_account_tokens"

	AuditMemberAdd    = "member_add"
	AuditMemberRemove = "member_remove"
	AuditRoleAssign   = "role_assign"
	AuditRoleRemove   = "role_remove"
)

// userAuditType is the audit entity type of an identity of kind.
func userAuditType(kind string) string {
	if kind == store.KindSystemAccount {
		return AuditSystemAccounts
	}
	return AuditUsers
}

// userAuditDoc is an identity as the audit log shows it: never its password hash, only whether
// it has one.
func userAuditDoc(u store.User) map[string]any {
	return map[string]any{"id": u.ID, "kind": u.Kind, "name": u.Name, "email": u.Email, "full_name": u.FullName,
		"description": u.Description, "active": u.Active, "password_set": u.PasswordHash != ""}
}

func recordUser(ctx context.Context, s *Store, tx *sql.Tx, action string, before, after *store.User) error {
	u := after
	if u == nil {
		u = before
	}
	c := store.AuditChange{Action: action, EntityType: userAuditType(u.Kind), EntityID: u.ID, EntityName: u.Name}
	if before != nil {
		c.Before = userAuditDoc(*before)
	}
	if after != nil {
		c.After = userAuditDoc(*after)
	}
	return s.RecordAudit(ctx, tx, c)
}

func teamAuditDoc(t store.Team) map[string]any {
	return map[string]any{"id": t.ID, "name": t.Name, "description": t.Description, "predefined": t.Predefined}
}

func recordTeam(ctx context.Context, s *Store, tx *sql.Tx, action string, before, after *store.Team) error {
	t := after
	if t == nil {
		t = before
	}
	c := store.AuditChange{Action: action, EntityType: AuditTeams, EntityID: t.ID, EntityName: t.Name}
	if before != nil {
		c.Before = teamAuditDoc(*before)
	}
	if after != nil {
		c.After = teamAuditDoc(*after)
	}
	return s.RecordAudit(ctx, tx, c)
}

func recordMember(ctx context.Context, s *Store, tx *sql.Tx, action string, team store.Team, userID string) error {
	doc := map[string]any{"team_id": team.ID, "team_name": team.Name, "user_id": userID}
	c := store.AuditChange{Action: action, EntityType: AuditTeamMembers, EntityID: team.ID + ":" + userID, EntityName: team.Name}
	if action == AuditMemberAdd {
		c.After = doc
	} else {
		c.Before = doc
	}
	return s.RecordAudit(ctx, tx, c)
}

func roleAuditDoc(a store.RoleAssignment) map[string]any {
	return map[string]any{"id": a.ID, "subject_type": a.SubjectType, "subject_id": a.SubjectID, "role_name": a.RoleName,
		"entity_type_name": a.EntityTypeName, "entity_id": a.EntityID, "entity_region": a.EntityRegion}
}

func recordRole(ctx context.Context, s *Store, tx *sql.Tx, action string, a store.RoleAssignment) error {
	c := store.AuditChange{Action: action, EntityType: AuditRoleAssignments, EntityID: a.ID, EntityName: a.RoleName}
	if a.EntityID != "*" {
		c.GroupID = a.EntityID
	}
	if action == AuditRoleAssign {
		c.After = roleAuditDoc(a)
	} else {
		c.Before = roleAuditDoc(a)
	}
	return s.RecordAudit(ctx, tx, c)
}

// tokenAuditType is the audit entity type of a token of the identity userID: a personal access
// token, or a system account's access token.
func tokenAuditType(ctx context.Context, s *Store, tx *sql.Tx, userID string) (string, error) {
	var kind string
	err := tx.QueryRowContext(ctx, s.Rebind(`SELECT kind FROM users WHERE id = ?`), userID).Scan(&kind)
	if err != nil && err != sql.ErrNoRows {
		return "", err
	}
	if kind == store.KindSystemAccount {
		return AuditSystemAccountTokens, nil
	}
	return AuditPersonalAccessTokens, nil
}
