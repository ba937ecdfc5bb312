// Package entitystore keeps each runtime group's gateway configuration: one table per entity type
// (services, routes, plugins, …) with real columns for identity, uniqueness and references, and
// the entity document as JSON. Every write runs in one transaction that bumps the group's revision
// once, so a revision always names one consistent configuration.
package entitystore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
)

// Doc is an entity document as schema.Entity.Process returns it: every field present, foreign keys
// as {"id": "<uuid>"}, integers as int64.
type Doc = map[string]any

// Store reads and writes the configuration of runtime groups. Build it with New.
type Store struct {
	sql *sqlstore.Store

	// now stamps recorded revisions.
	now func() time.Time

	mu sync.RWMutex // guards listeners and actor
	// listeners are called after every commit that bumped a revision.
	listeners []func(groupID string, revision int64)
	// actor tells who makes a write, from the writer's context; nil records no actor.
	actor func(context.Context) Actor
}

// New returns an entity store on an opened SQL store (whose migrations created the tables).
func New(s *sqlstore.Store) *Store { return &Store{sql: s, now: time.Now} }

// OnCommit registers fn to be called, after the transaction committed, with the group and new
// revision of every write that changed something. fn runs on the writer's goroutine and must not
// block (hand work to another goroutine).
func (s *Store) OnCommit(fn func(groupID string, revision int64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, fn)
}

// Exclusive runs fn unless another control plane process sharing the database is running the job
// of the same name, and reports whether it ran (see sqlstore.Store.Exclusive).
func (s *Store) Exclusive(ctx context.Context, job string, fn func(ctx context.Context) error) (bool, error) {
	return s.sql.Exclusive(ctx, job, func(ctx context.Context, _ *sql.Conn) error { return fn(ctx) })
}

// Tx is one transaction on one runtime group's configuration. It is not safe for concurrent use.
type Tx struct {
	s     *Store
	tx    *sql.Tx
	ctx   context.Context
	group string
	// rev is the group's revision when the transaction began.
	rev   int64
	dirty bool
	// changes and order are the entity changes made so far, recorded as history at commit:
	// changes by type and id, order in the order of first change.
	changes map[string]*pending
	order   []*pending
	// primary is the first change the writer asked for (not one the database cascaded), which
	// the audit entry describes.
	primary *pending
}

// Write runs fn in one transaction on the group's configuration. If fn wrote anything, the group's
// revision is bumped once in the same transaction and returned; otherwise the current revision is
// returned. Writers of one group are serialized (the group row is locked first), so checks made
// inside fn hold until commit. A group that does not exist yields store.ErrNotFound.
func (s *Store) Write(ctx context.Context, groupID string, fn func(*Tx) error) (int64, error) {
	var rev int64
	bumped := false
	err := s.sql.InTx(ctx, func(tx *sql.Tx) error {
		t, err := s.begin(ctx, tx, groupID, true)
		if err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
		rev = t.rev
		if !t.dirty {
			return nil
		}
		bumped = true
		if err := tx.QueryRowContext(ctx, s.sql.Rebind(`UPDATE runtime_groups SET revision = revision + 1 WHERE id = ? RETURNING revision`), groupID).Scan(&rev); err != nil {
			return err
		}
		if err := t.saveHistory(rev); err != nil {
			return err
		}
		if err := s.sql.RecordAudit(ctx, tx, t.auditChange(rev)); err != nil {
			return err
		}
		// Other control plane processes on the database push the revision to their instances
		// when this commits.
		return s.sql.NotifyRevision(ctx, tx, groupID, rev)
	})
	if err == nil && bumped {
		s.mu.RLock()
		for _, l := range s.listeners {
			l(groupID, rev)
		}
		s.mu.RUnlock()
	}
	return rev, err
}

// Read runs fn in a transaction that sees one consistent state of the group's configuration.
func (s *Store) Read(ctx context.Context, groupID string, fn func(*Tx) error) error {
	return s.sql.InTx(ctx, func(tx *sql.Tx) error {
		t, err := s.begin(ctx, tx, groupID, false)
		if err != nil {
			return err
		}
		return fn(t)
	})
}

func (s *Store) begin(ctx context.Context, tx *sql.Tx, groupID string, lock bool) (*Tx, error) {
	lockClause := ""
	if lock {
		lockClause = s.sql.ForUpdate()
	}
	t := &Tx{s: s, tx: tx, ctx: ctx, group: groupID}
	err := tx.QueryRowContext(ctx, s.sql.Rebind(`SELECT revision FROM runtime_groups WHERE id = ?`+lockClause), groupID).Scan(&t.rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("runtime group %s: %w", groupID, store.ErrNotFound)
	}
	return t, err
}

