package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

var _ store.Store = (*Store)(nil)

const groupCols = `id, org_id, region, name, description, cluster_type, auth_type, is_default, revision, created_at, updated_at`

func scanGroup(sc interface{ Scan(...any) error }) (store.RuntimeGroup, error) {
	var g store.RuntimeGroup
	var created, updated int64
	err := sc.Scan(&g.ID, &g.OrgID, &g.Region, &g.Name, &g.Description, &g.ClusterType, &g.AuthType, &g.IsDefault, &g.Revision, &created, &updated)
	g.CreatedAt, g.UpdatedAt = fromDB(created), fromDB(updated)
	return g, err
}

// Bootstrap implements store.Store.
func (s *Store) Bootstrap(ctx context.Context, p store.BootstrapParams) (store.BootstrapResult, error) {
	var res store.BootstrapResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UTC()
		orgID := uuid.NewString()
		r, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO organizations (id, name, created_at, updated_at)
			SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM bootstrap)`), orgID, p.OrgName, toDB(now), toDB(now))
		if err != nil {
			return fmt.Errorf("create organization: %w", err)
		}
		if n, _ := r.RowsAffected(); n == 1 {
			// The bootstrap row's fixed primary key is what makes this exactly-once: a second
			// process racing here blocks on it and then fails, rolling back its organization.
			if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO bootstrap (id, org_id) VALUES (1, ?)`), orgID); err != nil {
				return fmt.Errorf("record bootstrap: %w", err)
			}
			res.Created = true
			admin := store.User{ID: uuid.NewString(), OrgID: orgID, Kind: store.KindUser, Name: p.AdminName, Role: "admin", Email: p.AdminEmail,
				FullName: "Administrator", Active: true, PasswordHash: p.AdminPasswordHash, CreatedAt: now}
			if err := insertUser(ctx, s, tx, admin); err != nil {
				return err
			}
			tok := p.AdminToken
			tok.OrgID, tok.UserID, tok.CreatedAt = orgID, admin.ID, now
			if tok.ID == "" {
				tok.ID = uuid.NewString()
			}
			if err := insertToken(ctx, s, tx, tok); err != nil {
				return err
			}
		}
		var err2 error
		res.Org, res.Admin, err2 = bootstrapOrg(ctx, s, tx)
		if err2 != nil {
			return err2
		}
		if res.Created {
			res.PasswordSet = p.AdminPasswordHash != ""
		} else if res.Admin, res.PasswordSet, err2 = completeAdmin(ctx, s, tx, res.Admin, p, now); err2 != nil {
			return err2
		}
		if err := ensurePredefinedTeams(ctx, s, tx, now); err != nil {
			return err
		}
		res.Group, err2 = ensureDefaultGroup(ctx, s, tx, res.Org.ID, p.Region, now)
		return err2
	})
	if err != nil && errors.Is(err, store.ErrConflict) {
		// Another process won the race between our check and our insert; its transaction has
		// committed, so reading again finds its organization.
		return s.Bootstrap(ctx, p)
	}
	return res, err
}

func bootstrapOrg(ctx context.Context, s *Store, tx *sql.Tx) (store.Organization, store.User, error) {
	var org store.Organization
	var created, updated int64
	err := tx.QueryRowContext(ctx, `SELECT o.id, o.name, o.created_at, o.updated_at FROM bootstrap b JOIN organizations o ON o.id = b.org_id`).
		Scan(&org.ID, &org.Name, &created, &updated)
	if err != nil {
		return org, store.User{}, fmt.Errorf("read bootstrap organization: %w", err)
	}
	org.CreatedAt, org.UpdatedAt = fromDB(created), fromDB(updated)
	u, err := scanUser(tx.QueryRowContext(ctx, s.Rebind(`SELECT `+userCols+` FROM users WHERE org_id = ? AND role = 'admin' ORDER BY created_at, id LIMIT 1`+s.dialect.forUpdate()), org.ID))
	if err != nil {
		return org, u, fmt.Errorf("read administrator: %w", err)
	}
	return org, u, nil
}

