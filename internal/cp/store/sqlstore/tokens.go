package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
)

const tokenCols = `id, org_id, user_id, name, hash, hint, created_at, expires_at, revoked_at, last_used_at` //nolint:gosec // column names, not a credential

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var created int64
	var exp, rev, used sql.NullInt64
	err := sc.Scan(&t.ID, &t.OrgID, &t.UserID, &t.Name, &t.Hash, &t.Hint, &created, &exp, &rev, &used)
	t.CreatedAt = fromDB(created)
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromDBNull(exp), fromDBNull(rev), fromDBNull(used)
	return t, err
}

func insertToken(ctx context.Context, s *Store, tx *sql.Tx, t store.Token) error {
	_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.OrgID, t.UserID, t.Name, t.Hash, t.Hint, toDB(t.CreatedAt), toDBNull(t.ExpiresAt), toDBNull(t.RevokedAt), toDBNull(t.LastUsedAt))
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// Audit actions and entity type of personal access tokens.
const (
	AuditTokenCreate = "token_create"
	AuditTokenRevoke = "token_revoke"
	// AuditPersonalAccessTokens is the entity type of personal access tokens in the audit log.
	AuditPersonalAccessTokens = "personal_access_tokens"
)

// tokenAuditDoc is a token as the audit log shows it: never its hash.
func tokenAuditDoc(t store.Token) map[string]any {
	return map[string]any{"id": t.ID, "name": t.Name, "user_id": t.UserID, "hint": t.Hint, "created_at": t.CreatedAt,
		"expires_at": t.ExpiresAt, "revoked_at": t.RevokedAt}
}

// CreateToken implements store.Store.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertToken(ctx, s, tx, t); err != nil {
			return err
		}
		typ, err := tokenAuditType(ctx, s, tx, t.UserID)
		if err != nil {
			return err
		}
		return s.RecordAudit(ctx, tx, store.AuditChange{Action: AuditTokenCreate, EntityType: typ,
			EntityID: t.ID, EntityName: t.Name, After: tokenAuditDoc(t)})
	})
}

// LookupToken implements store.Store.
func (s *Store) LookupToken(ctx context.Context, hash string) (store.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.Rebind(`SELECT `+tokenCols+` FROM tokens WHERE hash = ?`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	return t, err
}

// ListTokens implements store.Store.
func (s *Store) ListTokens(ctx context.Context, orgID, userID string) ([]store.Token, error) {
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+tokenCols+` FROM tokens WHERE org_id = ? AND user_id = ? ORDER BY created_at, id`), orgID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken implements store.Store. Revoking an already revoked token keeps its first
// revocation time.
func (s *Store) RevokeToken(ctx context.Context, orgID, userID, id string, at time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var before sql.NullInt64
		err := tx.QueryRowContext(ctx, s.Rebind(`SELECT revoked_at FROM tokens WHERE org_id = ? AND user_id = ? AND id = ?`+s.dialect.forUpdate()), orgID, userID, id).Scan(&before)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, s.Rebind(`UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE org_id = ? AND user_id = ? AND id = ?`), toDB(at), orgID, userID, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("token %s: %w", id, store.ErrNotFound)
		}
		after, err := scanToken(tx.QueryRowContext(ctx, s.Rebind(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`), id))
		if err != nil {
			return err
		}
		// A token revoked before keeps its first revocation: before and after are the same.
		b := after
		b.RevokedAt = fromDBNull(before)
		typ, err := tokenAuditType(ctx, s, tx, userID)
		if err != nil {
			return err
		}
		return s.RecordAudit(ctx, tx, store.AuditChange{Action: AuditTokenRevoke, EntityType: typ,
			EntityID: id, EntityName: after.Name, Before: tokenAuditDoc(b), After: tokenAuditDoc(after)})
	})
}

// TouchToken implements store.Store.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.Rebind(`UPDATE tokens SET last_used_at = ? WHERE id = ?`), toDB(at), id)
	return s.mapErr(err)
}
