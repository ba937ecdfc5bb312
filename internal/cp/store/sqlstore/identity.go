package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

const userCols = `id, org_id, kind, name, role, email, full_name, description, active, password_hash, created_at, updated_at`

func scanUser(sc interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var created, updated int64
	err := sc.Scan(&u.ID, &u.OrgID, &u.Kind, &u.Name, &u.Role, &u.Email, &u.FullName, &u.Description, &u.Active, &u.PasswordHash, &created, &updated)
	u.CreatedAt, u.UpdatedAt = fromDB(created), fromDB(updated)
	if updated == 0 {
		// Rows from before identities had an update time.
		u.UpdatedAt = u.CreatedAt
	}
	return u, err
}

// normalizeUser fills the defaults of a new identity: kind user, lowercased email, a user's name
// repeating its email.
func normalizeUser(u *store.User) {
	if u.Kind == "" {
		u.Kind = store.KindUser
	}
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	if u.Kind == store.KindUser && u.Email != "" {
		u.Name = u.Email
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
}

func insertUser(ctx context.Context, s *Store, tx *sql.Tx, u store.User) error {
	normalizeUser(&u)
	if u.Kind == store.KindSystemAccount {
		if err := systemAccountNameFree(ctx, s, tx, u.OrgID, u.ID, u.Name); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.OrgID, u.Kind, u.Name, u.Role, u.Email, u.FullName, u.Description, u.Active, u.PasswordHash, toDB(u.CreatedAt), toDB(u.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return recordUser(ctx, s, tx, store.ActionCreate, nil, &u)
}

// systemAccountNameFree reports ErrConflict when another system account of the organization has
// that name. The users table has no unique index on names (users repeat their email there), so
// the check runs in the writing transaction.
func systemAccountNameFree(ctx context.Context, s *Store, tx *sql.Tx, orgID, id, name string) error {
	var n int
	err := tx.QueryRowContext(ctx, s.Rebind(`SELECT COUNT(*) FROM users WHERE org_id = ? AND kind = ? AND name = ? AND id <> ?`),
		orgID, store.KindSystemAccount, name, id).Scan(&n)
	if err != nil {
		return err
	}
	if n > 0 {
		return &ConstraintError{Kind: store.ErrConflict, Constraint: "users.name", Detail: fmt.Sprintf("a system account named %q exists", name)}
	}
	return nil
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertUser(ctx, s, tx, u) })
}

func userNotFound(kind, id string) error {
	what := "user"
	if kind == store.KindSystemAccount {
		what = "system account"
	}
	return fmt.Errorf("%s %s: %w", what, id, store.ErrNotFound)
}

// kindCond restricts a users query to kind, unless kind is "".
func kindCond(kind string) (string, []any) {
	if kind == "" {
		return "", nil
	}
	return " AND kind = ?", []any{kind}
}

func getUser(ctx context.Context, s *Store, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, orgID, kind, id, suffix string) (store.User, error) {
	cond, kargs := kindCond(kind)
	u, err := scanUser(q.QueryRowContext(ctx, s.Rebind(`SELECT `+userCols+` FROM users WHERE org_id = ? AND id = ?`+cond+suffix), append([]any{orgID, id}, kargs...)...))
	if errors.Is(err, sql.ErrNoRows) {
		return u, userNotFound(kind, id)
	}
	return u, err
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, orgID, kind, id string) (store.User, error) {
	return getUser(ctx, s, s.db, orgID, kind, id, "")
}

// UsersByEmail implements store.Store.
func (s *Store) UsersByEmail(ctx context.Context, email string) ([]store.User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+userCols+` FROM users WHERE kind = ? AND email = ? ORDER BY created_at, id`), store.KindUser, email)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// identityFilterColumns lists the filterable columns per listing.
var identityFilterColumns = map[string]map[string]string{
	store.KindUser:          {"id": "id", "email": "email", "full_name": "full_name", "active": "active"},
	store.KindSystemAccount: {"id": "id", "name": "name"},
	"team":                  {"id": "id", "name": "name"},
}