// Revision returns the group's current revision.
func (s *Store) Revision(ctx context.Context, groupID string) (int64, error) {
	var rev int64
	err := s.sql.DB().QueryRowContext(ctx, s.sql.Rebind(`SELECT revision FROM runtime_groups WHERE id = ?`), groupID).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("runtime group %s: %w", groupID, store.ErrNotFound)
	}
	return rev, err
}

// Revision returns the revision the group had when the transaction began.
func (t *Tx) Revision() int64 { return t.rev }

// Group returns the runtime group id the transaction works on.
func (t *Tx) Group() string { return t.group }

func (t *Tx) rebind(q string) string { return t.s.sql.Rebind(q) }

// Get returns the entity with that id, or an error wrapping store.ErrNotFound.
func (t *Tx) Get(e *schema.Entity, id string) (Doc, error) {
	return t.one(e, `id = ?`, id)
}

// FindBy returns the entity whose unique single field equals value, or an error wrapping
// store.ErrNotFound.
func (t *Tx) FindBy(e *schema.Entity, field string, value any) (Doc, error) {
	if !contains(uniqueColumns(e), field) {
		return nil, fmt.Errorf("entitystore: %s.%s is not a unique field", e.Name, field)
	}
	return t.one(e, q("u_"+field)+` = ?`, keyString(value))
}

func (t *Tx) one(e *schema.Entity, cond string, arg any) (Doc, error) {
	var raw []byte
	err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT doc FROM `+q(e.Name)+` WHERE group_id = ? AND `+cond), t.group, arg).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %v: %w", e.Name, arg, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return DecodeDoc(raw)
}

// Insert adds doc. Violations come back as Kong's errors: *schema.Error with code 3 (the id is
// taken), 5 (unique) or 4 (a foreign key that references nothing).
func (t *Tx) Insert(e *schema.Entity, doc Doc) error {
	if id, _ := doc["id"].(string); id != "" {
		if _, err := t.Get(e, id); err == nil {
			return schema.PrimaryKeyViolation(map[string]any{"id": id})
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if err := t.check(e, doc); err != nil {
		return err
	}
	cols, args, err := t.columns(e, doc)
	if err != nil {
		return err
	}
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	_, err = t.tx.ExecContext(t.ctx, t.rebind(`INSERT INTO `+q(e.Name)+` (`+strings.Join(cols, ", ")+`) VALUES (`+ph+`)`), args...)
	if err != nil {
		return t.violation(e, doc, err)
	}
	t.dirty = true
	t.recordPrimary(e.Name, args[1].(string), endpointKey(e, doc), nil, []byte(args[len(args)-1].(string)))
	return nil
}

// Replace overwrites the stored entity with doc's id; it must exist. Errors as Insert.
func (t *Tx) Replace(e *schema.Entity, doc Doc) error {
	if err := t.check(e, doc); err != nil {
		return err
	}
	cols, args, err := t.columns(e, doc)
	if err != nil {
		return err
	}
	before, err := t.rawDoc(e, args[1].(string))
	if err != nil {
		return err
	}
	// group_id and id stay; set the rest.
	sets := make([]string, 0, len(cols))
	for _, c := range cols[2:] {
		sets = append(sets, c+" = ?")
	}
	r, err := t.tx.ExecContext(t.ctx, t.rebind(`UPDATE `+q(e.Name)+` SET `+strings.Join(sets, ", ")+` WHERE group_id = ? AND id = ?`), append(args[2:], t.group, doc["id"])...)
	if err != nil {
		return t.violation(e, doc, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %v: %w", e.Name, doc["id"], store.ErrNotFound)
	}
	t.dirty = true
	t.recordPrimary(e.Name, args[1].(string), endpointKey(e, doc), before, []byte(args[len(args)-1].(string)))
	return nil
}

// Delete removes the entity with that id and, through the database's cascading foreign keys, what
// belongs to it. It reports false when there was nothing to delete, and Kong's code-4 error when
// another entity still references it.
func (t *Tx) Delete(e *schema.Entity, id string) (bool, error) {
	for _, child := range schema.Entities() {
		for _, r := range child.Refs {
			if r.Entity != e.Name || r.OnDelete == "cascade" {
				continue
			}
			var one int
			err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT 1 FROM `+q(child.Name)+` WHERE group_id = ? AND `+q(r.Field+"_id")+` = ? LIMIT 1`), t.group, id).Scan(&one)
			if err == nil {
				return false, schema.ReferencedBy(e.Name, child.Name)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return false, err
			}
		}
	}
	before, err := t.rawDoc(e, id)
	if err != nil || before == nil {
		return false, err
	}
	// What the database will cascade is read first, so that history can bring it back.
	if err := t.recordCascade(e, id); err != nil {
		return false, err
	}
	r, err := t.tx.ExecContext(t.ctx, t.rebind(`DELETE FROM `+q(e.Name)+` WHERE group_id = ? AND id = ?`), t.group, id)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	if n > 0 {
		t.dirty = true
		d, err := DecodeDoc(before)
		if err != nil {
			return false, err
		}
		t.recordPrimary(e.Name, id, endpointKey(e, d), before, nil)
	}
	return n > 0, nil
}