// completeAdmin gives an administrator made before identities had logins (or one whose email or
// password was never set) the email and password hash of p. A set email or password is kept:
// the administrator changes them through the API.
func completeAdmin(ctx context.Context, s *Store, tx *sql.Tx, u store.User, p store.BootstrapParams, now time.Time) (store.User, bool, error) {
	email := strings.ToLower(strings.TrimSpace(p.AdminEmail))
	setEmail := u.Email == "" && email != ""
	setPassword := u.PasswordHash == "" && p.AdminPasswordHash != ""
	if !setEmail && !setPassword {
		return u, false, nil
	}
	if setEmail {
		u.Email, u.Name = email, email
	}
	if setPassword {
		u.PasswordHash = p.AdminPasswordHash
	}
	u.UpdatedAt = now
	_, err := tx.ExecContext(ctx, s.Rebind(`UPDATE users SET email = ?, name = ?, password_hash = ?, updated_at = ? WHERE id = ?`), u.Email, u.Name, u.PasswordHash, toDB(now), u.ID)
	if err != nil {
		return u, false, fmt.Errorf("complete the administrator's login: %w", err)
	}
	return u, setPassword, nil
}

// ensureDefaultGroup returns the default group of org in region, creating it if missing.
func ensureDefaultGroup(ctx context.Context, s *Store, tx *sql.Tx, orgID, region string, now time.Time) (store.RuntimeGroup, error) {
	g, err := scanGroup(tx.QueryRowContext(ctx, s.Rebind(`SELECT `+groupCols+` FROM runtime_groups WHERE org_id = ? AND region = ? AND is_default`), orgID, region))
	if err == nil {
		g.Labels, err = loadLabels(ctx, s, tx, g.ID)
		return g, err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return g, err
	}
	g = store.RuntimeGroup{
		ID: uuid.NewString(), OrgID: orgID, Region: region, Name: "default",
		Description: "The default runtime group of this organization and region.",
		ClusterType: "CLUSTER_TYPE_CONTROL_PLANE", AuthType: "pinned_client_certs",
		IsDefault: true, Labels: map[string]string{}, CreatedAt: now, UpdatedAt: now,
	}
	if err := insertGroup(ctx, s, tx, g); err != nil {
		return g, fmt.Errorf("create default runtime group: %w", err)
	}
	return g, nil
}

// CreateOrganization implements store.Store.
func (s *Store) CreateOrganization(ctx context.Context, name, region string, admin store.User) (store.Organization, store.User, store.RuntimeGroup, error) {
	now := time.Now().UTC()
	org := store.Organization{ID: uuid.NewString(), Name: name, CreatedAt: now, UpdatedAt: now}
	var g store.RuntimeGroup
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO organizations (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)`), org.ID, org.Name, toDB(now), toDB(now)); err != nil {
			return err
		}
		admin.OrgID, admin.CreatedAt, admin.Active, admin.Kind = org.ID, now, true, store.KindUser
		if admin.ID == "" {
			admin.ID = uuid.NewString()
		}
		if admin.Role == "" {
			admin.Role = "admin"
		}
		if err := insertUser(ctx, s, tx, admin); err != nil {
			return err
		}
		if err := ensureOrgTeams(ctx, s, tx, org.ID, now); err != nil {
			return err
		}
		var err error
		g, err = ensureDefaultGroup(ctx, s, tx, org.ID, region, now)
		return err
	})
	return org, admin, g, err
}

// GetOrganization implements store.Store.
func (s *Store) GetOrganization(ctx context.Context, id string) (store.Organization, error) {
	var org store.Organization
	var created, updated int64
	err := s.db.QueryRowContext(ctx, s.Rebind(`SELECT id, name, created_at, updated_at FROM organizations WHERE id = ?`), id).
		Scan(&org.ID, &org.Name, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return org, fmt.Errorf("organization %s: %w", id, store.ErrNotFound)
	}
	org.CreatedAt, org.UpdatedAt = fromDB(created), fromDB(updated)
	return org, err
}

func insertGroup(ctx context.Context, s *Store, tx *sql.Tx, g store.RuntimeGroup) error {
	_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO runtime_groups (`+groupCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		g.ID, g.OrgID, g.Region, g.Name, g.Description, g.ClusterType, g.AuthType, g.IsDefault, g.Revision, toDB(g.CreatedAt), toDB(g.UpdatedAt))
	if err != nil {
		return err
	}
	if err := saveLabels(ctx, s, tx, g.ID, g.Labels); err != nil {
		return err
	}
	return s.RecordAudit(ctx, tx, store.AuditChange{Action: store.ActionCreate, GroupID: g.ID, EntityType: AuditRuntimeGroups,
		EntityID: g.ID, EntityName: g.Name, After: groupAuditDoc(g)})
}