// identityWhere turns a query's filters into SQL conditions on the columns of listing.
func (s *Store) identityWhere(listing string, filters []store.GroupFilter) ([]string, []any, error) {
	var where []string
	var args []any
	cols := identityFilterColumns[listing]
	for _, f := range filters {
		col, ok := cols[f.Field]
		if !ok {
			return nil, nil, fmt.Errorf("unknown filter field %q", f.Field)
		}
		var val any = f.Value
		switch col {
		case "email":
			val = strings.ToLower(f.Value)
		case "active":
			if f.Op != "eq" || (f.Value != "true" && f.Value != "false") {
				return nil, nil, fmt.Errorf("filter on active takes eq true or false, not %s %q", f.Op, f.Value)
			}
			val = f.Value == "true"
		}
		switch f.Op {
		case "eq":
			where, args = append(where, col+" = ?"), append(args, val)
		case "neq":
			where, args = append(where, col+" <> ?"), append(args, val)
		case "contains":
			where, args = append(where, s.dialect.contains(col)), append(args, val)
		case "oeq":
			vals := strings.Split(f.Value, ",")
			where = append(where, col+" IN (?"+strings.Repeat(", ?", len(vals)-1)+")")
			for _, v := range vals {
				if col == "email" {
					v = strings.ToLower(v)
				}
				args = append(args, v)
			}
		default:
			return nil, nil, fmt.Errorf("unknown filter operator %q", f.Op)
		}
	}
	return where, args, nil
}

// pageArgs returns LIMIT and OFFSET of a query's page.
func pageArgs(size, number int) (limit, offset int) {
	size, number = max(size, 1), max(number, 1)
	return size, (number - 1) * size
}

// ListUsers implements store.Store.
func (s *Store) ListUsers(ctx context.Context, q store.IdentityQuery) ([]store.User, int, error) {
	kind := q.Kind
	if kind == "" {
		kind = store.KindUser
	}
	where, args, err := s.identityWhere(kind, q.Filters)
	if err != nil {
		return nil, 0, err
	}
	where = append([]string{"org_id = ?", "kind = ?"}, where...)
	args = append([]any{q.OrgID, kind}, args...)
	if q.TeamID != "" {
		where, args = append(where, "id IN (SELECT user_id FROM team_members WHERE team_id = ?)"), append(args, q.TeamID)
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.db.QueryRowContext(ctx, s.Rebind(`SELECT COUNT(*) FROM users WHERE `+cond), args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit, offset := pageArgs(q.PageSize, q.PageNumber)
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+userCols+` FROM users WHERE `+cond+` ORDER BY created_at, id LIMIT ? OFFSET ?`), append(args, limit, offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, u)
	}
	return out, total, rows.Err()
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, orgID, kind, id string, fn func(*store.User) error) (store.User, error) {
	var u store.User
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if u, err = getUser(ctx, s, tx, orgID, kind, id, s.dialect.forUpdate()); err != nil {
			return err
		}
		before := u
		if err := fn(&u); err != nil {
			return err
		}
		u.ID, u.OrgID, u.Kind, u.CreatedAt, u.Role = before.ID, before.OrgID, before.Kind, before.CreatedAt, before.Role
		normalizeUser(&u)
		if u.Kind == store.KindSystemAccount && u.Name != before.Name {
			if err := systemAccountNameFree(ctx, s, tx, u.OrgID, u.ID, u.Name); err != nil {
				return err
			}
		}
		u.UpdatedAt = time.Now().UTC()
		_, err = tx.ExecContext(ctx, s.Rebind(`UPDATE users SET name = ?, email = ?, full_name = ?, description = ?, active = ?, password_hash = ?, updated_at = ? WHERE id = ?`),
			u.Name, u.Email, u.FullName, u.Description, u.Active, u.PasswordHash, toDB(u.UpdatedAt), u.ID)
		if err != nil {
			return err
		}
		return recordUser(ctx, s, tx, store.ActionUpdate, &before, &u)
	})
	return u, err
}

// DeleteUser implements store.Store. Tokens, sessions and team memberships go with the row
// (cascading foreign keys); role assignments name their subject without a foreign key (a subject
// is a user or a team), so they are deleted here.
func (s *Store) DeleteUser(ctx context.Context, orgID, kind, id string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		before, err := getUser(ctx, s, tx, orgID, kind, id, "")
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.Rebind(`DELETE FROM role_assignments WHERE org_id = ? AND subject_type = 'user' AND subject_id = ?`), orgID, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.Rebind(`DELETE FROM users WHERE id = ?`), id); err != nil {
			return err
		}
		if err := s.NotifyGrants(ctx, tx); err != nil {
			return err
		}
		return recordUser(ctx, s, tx, store.ActionDelete, &before, nil)
	})
}