// ListQuery selects entities of one type. The zero value lists the first page of everything.
type ListQuery struct {
	// Tags keeps entities carrying every tag (or any of them when TagsAny).
	Tags    []string
	TagsAny bool
	// After is an exclusive id cursor: the list resumes after that id.
	After string
	// Limit is the page size; 0 means no limit.
	Limit int
	// Parent and ParentID keep only entities whose foreign key Parent references ParentID.
	Parent   string
	ParentID string
	// Where keeps entities whose unique single fields equal these values.
	Where map[string]any
}

// List returns entities ordered by id, and whether more follow the page. Ordering by the primary
// key with an id cursor makes paging stable while others write: an entity is never skipped or
// repeated.
func (t *Tx) List(e *schema.Entity, lq ListQuery) ([]Doc, bool, error) {
	where := []string{"group_id = ?"}
	args := []any{t.group}
	if lq.After != "" {
		where, args = append(where, "id > ?"), append(args, lq.After)
	}
	if lq.Parent != "" {
		if !hasRef(e, lq.Parent) {
			return nil, false, fmt.Errorf("entitystore: %s has no foreign key %s", e.Name, lq.Parent)
		}
		where, args = append(where, q(lq.Parent+"_id")+" = ?"), append(args, lq.ParentID)
	}
	keys := make([]string, 0, len(lq.Where))
	for k := range lq.Where {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !contains(uniqueColumns(e), k) {
			return nil, false, fmt.Errorf("entitystore: %s.%s is not a unique field", e.Name, k)
		}
		where, args = append(where, q("u_"+k)+" = ?"), append(args, keyString(lq.Where[k]))
	}
	if len(lq.Tags) > 0 {
		var conds []string
		for _, tag := range lq.Tags {
			conds = append(conds, t.s.sql.Contains("tags"))
			args = append(args, ","+tag+",")
		}
		joiner := " AND "
		if lq.TagsAny {
			joiner = " OR "
		}
		where = append(where, "("+strings.Join(conds, joiner)+")")
	}
	query := `SELECT doc FROM ` + q(e.Name) + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id`
	if lq.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, lq.Limit+1)
	}
	rows, err := t.tx.QueryContext(t.ctx, t.rebind(query), args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var docs []Doc
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, false, err
		}
		d, err := DecodeDoc(raw)
		if err != nil {
			return nil, false, err
		}
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := lq.Limit > 0 && len(docs) > lq.Limit
	if more {
		docs = docs[:lq.Limit]
	}
	return docs, more, nil
}

// Count returns how many entities of the type the group has.
func (t *Tx) Count(e *schema.Entity) (int, error) {
	var n int
	err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT COUNT(*) FROM `+q(e.Name)+` WHERE group_id = ?`), t.group).Scan(&n)
	return n, err
}

