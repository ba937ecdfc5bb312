package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/redact"
	"github.com/google/uuid"
)

// The audit log. Writes record their entry with RecordAudit inside their own transaction, so an
// entry exists exactly when its change committed; events that write nothing else (logins,
// refused requests) use AppendAudit.

var _ store.AuditLog = (*Store)(nil)

const auditCols = `id, org_id, created_at, actor_type, actor_id, actor_name, auth_method, token_id, action, group_id,
	entity_type, entity_id, entity_name, method, path, status, request_id, source_addr, user_agent, before_doc, after_doc`

// RecordAudit appends the audit entry of the request ctx belongs to, completed with c, in tx: the
// entry commits or rolls back with the change it describes. Without a pending entry (writes made
// by the control plane itself rather than for a request) it records nothing. Each call records
// one entry; a request's write paths call it once per write transaction. The pending entry's ID
// is set to the recorded entry's, so the API can tell that the request was recorded.
func (s *Store) RecordAudit(ctx context.Context, tx *sql.Tx, c store.AuditChange) error {
	p := store.PendingAudit(ctx)
	if p == nil {
		return nil
	}
	e := *p
	e.ID = uuid.NewString()
	e.Action, e.GroupID, e.EntityType, e.EntityID, e.EntityName = c.Action, c.GroupID, c.EntityType, c.EntityID, c.EntityName
	var err error
	if e.Before, err = auditDoc(c.EntityType, c.Before); err != nil {
		return err
	}
	if e.After, err = auditDoc(c.EntityType, c.After); err != nil {
		return err
	}
	switch {
	case c.Status != 0:
		e.Status = c.Status
	case e.Status == 0:
		e.Status = PredictedStatus(e.Method)
	}
	if err := s.insertAudit(ctx, tx, &e); err != nil {
		return err
	}
	p.ID, p.Status = e.ID, e.Status
	return nil
}

// PredictedStatus is the status a successful write answers by its method: 201 for POST, 204 for
// DELETE, 200 otherwise.
func PredictedStatus(method string) int {
	switch method {
	case http.MethodPost:
		return http.StatusCreated
	case http.MethodDelete:
		return http.StatusNoContent
	}
	return http.StatusOK
}

// auditDoc encodes and redacts one side of a change.
func auditDoc(entityType string, v any) (json.RawMessage, error) {
	var raw []byte
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("encode %s for the audit log: %w", entityType, err)
		}
	}
	return redact.Doc(entityType, raw), nil
}

// AppendAudit implements store.AuditLog: it appends e in a transaction of its own. An empty ID
// or zero Timestamp is filled in; Before and After are redacted like RecordAudit's.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	if e.OrgID == "" || e.Action == "" {
		return errors.New("audit entry: OrgID and Action are required")
	}
	e.Before = redact.Doc(e.EntityType, e.Before)
	e.After = redact.Doc(e.EntityType, e.After)
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.insertAudit(ctx, tx, &e) })
}