const teamCols = `id, org_id, name, description, predefined, created_at, updated_at`

func scanTeam(sc interface{ Scan(...any) error }) (store.Team, error) {
	var t store.Team
	var created, updated int64
	err := sc.Scan(&t.ID, &t.OrgID, &t.Name, &t.Description, &t.Predefined, &created, &updated)
	t.CreatedAt, t.UpdatedAt = fromDB(created), fromDB(updated)
	return t, err
}

func insertTeam(ctx context.Context, s *Store, tx *sql.Tx, t store.Team) error {
	if t.UpdatedAt.IsZero() {
		t.UpdatedAt = t.CreatedAt
	}
	_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO teams (`+teamCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.OrgID, t.Name, t.Description, t.Predefined, toDB(t.CreatedAt), toDB(t.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create team: %w", err)
	}
	return recordTeam(ctx, s, tx, store.ActionCreate, nil, &t)
}

// CreateTeam implements store.Store.
func (s *Store) CreateTeam(ctx context.Context, t store.Team) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertTeam(ctx, s, tx, t) })
}

func getTeam(ctx context.Context, s *Store, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, orgID, id, suffix string) (store.Team, error) {
	t, err := scanTeam(q.QueryRowContext(ctx, s.Rebind(`SELECT `+teamCols+` FROM teams WHERE org_id = ? AND id = ?`+suffix), orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("team %s: %w", id, store.ErrNotFound)
	}
	return t, err
}

// GetTeam implements store.Store.
func (s *Store) GetTeam(ctx context.Context, orgID, id string) (store.Team, error) {
	return getTeam(ctx, s, s.db, orgID, id, "")
}

// ListTeams implements store.Store.
func (s *Store) ListTeams(ctx context.Context, q store.IdentityQuery) ([]store.Team, int, error) {
	where, args, err := s.identityWhere("team", q.Filters)
	if err != nil {
		return nil, 0, err
	}
	where, args = append([]string{"org_id = ?"}, where...), append([]any{q.OrgID}, args...)
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.db.QueryRowContext(ctx, s.Rebind(`SELECT COUNT(*) FROM teams WHERE `+cond), args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit, offset := pageArgs(q.PageSize, q.PageNumber)
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+teamCols+` FROM teams WHERE `+cond+` ORDER BY created_at, id LIMIT ? OFFSET ?`), append(args, limit, offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []store.Team
	for rows.Next() {
		t, err := scanTeam(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	return out, total, rows.Err()
}

// UpdateTeam implements store.Store.
func (s *Store) UpdateTeam(ctx context.Context, orgID, id string, fn func(*store.Team) error) (store.Team, error) {
	var t store.Team
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = getTeam(ctx, s, tx, orgID, id, s.dialect.forUpdate()); err != nil {
			return err
		}
		before := t
		if err := fn(&t); err != nil {
			return err
		}
		t.ID, t.OrgID, t.Predefined, t.CreatedAt = before.ID, before.OrgID, before.Predefined, before.CreatedAt
		if t.Predefined != "" && t.Name != before.Name {
			return fmt.Errorf("the predefined team %q cannot be renamed: %w", before.Name, store.ErrPredefinedTeam)
		}
		t.UpdatedAt = time.Now().UTC()
		if _, err = tx.ExecContext(ctx, s.Rebind(`UPDATE teams SET name = ?, description = ?, updated_at = ? WHERE id = ?`), t.Name, t.Description, toDB(t.UpdatedAt), t.ID); err != nil {
			return err
		}
		return recordTeam(ctx, s, tx, store.ActionUpdate, &before, &t)
	})
	return t, err
}

// DeleteTeam implements store.Store.
func (s *Store) DeleteTeam(ctx context.Context, orgID, id string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		t, err := getTeam(ctx, s, tx, orgID, id, "")
		if err != nil {
			return err
		}
		if t.Predefined != "" {
			return fmt.Errorf("the predefined team %q cannot be deleted: %w", t.Name, store.ErrPredefinedTeam)
		}
		if _, err := tx.ExecContext(ctx, s.Rebind(`DELETE FROM role_assignments WHERE org_id = ? AND subject_type = 'team' AND subject_id = ?`), orgID, id); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, s.Rebind(`DELETE FROM teams WHERE id = ?`), id); err != nil {
			return err
		}
		if err := s.NotifyGrants(ctx, tx); err != nil {
			return err
		}
		return recordTeam(ctx, s, tx, store.ActionDelete, &t, nil)
	})
}

// AddTeamMember implements store.Store.
func (s *Store) AddTeamMember(ctx context.Context, orgID, teamID, kind, userID string, at time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		team, err := getTeam(ctx, s, tx, orgID, teamID, "")
		if err != nil {
			return err
		}
		if _, err := getUser(ctx, s, tx, orgID, kind, userID, ""); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO team_members (team_id, user_id, created_at) VALUES (?, ?, ?)`), teamID, userID, toDB(at)); err != nil {
			return err
		}
		if err := s.NotifyGrants(ctx, tx); err != nil {
			return err
		}
		return recordMember(ctx, s, tx, AuditMemberAdd, team, userID)
	})
}