// AuditRuntimeGroups is the entity type of runtime groups in the audit log.
const AuditRuntimeGroups = "runtime_groups"

// groupAuditDoc is a runtime group as the audit log shows it before and after a change.
func groupAuditDoc(g store.RuntimeGroup) map[string]any {
	return map[string]any{"id": g.ID, "name": g.Name, "description": g.Description, "labels": g.Labels, "region": g.Region,
		"cluster_type": g.ClusterType, "auth_type": g.AuthType, "is_default": g.IsDefault}
}

func saveLabels(ctx context.Context, s *Store, tx *sql.Tx, groupID string, labels map[string]string) error {
	if _, err := tx.ExecContext(ctx, s.Rebind(`DELETE FROM runtime_group_labels WHERE group_id = ?`), groupID); err != nil {
		return err
	}
	for k, v := range labels {
		if _, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO runtime_group_labels (group_id, key, value) VALUES (?, ?, ?)`), groupID, k, v); err != nil {
			return err
		}
	}
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func loadLabels(ctx context.Context, s *Store, q querier, groupID string) (map[string]string, error) {
	m, err := loadLabelsFor(ctx, s, q, []string{groupID})
	if err != nil {
		return nil, err
	}
	if m[groupID] == nil {
		return map[string]string{}, nil
	}
	return m[groupID], nil
}

func loadLabelsFor(ctx context.Context, s *Store, q querier, ids []string) (map[string]map[string]string, error) {
	out := make(map[string]map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := q.QueryContext(ctx, s.Rebind(`SELECT group_id, key, value FROM runtime_group_labels WHERE group_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return nil, err
		}
		if out[id] == nil {
			out[id] = map[string]string{}
		}
		out[id][k] = v
	}
	return out, rows.Err()
}