// check reports unique and foreign-key violations with Kong's messages before the database would
// refuse the row with a less precise one. Writers of a group are serialized, so the answer holds.
func (t *Tx) check(e *schema.Entity, doc Doc) error {
	id, _ := doc["id"].(string)
	for _, f := range uniqueColumns(e) {
		v := doc[f]
		if v == nil {
			continue
		}
		var other string
		err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT id FROM `+q(e.Name)+` WHERE group_id = ? AND `+q("u_"+f)+` = ?`), t.group, keyString(v)).Scan(&other)
		if err == nil && other != id {
			return schema.UniqueViolation(map[string]any{f: v})
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	for i, u := range compositeKeys(e) {
		var other string
		err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT id FROM `+q(e.Name)+` WHERE group_id = ? AND `+q(fmt.Sprintf("ck_%d", i))+` = ?`), t.group, compositeKey(u, doc)).Scan(&other)
		if err == nil && other != id {
			key := map[string]any{}
			for _, f := range u {
				if fld := e.Field(f); doc[f] == nil && fld != nil && fld.KeyOmitsNull {
					continue
				}
				key[f] = doc[f]
			}
			return schema.UniqueViolation(key)
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	for _, r := range e.Refs {
		ref := refID(doc[r.Field])
		if ref == "" {
			continue
		}
		parent, _ := schema.Lookup(r.Entity)
		if _, err := t.Get(parent, ref); errors.Is(err, store.ErrNotFound) {
			return schema.ForeignKeyViolation(r.Field, map[string]any{"id": ref}, r.Entity)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// violation maps a constraint error the checks did not foresee (a concurrent writer on another
// database connection) to Kong's errors.
func (t *Tx) violation(e *schema.Entity, doc Doc, err error) error {
	err = t.s.sql.MapError(err)
	switch {
	case errors.Is(err, store.ErrConflict):
		if _, getErr := t.Get(e, fmt.Sprint(doc["id"])); getErr == nil {
			return schema.PrimaryKeyViolation(map[string]any{"id": doc["id"]})
		}
		return schema.UniqueViolation(map[string]any{"id": doc["id"]})
	case errors.Is(err, store.ErrForeignKey):
		return schema.SchemaViolation(map[string]any{"@entity": []any{"a referenced entity does not exist"}})
	}
	return err
}

// columns returns the column names and values of doc's row, group_id and id first.
func (t *Tx) columns(e *schema.Entity, doc Doc) ([]string, []any, error) {
	id, _ := doc["id"].(string)
	if id == "" {
		return nil, nil, fmt.Errorf("entitystore: %s document without id", e.Name)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s: %w", e.Name, err)
	}
	cols := []string{"group_id", "id"}
	args := []any{t.group, id}
	for _, f := range uniqueColumns(e) {
		cols = append(cols, q("u_"+f))
		if doc[f] == nil {
			args = append(args, nil)
		} else {
			args = append(args, keyString(doc[f]))
		}
	}
	for i, u := range compositeKeys(e) {
		cols, args = append(cols, q(fmt.Sprintf("ck_%d", i))), append(args, compositeKey(u, doc))
	}
	for _, r := range e.Refs {
		cols = append(cols, q(r.Field+"_id"))
		if ref := refID(doc[r.Field]); ref != "" {
			args = append(args, ref)
		} else {
			args = append(args, nil)
		}
	}
	cols, args = append(cols, "tags", "doc"), append(args, tagsColumn(doc["tags"]), string(raw))
	return cols, args, nil
}

// compositeKey encodes the values of fields (foreign keys by id, null as null) canonically.
func compositeKey(fields []string, doc Doc) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('|')
		}
		v := doc[f]
		if ref := refID(v); ref != "" {
			v = ref
		}
		j, _ := json.Marshal(v)
		b.Write(j)
	}
	return b.String()
}

func tagsColumn(v any) any {
	list, _ := v.([]any)
	if len(list) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteByte(',')
	for _, t := range list {
		fmt.Fprint(&b, t)
		b.WriteByte(',')
	}
	return b.String()
}

// refID returns the id of a foreign key value {"id": "…"}, or "".
func refID(v any) string {
	if m, ok := v.(map[string]any); ok {
		if id, ok := m["id"].(string); ok {
			return id
		}
	}
	return ""
}

func keyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return fmt.Sprint(v)
}