// RemoveTeamMember implements store.Store.
func (s *Store) RemoveTeamMember(ctx context.Context, orgID, teamID, kind, userID string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		team, err := getTeam(ctx, s, tx, orgID, teamID, "")
		if err != nil {
			return err
		}
		cond, kargs := kindCond(kind)
		r, err := tx.ExecContext(ctx, s.Rebind(`DELETE FROM team_members WHERE team_id = ? AND user_id IN (SELECT id FROM users WHERE org_id = ? AND id = ?`+cond+`)`),
			append([]any{teamID, orgID, userID}, kargs...)...)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("member %s of team %s: %w", userID, teamID, store.ErrNotFound)
		}
		if team.Predefined == store.TeamOrganizationAdmin {
			var left int
			if err := tx.QueryRowContext(ctx, s.Rebind(`SELECT COUNT(*) FROM team_members m JOIN users u ON u.id = m.user_id
				WHERE m.team_id = ? AND u.active AND u.kind = ?`), teamID, store.KindUser).Scan(&left); err != nil {
				return err
			}
			if left == 0 {
				return fmt.Errorf("remove the last active user of the Organization Admin team: %w", store.ErrLastOrgAdmin)
			}
		}
		if err := s.NotifyGrants(ctx, tx); err != nil {
			return err
		}
		return recordMember(ctx, s, tx, AuditMemberRemove, team, userID)
	})
}

