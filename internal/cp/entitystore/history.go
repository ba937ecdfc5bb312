package entitystore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// History. Every Write that changes something records, in its own transaction, one row of the
// revisions table (number, time, actor, source, summary) and one row of revision_changes per
// changed entity with its document before and after. Deletes the database cascades (a consumer's
// credentials and plugins, a certificate's SNIs, an upstream's targets, consumer group
// memberships) are read before the delete and recorded as deletions too, so that undoing a
// revision's changes restores everything it removed. Package revisions builds the configuration
// of a past revision, diffs and rollbacks on top of this record.

// MembershipType is the entity type under which consumer group memberships are recorded; their id
// is MembershipID(consumer group id, consumer id) and their document {"consumer_group": {"id"},
// "consumer": {"id"}, "created_at"}.
const MembershipType = "consumer_group_consumers"

// MembershipID is the recorded id of a consumer group membership.
func MembershipID(consumerGroupID, consumerID string) string {
	return consumerGroupID + ":" + consumerID
}

// Sources of revisions.
const (
	SourceAdminAPI = "admin-api"
	SourceRollback = "rollback"
	SourceImport   = "import"
)

// Ops of a recorded change.
const (
	OpCreated = "created"
	OpUpdated = "updated"
	OpDeleted = "deleted"
)

// Actor is who made a change: the authenticated user and token, empty for internal writers.
type Actor struct {
	UserID  string `json:"user_id,omitempty"`
	TokenID string `json:"token_id,omitempty"`
}

type sourceKey struct{}

// WithSource returns a context whose writes are recorded with that source (SourceAdminAPI when
// unset).
func WithSource(ctx context.Context, source string) context.Context {
	return context.WithValue(ctx, sourceKey{}, source)
}

func sourceFrom(ctx context.Context) string {
	if s, ok := ctx.Value(sourceKey{}).(string); ok && s != "" {
		return s
	}
	return SourceAdminAPI
}

// SetActor sets the function that tells, from a writer's context, who makes the change (the
// server derives it from the request's authenticated principal). Call it before the store is
// used concurrently.
func (s *Store) SetActor(fn func(context.Context) Actor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actor = fn
}

// Counts are the created, updated and deleted entities of one type in one revision.
type Counts struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	Deleted int `json:"deleted"`
}

// Revision is the metadata of one recorded revision.
type Revision struct {
	// Number is the group's revision after the change.
	Number int64
	// Hash is the configuration hash when it was recorded; "" when unknown.
	Hash      string
	CreatedAt time.Time
	Actor     Actor
	// Source is SourceAdminAPI, SourceRollback or SourceImport.
	Source string
	// Summary counts the changes per entity type.
	Summary map[string]Counts
}

// Change is one entity's change in one revision. Before is nil for a creation, After for a
// deletion.
type Change struct {
	Revision int64
	// Type is the entity type (DAO name) or MembershipType.
	Type string
	ID   string
	// Key is the entity's endpoint key value (name, username, …), "" if it has none.
	Key    string
	Op     string
	Before Doc
	After  Doc
}

// pending is a change of the running transaction, documents as stored (JSON).
type pending struct {
	typ, id, key  string
	before, after []byte
}

// record notes a change of the transaction. Successive changes of one entity collapse into one:
// the first before and the last after.
func (t *Tx) record(typ, id, key string, before, after []byte) {
	k := typ + "\x00" + id
	if p, ok := t.changes[k]; ok {
		p.after = after
		if key != "" {
			p.key = key
		}
		return
	}
	if t.changes == nil {
		t.changes = map[string]*pending{}
	}
	p := &pending{typ: typ, id: id, key: key, before: before, after: after}
	t.changes[k] = p
	t.order = append(t.order, p)
}

// endpointKey returns doc's endpoint key value as a string, or "".
func endpointKey(e *schema.Entity, doc Doc) string {
	if e.EndpointKey == "" || doc[e.EndpointKey] == nil {
		return ""
	}
	return keyString(doc[e.EndpointKey])
}