func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, e *store.AuditEntry) error {
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now()
	}
	e.Timestamp = e.Timestamp.UTC().Truncate(time.Microsecond)
	_, err := tx.ExecContext(ctx, s.Rebind(`INSERT INTO audit_log (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		e.ID, e.OrgID, toDB(e.Timestamp), e.ActorType, e.ActorID, e.ActorName, e.AuthMethod, e.TokenID, e.Action, e.GroupID,
		e.EntityType, e.EntityID, e.EntityName, e.Method, e.Path, e.Status, e.RequestID, e.SourceAddr, e.UserAgent,
		nullJSON(e.Before), nullJSON(e.After))
	if err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	return nil
}

func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

// SetAuditStatus implements store.AuditLog. An entry that does not exist (its transaction rolled
// back) is not an error.
func (s *Store) SetAuditStatus(ctx context.Context, id string, status int) error {
	_, err := s.db.ExecContext(ctx, s.Rebind(`UPDATE audit_log SET status = ? WHERE id = ?`), status, id)
	return s.mapErr(err)
}

// scanAudit reads one audit_log row selected with auditCols, and its seq after them.
func scanAudit(sc interface{ Scan(...any) error }) (store.AuditEntry, int64, error) {
	var seq int64
	e, err := scanAuditWith(sc, &seq)
	return e, seq, err
}

// scanAuditWith reads one audit_log row selected with auditCols followed by the columns extra
// points to.
func scanAuditWith(sc interface{ Scan(...any) error }, extra ...any) (store.AuditEntry, error) {
	var (
		e             store.AuditEntry
		at            int64
		before, after sql.NullString
	)
	dest := []any{&e.ID, &e.OrgID, &at, &e.ActorType, &e.ActorID, &e.ActorName, &e.AuthMethod, &e.TokenID, &e.Action, &e.GroupID,
		&e.EntityType, &e.EntityID, &e.EntityName, &e.Method, &e.Path, &e.Status, &e.RequestID, &e.SourceAddr, &e.UserAgent,
		&before, &after}
	err := sc.Scan(append(dest, extra...)...)
	e.Timestamp = fromDB(at)
	if before.Valid {
		e.Before = json.RawMessage(before.String)
	}
	if after.Valid {
		e.After = json.RawMessage(after.String)
	}
	return e, err
}

// ErrBadCursor is returned (wrapped) for a page cursor this store did not make.
var ErrBadCursor = errors.New("invalid page cursor")

// ListAudit returns a page of q.OrgID's audit log, newest first, and the cursor of the next
// (older) page, "" after the last one.
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, string, error) {
	where := []string{"org_id = ?"}
	args := []any{q.OrgID}
	for _, f := range []struct{ col, v string }{{"actor_id", q.ActorID}, {"group_id", q.GroupID}, {"entity_type", q.EntityType}, {"action", q.Action}} {
		if f.v != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.v)
		}
	}
	if !q.Since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, toDB(q.Since))
	}
	if !q.Until.IsZero() {
		where, args = append(where, "created_at <= ?"), append(args, toDB(q.Until))
	}
	if q.After != "" {
		seq, err := strconv.ParseInt(q.After, 10, 64)
		if err != nil || seq <= 0 {
			return nil, "", fmt.Errorf("%w %q", ErrBadCursor, q.After)
		}
		where, args = append(where, "seq < ?"), append(args, seq)
	}
	limit := max(q.Limit, 1)
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+auditCols+`, seq FROM audit_log WHERE `+strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT ?`), append(args, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []store.AuditEntry
	var last int64
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		e, seq, err := scanAudit(rows)
		if err != nil {
			return nil, "", err
		}
		out, last = append(out, e), seq
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if !more {
		return out, "", nil
	}
	return out, strconv.FormatInt(last, 10), nil
}

// PruneAudit removes the entries older than before, in every organization, and returns how many
// it removed. It deletes in bounded batches so that a large backlog does not hold one long
// transaction.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	const batch = 5000
	var total int64
	for {
		var n int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			r, err := tx.ExecContext(ctx, s.Rebind(`DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log WHERE created_at < ? ORDER BY seq LIMIT ?)`), toDB(before), batch)
			if err != nil {
				return err
			}
			n, err = r.RowsAffected()
			return err
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// AuditCursor is a position in the audit log's delivery order: (TxID, Seq), the writing
// transaction's id (0 on SQLite) and the entry's sequence number.
type AuditCursor struct {
	TxID int64
	Seq  int64
}

// settled is the condition that keeps only entries of transactions no longer running. On
// PostgreSQL an entry's seq is taken when it is inserted, not when it commits, so a transaction
// still running may yet commit entries below a seq already seen; entries whose transaction id is
// older than every running one are final. On SQLite writers are serialized and every committed
// entry is final.
func (s *Store) settled() string {
	if s.dialect.name() == "postgres" {
		return ` AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`
	}
	return ""
}

// AuditAfter returns up to limit entries of orgID after c in delivery order, with each one's
// cursor, keeping only entries whose transactions have ended (so that a cursor moved past them
// never skips an entry that commits later).
func (s *Store) AuditAfter(ctx context.Context, orgID string, c AuditCursor, limit int) ([]store.AuditEntry, []AuditCursor, error) {
	rows, err := s.db.QueryContext(ctx, s.Rebind(`SELECT `+auditCols+`, seq, txid FROM audit_log
		WHERE org_id = ? AND (txid > ? OR (txid = ? AND seq > ?))`+s.settled()+` ORDER BY txid, seq LIMIT ?`),
		orgID, c.TxID, c.TxID, c.Seq, max(limit, 1))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		out  []store.AuditEntry
		curs []AuditCursor
	)
	for rows.Next() {
		var cur AuditCursor
		e, err := scanAuditWith(rows, &cur.Seq, &cur.TxID)
		if err != nil {
			return nil, nil, err
		}
		out, curs = append(out, e), append(curs, cur)
	}
	return out, curs, rows.Err()
}

// AuditTail returns the cursor after orgID's newest entry, where a newly enabled delivery
// starts: it sends what is recorded from then on, not the whole history.
func (s *Store) AuditTail(ctx context.Context, orgID string) (AuditCursor, error) {
	var c AuditCursor
	var txid, seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.Rebind(`SELECT MAX(txid), MAX(seq) FROM audit_log WHERE org_id = ?`), orgID).Scan(&txid, &seq)
	c.TxID, c.Seq = txid.Int64, seq.Int64
	return c, err
}
