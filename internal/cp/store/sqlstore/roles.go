package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gantry-gw/gantry/internal/cp/store"
)

const roleCols = `id, org_id, subject_type, subject_id, role_name, entity_type_name, entity_id, entity_region, created_at`

func scanRole(sc interface{ Scan(...any) error }) (store.RoleAssignment, error) {
	var a store.RoleAssignment
	var created int64
	err := sc.Scan(&a.ID, &a.OrgID, &a.SubjectType, &a.SubjectID, &a.RoleName, &a.EntityTypeName, &a.EntityID, &a.EntityRegion, &created)
	a.CreatedAt = fromDB(created)
	return a, err
}

func insertRole(ctx context.Context, s *Store, tx *sql.Tx, a store.RoleAssignment) error {
	var exists int
	q, args := `SELECT COUNT(*) FROM users WHERE org_id = ? AND id = ?`, []any{a.OrgID, a.SubjectID}
	if a.SubjectType == store.SubjectTeam {
		q = `SELECT COUNT(*) FROM teams WHERE org_id = ? AND id = ?`
	} else if a.SubjectKind != "" {
		q, args = q+` AND kind = ?`, append(args, a.SubjectKind)
	}
	if err := tx.QueryRowContext(ctx, s.Rebind(q), args...).Scan(&exists); err != nil {
		return err
	}
	if exists == 0 {
		return fmt.Errorf("%s %s: %w", a.SubjectType, a.SubjectID, store.ErrNotFound)
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.Rebind(`SELECT COUNT(*) FROM role_assignments WHERE subject_id = ?`), a.SubjectID).Scan(&n); err != nil {
		return err
	}
	if n >= store.MaxRoleAssignments {
		return fmt.Errorf("a subject holds at most %d role assignments: %w", store.MaxRoleAssignments, store.ErrTooManyAssignments)
	}
	_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO role_assignments (`+roleCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		a.ID, a.OrgID, a.SubjectType, a.SubjectID, a.RoleName, a.EntityTypeName, a.EntityID, a.EntityRegion, toDB(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("assign role: %w", s.mapErr(err))
	}
	if err := s.NotifyGrants(ctx, tx); err != nil {
		return err
	}
	return recordRole(ctx, s, tx, AuditRoleAssign, a)
}

// CreateRoleAssignment implements store.Roles.
func (s *Store) CreateRoleAssignment(ctx context.Context, a store.RoleAssignment) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertRole(ctx, s, tx, a) })
}

// ListRoleAssignments implements store.Roles.
func (s *Store) ListRoleAssignments(ctx context.Context, orgID, subjectType, subjectID string) ([]store.RoleAssignment, error) {
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+roleCols+` FROM role_assignments
		WHERE org_id = ? AND subject_type = ? AND subject_id = ? ORDER BY created_at, id`), orgID, subjectType, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.RoleAssignment{}
	for rows.Next() {
		a, err := scanRole(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeleteRoleAssignment implements store.Roles.
func (s *Store) DeleteRoleAssignment(ctx context.Context, orgID, subjectType, subjectID, id string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := scanRole(tx.QueryRowContext(ctx, s.Rebind(`SELECT `+roleCols+` FROM role_assignments WHERE org_id = ? AND subject_type = ? AND subject_id = ? AND id = ?`),
			orgID, subjectType, subjectID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("role assignment %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.Rebind(`DELETE FROM role_assignments WHERE id = ?`), id); err != nil {
			return err
		}
		if err := s.NotifyGrants(ctx, tx); err != nil {
			return err
		}
		return recordRole(ctx, s, tx, AuditRoleRemove, a)
	})
}

// GrantsOf implements store.Roles in one query: the assignments of the identity and of its
// teams, and a row per Organization Admin team it belongs to.
func (s *Store) GrantsOf(ctx context.Context, orgID, userID string) (store.Grants, error) {
	var g store.Grants
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT 'a', `+roleCols+` FROM role_assignments
		WHERE org_id = ? AND (subject_id = ? OR subject_id IN (SELECT team_id FROM team_members WHERE user_id = ?))
		UNION ALL
		SELECT 'o', t.id, t.org_id, '', '', '', '', '', '', 0 FROM team_members m JOIN teams t ON t.id = m.team_id
		WHERE m.user_id = ? AND t.org_id = ? AND t.predefined = ?
		ORDER BY 1, 10, 2`), orgID, userID, userID, userID, orgID, store.TeamOrganizationAdmin)
	if err != nil {
		return g, err
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var a store.RoleAssignment
		var created int64
		if err := rows.Scan(&kind, &a.ID, &a.OrgID, &a.SubjectType, &a.SubjectID, &a.RoleName, &a.EntityTypeName, &a.EntityID, &a.EntityRegion, &created); err != nil {
			return g, err
		}
		if kind == "o" {
			g.OrgAdmin = true
			continue
		}
		a.CreatedAt = fromDB(created)
		g.Assignments = append(g.Assignments, a)
	}
	return g, rows.Err()
}

// CreateGroupWithAdmin implements store.Roles.
func (s *Store) CreateGroupWithAdmin(ctx context.Context, g store.RuntimeGroup, a store.RoleAssignment) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertGroup(ctx, s, tx, g); err != nil {
			return err
		}
		if err := insertRole(ctx, s, tx, a); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("the creator of the group no longer exists: %w", err)
			}
			return err
		}
		return nil
	})
}