// UserTeams implements store.Store.
func (s *Store) UserTeams(ctx context.Context, orgID, userID string) ([]store.Team, error) {
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+prefixCols("t.", teamCols)+` FROM teams t JOIN team_members m ON m.team_id = t.id
		WHERE t.org_id = ? AND m.user_id = ? ORDER BY t.name, t.id`), orgID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Team
	for rows.Next() {
		t, err := scanTeam(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// prefixCols qualifies each column of a comma-separated list with prefix.
func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

// ensurePredefinedTeams gives every organization its predefined teams and the Runtime Admin
// team its role. When the Organization Admin team of an organization is created here, the
// organization's administrator (role "admin") joins it.
func ensurePredefinedTeams(ctx context.Context, s *Store, tx *sql.Tx, now time.Time) error {
	orgs, err := organizationIDs(ctx, tx)
	if err != nil {
		return err
	}
	for _, org := range orgs {
		if err := ensureOrgTeams(ctx, s, tx, org, now); err != nil {
			return err
		}
	}
	return nil
}

func organizationIDs(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM organizations ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var orgs []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		orgs = append(orgs, id)
	}
	return orgs, rows.Err()
}

func ensureOrgTeams(ctx context.Context, s *Store, tx *sql.Tx, orgID string, now time.Time) error {
	for _, pt := range store.PredefinedTeams {
		var id string
		err := tx.QueryRowContext(ctx, s.Rebind(`SELECT id FROM teams WHERE org_id = ? AND predefined = ?`), orgID, pt.Duty).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			id = uuid.NewString()
			if err := insertTeam(ctx, s, tx, store.Team{ID: id, OrgID: orgID, Name: pt.Name, Description: pt.Description, Predefined: pt.Duty, CreatedAt: now}); err != nil {
				return fmt.Errorf("create predefined team %q: %w", pt.Name, err)
			}
			if pt.Duty == store.TeamOrganizationAdmin {
				if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO team_members (team_id, user_id, created_at)
					SELECT ?, id, ? FROM users WHERE org_id = ? AND role = 'admin'`), id, toDB(now), orgID); err != nil {
					return fmt.Errorf("add the administrator to %q: %w", pt.Name, err)
				}
			}
		case err != nil:
			return err
		}
		if pt.Duty == store.TeamRuntimeAdmin {
			ra := store.RuntimeAdminAssignment
			if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO role_assignments (id, org_id, subject_type, subject_id, role_name, entity_type_name, entity_id, entity_region, created_at)
				VALUES (?, ?, 'team', ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), uuid.NewString(), orgID, id, ra.RoleName, ra.EntityTypeName, ra.EntityID, ra.EntityRegion, toDB(now)); err != nil {
				return fmt.Errorf("assign the Runtime Admin team its role: %w", err)
			}
		}
	}
	return nil
}

const sessionCols = `id, org_id, user_id, csrf_token, source_address, user_agent, created_at, last_seen_at, expires_at`

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	_, err := s.db.ExecContext(ctx, s.Rebind(`INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		se.ID, se.OrgID, se.UserID, se.CSRFToken, se.SourceAddress, se.UserAgent, toDB(se.CreatedAt), toDB(se.LastSeenAt), toDB(se.ExpiresAt))
	return s.mapErr(err)
}

// LookupSession implements store.Store.
func (s *Store) LookupSession(ctx context.Context, id string) (store.Session, store.User, error) {
	var se store.Session
	var u store.User
	var created, seen, expires, uc, uu int64
	err := s.db.QueryRowContext(ctx, s.Rebind(`SELECT `+prefixCols("s.", sessionCols)+`, `+prefixCols("u.", userCols)+`
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`), id).
		Scan(&se.ID, &se.OrgID, &se.UserID, &se.CSRFToken, &se.SourceAddress, &se.UserAgent, &created, &seen, &expires,
			&u.ID, &u.OrgID, &u.Kind, &u.Name, &u.Role, &u.Email, &u.FullName, &u.Description, &u.Active, &u.PasswordHash, &uc, &uu)
	if errors.Is(err, sql.ErrNoRows) {
		return se, u, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	se.CreatedAt, se.LastSeenAt, se.ExpiresAt = fromDB(created), fromDB(seen), fromDB(expires)
	u.CreatedAt, u.UpdatedAt = fromDB(uc), fromDB(uu)
	return se, u, err
}

// TouchSession implements store.Store.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.Rebind(`UPDATE sessions SET last_seen_at = ? WHERE id = ?`), toDB(at), id)
	return s.mapErr(err)
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.Rebind(`DELETE FROM sessions WHERE id = ?`), id)
	return s.mapErr(err)
}

// DeleteUserSessions implements store.Store.
func (s *Store) DeleteUserSessions(ctx context.Context, userID, keep string) (int, error) {
	r, err := s.db.ExecContext(ctx, s.Rebind(`DELETE FROM sessions WHERE user_id = ? AND id <> ?`), userID, keep)
	if err != nil {
		return 0, s.mapErr(err)
	}
	n, _ := r.RowsAffected()
	return int(n), nil
}

// DeleteSessions implements store.Store.
func (s *Store) DeleteSessions(ctx context.Context, now, idleBefore time.Time) (int, error) {
	r, err := s.db.ExecContext(ctx, s.Rebind(`DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?`), toDB(now), toDB(idleBefore))
	if err != nil {
		return 0, s.mapErr(err)
	}
	n, _ := r.RowsAffected()
	return int(n), nil
}

// LookupTokenUser implements store.Store.
func (s *Store) LookupTokenUser(ctx context.Context, hash string) (store.Token, store.User, error) {
	var t store.Token
	var u store.User
	var created, uc, uu int64
	var exp, rev, used sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.Rebind(`SELECT `+prefixCols("t.", tokenCols)+`, `+prefixCols("u.", userCols)+`
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?`), hash).
		Scan(&t.ID, &t.OrgID, &t.UserID, &t.Name, &t.Hash, &t.Hint, &created, &exp, &rev, &used,
			&u.ID, &u.OrgID, &u.Kind, &u.Name, &u.Role, &u.Email, &u.FullName, &u.Description, &u.Active, &u.PasswordHash, &uc, &uu)
	if errors.Is(err, sql.ErrNoRows) {
		return t, u, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	t.CreatedAt = fromDB(created)
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromDBNull(exp), fromDBNull(rev), fromDBNull(used)
	u.CreatedAt, u.UpdatedAt = fromDB(uc), fromDB(uu)
	return t, u, err
}