// rawDoc returns the stored JSON document of an entity, or nil when there is none.
func (t *Tx) rawDoc(e *schema.Entity, id string) ([]byte, error) {
	var raw string
	err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT doc FROM `+q(e.Name)+` WHERE group_id = ? AND id = ?`), t.group, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []byte(raw), nil
}

// recordCascade records, as deleted, every row that deleting entity e's row id will remove
// through cascading foreign keys, recursively, and e's consumer group memberships.
func (t *Tx) recordCascade(e *schema.Entity, id string) error {
	query, n := cascadeQuery(e)
	if n == 0 {
		return nil
	}
	args := make([]any, 0, 2*n)
	for range n {
		args = append(args, t.group, id)
	}
	// One statement reads every cascading child, whatever its type: deletes stay cheap.
	found, err := t.cascadeRows(query, args)
	if err != nil {
		return err
	}
	for _, x := range found {
		if x.typ == MembershipType {
			// id is the consumer group's, doc the consumer's.
			t.record(MembershipType, MembershipID(x.id, x.doc), "", membershipDoc(x.id, x.doc, x.at), nil)
			continue
		}
		child, _ := schema.Lookup(x.typ)
		if err := t.recordCascade(child, x.id); err != nil {
			return err
		}
		d, err := DecodeDoc([]byte(x.doc))
		if err != nil {
			return err
		}
		t.record(child.Name, x.id, endpointKey(child, d), []byte(x.doc), nil)
	}
	return nil
}

// cascadeRow is one row a delete cascades to; for a membership, id is the consumer group's and
// doc the consumer's.
type cascadeRow struct {
	typ, id, doc string
	at           int64
}

func (t *Tx) cascadeRows(query string, args []any) ([]cascadeRow, error) {
	rows, err := t.tx.QueryContext(t.ctx, t.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []cascadeRow
	for rows.Next() {
		var x cascadeRow
		if err := rows.Scan(&x.typ, &x.id, &x.doc, &x.at); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// cascadeQuery returns the statement that reads the rows deleting an entity of type e cascades
// to, as (type, id, doc, created_at) rows, and how many (group_id, id) argument pairs it takes;
// 0 when nothing cascades from e.
func cascadeQuery(e *schema.Entity) (string, int) {
	var parts []string
	for _, child := range schema.Entities() {
		for _, r := range child.Refs {
			if r.Entity == e.Name && r.OnDelete == "cascade" {
				parts = append(parts, `SELECT '`+child.Name+`', id, doc, 0 FROM `+q(child.Name)+` WHERE group_id = ? AND `+q(r.Field+"_id")+` = ?`)
			}
		}
	}
	switch e.Name {
	case "consumers":
		parts = append(parts, `SELECT '`+MembershipType+`', consumer_group_id, consumer_id, created_at FROM consumer_group_consumers WHERE group_id = ? AND consumer_id = ?`)
	case "consumer_groups":
		parts = append(parts, `SELECT '`+MembershipType+`', consumer_group_id, consumer_id, created_at FROM consumer_group_consumers WHERE group_id = ? AND consumer_group_id = ?`)
	}
	if len(parts) == 0 {
		return "", 0
	}
	return strings.Join(parts, " UNION ALL ") + " ORDER BY 1, 2, 3", len(parts)
}

func membershipDoc(groupID, consumerID string, at int64) []byte {
	raw, _ := json.Marshal(map[string]any{"consumer_group": map[string]any{"id": groupID}, "consumer": map[string]any{"id": consumerID}, "created_at": at})
	return raw
}

// MembershipPair returns the (consumer group id, consumer id) of a recorded membership document.
func MembershipPair(d Doc) [2]string {
	return [2]string{refID(d["consumer_group"]), refID(d["consumer"])}
}

// saveHistory writes the revision row and its changes; rev is the new revision number.
func (t *Tx) saveHistory(rev int64) error {
	summary := map[string]Counts{}
	var saved []*pending
	for _, p := range t.order {
		if p.before == nil && p.after == nil {
			continue // created and deleted in the same transaction
		}
		c := summary[p.typ]
		switch {
		case p.before == nil:
			c.Created++
		case p.after == nil:
			c.Deleted++
		default:
			c.Updated++
		}
		summary[p.typ] = c
		saved = append(saved, p)
	}
	sum, err := json.Marshal(summary)
	if err != nil {
		return err
	}
	var actor Actor
	t.s.mu.RLock()
	if t.s.actor != nil {
		actor = t.s.actor(t.ctx)
	}
	t.s.mu.RUnlock()
	_, err = t.tx.ExecContext(t.ctx, t.rebind(`INSERT INTO revisions (group_id, number, created_at, actor_user_id, actor_token_id, source, summary) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		t.group, rev, t.s.now().Unix(), nullString(actor.UserID), nullString(actor.TokenID), sourceFrom(t.ctx), string(sum))
	if err != nil {
		return fmt.Errorf("record revision %d: %w", rev, err)
	}
	return t.insertChanges(rev, saved)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