// CreateGroup implements store.Store.
func (s *Store) CreateGroup(ctx context.Context, g store.RuntimeGroup) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return insertGroup(ctx, s, tx, g) })
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, orgID, id string) (store.RuntimeGroup, error) {
	g, err := scanGroup(s.db.QueryRowContext(ctx, s.Rebind(`SELECT `+groupCols+` FROM runtime_groups WHERE org_id = ? AND id = ?`), orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return g, fmt.Errorf("runtime group %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return g, err
	}
	g.Labels, err = loadLabels(ctx, s, s.db, g.ID)
	return g, err
}

var groupSortColumns = map[string]string{"name": "name", "created_at": "created_at", "updated_at": "updated_at", "id": "id"}

// ListGroups implements store.Store.
func (s *Store) ListGroups(ctx context.Context, q store.GroupQuery) ([]store.RuntimeGroup, int, error) {
	where := []string{"org_id = ?", "region = ?"}
	args := []any{q.OrgID, q.Region}
	for _, f := range q.Filters {
		col, ok := map[string]string{"id": "id", "name": "name", "cluster_type": "cluster_type"}[f.Field]
		if !ok {
			return nil, 0, fmt.Errorf("unknown filter field %q", f.Field)
		}
		switch f.Op {
		case "eq":
			where, args = append(where, col+" = ?"), append(args, f.Value)
		case "neq":
			where, args = append(where, col+" <> ?"), append(args, f.Value)
		case "contains":
			where, args = append(where, s.dialect.contains(col)), append(args, f.Value)
		case "oeq":
			vals := strings.Split(f.Value, ",")
			where = append(where, col+" IN (?"+strings.Repeat(", ?", len(vals)-1)+")")
			for _, v := range vals {
				args = append(args, v)
			}
		default:
			return nil, 0, fmt.Errorf("unknown filter operator %q", f.Op)
		}
	}
	if q.Restricted {
		if len(q.IDs) == 0 {
			where = append(where, "1 = 0")
		} else {
			where = append(where, "id IN (?"+strings.Repeat(", ?", len(q.IDs)-1)+")")
			for _, id := range q.IDs {
				args = append(args, id)
			}
		}
	}
	keys := make([]string, 0, len(q.Labels))
	for k := range q.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := q.Labels[k]; v != "" {
			where = append(where, "EXISTS (SELECT 1 FROM runtime_group_labels l WHERE l.group_id = runtime_groups.id AND l.key = ? AND l.value = ?)")
			args = append(args, k, v)
		} else {
			where = append(where, "EXISTS (SELECT 1 FROM runtime_group_labels l WHERE l.group_id = runtime_groups.id AND l.key = ?)")
			args = append(args, k)
		}
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.db.QueryRowContext(ctx, s.Rebind(`SELECT COUNT(*) FROM runtime_groups WHERE `+cond), args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	col := groupSortColumns[q.Sort]
	if col == "" {
		col = "created_at"
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	size, page := max(q.PageSize, 1), max(q.PageNumber, 1)
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+groupCols+` FROM runtime_groups WHERE `+cond+
		` ORDER BY `+col+` `+dir+`, id `+dir+` LIMIT ? OFFSET ?`), append(args, size, (page-1)*size)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var groups []store.RuntimeGroup
	var ids []string
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, 0, err
		}
		groups = append(groups, g)
		ids = append(ids, g.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	labels, err := loadLabelsFor(ctx, s, s.db, ids)
	if err != nil {
		return nil, 0, err
	}
	for i := range groups {
		groups[i].Labels = labels[groups[i].ID]
		if groups[i].Labels == nil {
			groups[i].Labels = map[string]string{}
		}
	}
	return groups, total, nil
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(ctx context.Context, orgID, id string, fn func(*store.RuntimeGroup) error) (store.RuntimeGroup, error) {
	var g store.RuntimeGroup
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = scanGroup(tx.QueryRowContext(ctx, s.Rebind(`SELECT `+groupCols+` FROM runtime_groups WHERE org_id = ? AND id = ?`+s.dialect.forUpdate()), orgID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("runtime group %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if g.Labels, err = loadLabels(ctx, s, tx, g.ID); err != nil {
			return err
		}
		before := g
		if err := fn(&g); err != nil {
			return err
		}
		if g.IsDefault != before.IsDefault {
			return fmt.Errorf("the default status of a runtime group cannot change: %w", store.ErrDefaultGroup)
		}
		g.UpdatedAt = time.Now().UTC()
		_, err = tx.ExecContext(ctx, s.Rebind(`UPDATE runtime_groups SET name = ?, description = ?, auth_type = ?, updated_at = ? WHERE id = ?`),
			g.Name, g.Description, g.AuthType, toDB(g.UpdatedAt), g.ID)
		if err != nil {
			return err
		}
		if err := saveLabels(ctx, s, tx, g.ID, g.Labels); err != nil {
			return err
		}
		return s.RecordAudit(ctx, tx, store.AuditChange{Action: store.ActionUpdate, GroupID: g.ID, EntityType: AuditRuntimeGroups,
			EntityID: g.ID, EntityName: g.Name, Before: groupAuditDoc(before), After: groupAuditDoc(g)})
	})
	return g, err
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, orgID, id string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		g, err := scanGroup(tx.QueryRowContext(ctx, s.Rebind(`SELECT `+groupCols+` FROM runtime_groups WHERE org_id = ? AND id = ?`), orgID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("runtime group %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if g.Labels, err = loadLabels(ctx, s, tx, g.ID); err != nil {
			return err
		}
		if g.IsDefault {
			return fmt.Errorf("the default runtime group cannot be deleted: %w", store.ErrDefaultGroup)
		}
		if _, err = tx.ExecContext(ctx, s.Rebind(`DELETE FROM runtime_groups WHERE id = ?`), id); err != nil {
			return err
		}
		// Role assignments name groups by id without a foreign key (their entity id may be "*").
		if _, err = tx.ExecContext(ctx, s.Rebind(`DELETE FROM role_assignments WHERE org_id = ? AND entity_id = ?`), orgID, id); err != nil {
			return fmt.Errorf("remove the group's role assignments: %w", err)
		}
		if err := s.RecordAudit(ctx, tx, store.AuditChange{Action: store.ActionDelete, GroupID: g.ID, EntityType: AuditRuntimeGroups,
			EntityID: g.ID, EntityName: g.Name, Before: groupAuditDoc(g)}); err != nil {
			return err
		}
		// Other control plane processes orphan the group's instances when this commits.
		return s.NotifyRevision(ctx, tx, id, GroupDeletedRevision)
	})
}