func hasRef(e *schema.Entity, field string) bool {
	for _, r := range e.Refs {
		if r.Field == field {
			return true
		}
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// DecodeDoc decodes a stored document with integers as int64 and other numbers as float64, the
// value shapes schema works with.
func DecodeDoc(raw []byte) (Doc, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var d Doc
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decode entity document: %w", err)
	}
	return normalizeNumbers(d).(Doc), nil
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil && !strings.ContainsAny(string(x), ".eE") {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// AddMember puts a consumer in a consumer group; a second add is Kong's unique violation.
func (t *Tx) AddMember(consumerGroupID, consumerID string) error {
	var one int
	err := t.tx.QueryRowContext(t.ctx, t.rebind(`SELECT 1 FROM consumer_group_consumers WHERE group_id = ? AND consumer_group_id = ? AND consumer_id = ?`), t.group, consumerGroupID, consumerID).Scan(&one)
	if err == nil {
		return schema.UniqueViolation(map[string]any{"consumer": map[string]any{"id": consumerID}, "consumer_group": map[string]any{"id": consumerGroupID}})
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	for _, ref := range []struct{ entity, id, field string }{{"consumer_groups", consumerGroupID, "consumer_group"}, {"consumers", consumerID, "consumer"}} {
		e, _ := schema.Lookup(ref.entity)
		if _, err := t.Get(e, ref.id); errors.Is(err, store.ErrNotFound) {
			return schema.ForeignKeyViolation(ref.field, map[string]any{"id": ref.id}, ref.entity)
		} else if err != nil {
			return err
		}
	}
	at := time.Now().Unix()
	_, err = t.tx.ExecContext(t.ctx, t.rebind(`INSERT INTO consumer_group_consumers (group_id, consumer_group_id, consumer_id, created_at) VALUES (?, ?, ?, ?)`),
		t.group, consumerGroupID, consumerID, at)
	if err != nil {
		return err
	}
	t.dirty = true
	t.recordPrimary(MembershipType, MembershipID(consumerGroupID, consumerID), "", nil, membershipDoc(consumerGroupID, consumerID, at))
	return nil
}

// RemoveMember takes a consumer out of a consumer group, reporting whether it was a member.
func (t *Tx) RemoveMember(consumerGroupID, consumerID string) (bool, error) {
	at, ok, err := t.membershipCreatedAt(consumerGroupID, consumerID)
	if err != nil || !ok {
		return false, err
	}
	r, err := t.tx.ExecContext(t.ctx, t.rebind(`DELETE FROM consumer_group_consumers WHERE group_id = ? AND consumer_group_id = ? AND consumer_id = ?`), t.group, consumerGroupID, consumerID)
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	if n > 0 {
		t.dirty = true
		t.recordPrimary(MembershipType, MembershipID(consumerGroupID, consumerID), "", membershipDoc(consumerGroupID, consumerID, at), nil)
	}
	return n > 0, nil
}

// Members returns the consumers of a consumer group, ordered by id.
func (t *Tx) Members(consumerGroupID string) ([]Doc, error) {
	return t.docs(`SELECT c.doc FROM consumer_group_consumers m JOIN consumers c ON c.group_id = m.group_id AND c.id = m.consumer_id
		WHERE m.group_id = ? AND m.consumer_group_id = ? ORDER BY c.id`, t.group, consumerGroupID)
}

// GroupsOf returns the consumer groups a consumer belongs to, ordered by id.
func (t *Tx) GroupsOf(consumerID string) ([]Doc, error) {
	return t.docs(`SELECT g.doc FROM consumer_group_consumers m JOIN consumer_groups g ON g.group_id = m.group_id AND g.id = m.consumer_group_id
		WHERE m.group_id = ? AND m.consumer_id = ? ORDER BY g.id`, t.group, consumerID)
}

// Memberships returns every (consumer group id, consumer id) pair of the group, ordered.
func (t *Tx) Memberships() ([][2]string, error) {
	rows, err := t.tx.QueryContext(t.ctx, t.rebind(`SELECT consumer_group_id, consumer_id FROM consumer_group_consumers WHERE group_id = ? ORDER BY consumer_group_id, consumer_id`), t.group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (t *Tx) docs(query string, args ...any) ([]Doc, error) {
	rows, err := t.tx.QueryContext(t.ctx, t.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Doc
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		d, err := DecodeDoc(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Snapshot is one consistent read of a group's whole configuration.
type Snapshot struct {
	// Revision is the group's revision the read saw.
	Revision int64
	// Entities holds every entity type's documents ordered by id, keyed by DAO name; types without
	// entities are absent.
	Entities map[string][]Doc
	// Memberships are the (consumer group id, consumer id) pairs, ordered.
	Memberships [][2]string
}

// Export reads the group's whole configuration in one transaction.
func (s *Store) Export(ctx context.Context, groupID string) (Snapshot, error) {
	var snap Snapshot
	err := s.Read(ctx, groupID, func(t *Tx) error {
		var err error
		snap, err = t.Snapshot()
		return err
	})
	return snap, err
}