const revisionColumns = `number, hash, created_at, actor_user_id, actor_token_id, source, summary`

func scanRevision(sc interface{ Scan(...any) error }) (Revision, error) {
	var (
		r                 Revision
		hash, user, token sql.NullString
		at                int64
		summary           string
	)
	if err := sc.Scan(&r.Number, &hash, &at, &user, &token, &r.Source, &summary); err != nil {
		return r, err
	}
	r.Hash, r.Actor = hash.String, Actor{UserID: user.String, TokenID: token.String}
	r.CreatedAt = time.Unix(at, 0).UTC()
	if err := json.Unmarshal([]byte(summary), &r.Summary); err != nil {
		return r, fmt.Errorf("decode summary of revision %d: %w", r.Number, err)
	}
	return r, nil
}

// Revisions returns one page of the group's recorded revisions, newest first, and how many are
// recorded. A group that does not exist yields store.ErrNotFound.
func (s *Store) Revisions(ctx context.Context, groupID string, limit, offset int) ([]Revision, int, error) {
	var (
		out   []Revision
		total int
	)
	err := s.Read(ctx, groupID, func(t *Tx) error {
		if err := t.tx.QueryRowContext(ctx, t.rebind(`SELECT COUNT(*) FROM revisions WHERE group_id = ?`), groupID).Scan(&total); err != nil {
			return err
		}
		rows, err := t.tx.QueryContext(ctx, t.rebind(`SELECT `+revisionColumns+` FROM revisions WHERE group_id = ? ORDER BY number DESC LIMIT ? OFFSET ?`), groupID, limit, offset)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRevision(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, total, err
}

// RevisionInfo returns the metadata of recorded revision n, or an error wrapping
// store.ErrNotFound.
func (t *Tx) RevisionInfo(n int64) (Revision, error) {
	r, err := scanRevision(t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT `+revisionColumns+` FROM revisions WHERE group_id = ? AND number = ?`), t.group, n))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("revision %d: %w", n, store.ErrNotFound)
	}
	return r, err
}

// OldestRevision returns the oldest recorded revision number of the group, and false when none
// is recorded.
func (t *Tx) OldestRevision() (int64, bool, error) {
	var n sql.NullInt64
	if err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT MIN(number) FROM revisions WHERE group_id = ?`), t.group).Scan(&n); err != nil {
		return 0, false, err
	}
	return n.Int64, n.Valid, nil
}

// ChangesAfter returns the recorded changes of the revisions after n, newest first (the order in
// which to undo them).
func (t *Tx) ChangesAfter(n int64) ([]Change, error) {
	return t.changesWhere(`revision > ?`, n)
}

// ChangesOf returns the recorded changes of revision n.
func (t *Tx) ChangesOf(n int64) ([]Change, error) {
	return t.changesWhere(`revision = ?`, n)
}

func (t *Tx) changesWhere(cond string, n int64) ([]Change, error) {
	rows, err := t.tx.QueryContext(t.ctx, t.rebind(`SELECT revision, entity_type, entity_id, entity_key, op, before_doc, after_doc FROM revision_changes
		WHERE group_id = ? AND `+cond+` ORDER BY revision DESC, seq DESC`), t.group, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var (
			c             Change
			key           sql.NullString
			before, after sql.NullString
		)
		if err := rows.Scan(&c.Revision, &c.Type, &c.ID, &key, &c.Op, &before, &after); err != nil {
			return nil, err
		}
		c.Key = key.String
		if before.Valid {
			if c.Before, err = DecodeDoc([]byte(before.String)); err != nil {
				return nil, err
			}
		}
		if after.Valid {
			if c.After, err = DecodeDoc([]byte(after.String)); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Retention says which revisions PruneRevisions keeps: a revision is removed only when it is
// older than the newest Count revisions of its group and older than Age. Zero values keep
// everything on that account.
type Retention struct {
	Count int
	Age   time.Duration
}

// DefaultRetention keeps the last 1,000 revisions of each group and every revision of the last
// 30 days.
var DefaultRetention = Retention{Count: 1000, Age: 30 * 24 * time.Hour}

// PruneRevisions removes, in every group, the revisions that the retention no longer keeps, and
// returns how many it removed. History is removed only from the oldest end, so the configuration
// of every remaining revision can still be rebuilt.
func (s *Store) PruneRevisions(ctx context.Context, r Retention, now time.Time) (int64, error) {
	if r.Count <= 0 && r.Age <= 0 {
		return 0, nil
	}
	var removed int64
	err := s.sql.InTx(ctx, func(tx *sql.Tx) error {
		groups, err := groupRevisions(ctx, tx)
		if err != nil {
			return err
		}
		for _, g := range groups {
			// The newest revision that both rules let go; everything up to it goes.
			limit := g.rev - int64(r.Count)
			if r.Count <= 0 {
				limit = g.rev
			}
			if r.Age > 0 {
				var old sql.NullInt64
				if err := tx.QueryRowContext(ctx, s.sql.Rebind(`SELECT MAX(number) FROM revisions WHERE group_id = ? AND created_at < ?`), g.id, now.Add(-r.Age).Unix()).Scan(&old); err != nil {
					return err
				}
				if !old.Valid {
					continue
				}
				limit = min(limit, old.Int64)
			}
			if limit <= 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, s.sql.Rebind(`DELETE FROM revision_changes WHERE group_id = ? AND revision <= ?`), g.id, limit); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, s.sql.Rebind(`DELETE FROM revisions WHERE group_id = ? AND number <= ?`), g.id, limit)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			removed += n
		}
		return nil
	})
	return removed, err
}

type groupRevision struct {
	id  string
	rev int64
}

func groupRevisions(ctx context.Context, tx *sql.Tx) ([]groupRevision, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, revision FROM runtime_groups ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []groupRevision
	for rows.Next() {
		var g groupRevision
		if err := rows.Scan(&g.id, &g.rev); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// Snapshot reads the group's whole configuration inside the transaction.
func (t *Tx) Snapshot() (Snapshot, error) {
	snap := Snapshot{Revision: t.rev, Entities: map[string][]Doc{}}
	for _, e := range schema.Entities() {
		docs, _, err := t.List(e, ListQuery{})
		if err != nil {
			return snap, err
		}
		if len(docs) > 0 {
			snap.Entities[e.Name] = docs
		}
	}
	var err error
	snap.Memberships, err = t.Memberships()
	return snap, err
}

// membershipCreatedAt returns when a membership was made, for its recorded document.
func (t *Tx) membershipCreatedAt(consumerGroupID, consumerID string) (int64, bool, error) {
	var at int64
	err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT created_at FROM consumer_group_consumers WHERE group_id = ? AND consumer_group_id = ? AND consumer_id = ?`), t.group, consumerGroupID, consumerID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return at, err == nil, err
}

// SetRevisionHash records the configuration hash of revision n of the group, computed after the
// commit (building a configuration is too costly for the write's transaction). A hash already
// recorded is kept: a revision's configuration never changes. A revision that is not recorded
// (pruned, or never written) is not an error.
func (s *Store) SetRevisionHash(ctx context.Context, groupID string, n int64, hash string) error {
	if n <= 0 || hash == "" {
		return nil
	}
	_, err := s.sql.DB().ExecContext(ctx, s.sql.Rebind(`UPDATE revisions SET hash = ? WHERE group_id = ? AND number = ? AND hash IS NULL`), hash, groupID, n)
	if err != nil {
		return fmt.Errorf("record the hash of revision %d: %w", n, err)
	}
	return nil
}
