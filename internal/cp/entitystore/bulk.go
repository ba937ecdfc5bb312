package entitystore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store"
)

// maxBatchParams bounds the parameters of one multi-row statement, under SQLite's limit (32,766)
// and PostgreSQL's (65,535).
const maxBatchParams = 30000

// InsertMany adds docs, all of type e, with multi-row statements: one round trip for hundreds of
// rows instead of several per row. It is for writers that checked the whole configuration
// beforehand (a declarative import checks ids, unique keys and references across the file):
// Insert's per-row checks are skipped and the database's constraints are the last word, so a
// violation fails the statement with an error wrapping store.ErrConflict or store.ErrForeignKey
// rather than Kong's precise error. History is recorded as for Insert.
func (t *Tx) InsertMany(e *schema.Entity, docs []Doc) error {
	if len(docs) == 0 {
		return nil
	}
	type row struct {
		args []any
		doc  Doc
	}
	var cols []string
	rows := make([]row, 0, len(docs))
	for _, d := range docs {
		c, args, err := t.columns(e, d)
		if err != nil {
			return err
		}
		cols = c
		rows = append(rows, row{args, d})
	}
	per := max(1, maxBatchParams/len(cols))
	ph := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for start := 0; start < len(rows); start += per {
		batch := rows[start:min(start+per, len(rows))]
		args := make([]any, 0, len(batch)*len(cols))
		for _, r := range batch {
			args = append(args, r.args...)
		}
		values := strings.TrimSuffix(strings.Repeat(ph+", ", len(batch)), ", ")
		if _, err := t.tx.ExecContext(t.ctx, t.rebind(`INSERT INTO `+q(e.Name)+` (`+strings.Join(cols, ", ")+`) VALUES `+values), args...); err != nil {
			err = t.s.sql.MapError(err)
			if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrForeignKey) {
				return fmt.Errorf("insert %d %s: %w", len(batch), e.Name, err)
			}
			return err
		}
		for _, r := range batch {
			t.record(e.Name, r.args[1].(string), endpointKey(e, r.doc), nil, []byte(r.args[len(r.args)-1].(string)))
		}
	}
	t.dirty = true
	return nil
}

// insertChanges writes the recorded changes of revision rev with multi-row statements.
func (t *Tx) insertChanges(rev int64, saved []*pending) error {
	const ncols = 9
	per := maxBatchParams / ncols
	for start := 0; start < len(saved); start += per {
		batch := saved[start:min(start+per, len(saved))]
		args := make([]any, 0, len(batch)*ncols)
		for i, p := range batch {
			op := OpUpdated
			switch {
			case p.before == nil:
				op = OpCreated
			case p.after == nil:
				op = OpDeleted
			}
			args = append(args, t.group, rev, start+i, p.typ, p.id, nullString(p.key), op, nullBytes(p.before), nullBytes(p.after))
		}
		values := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(batch)), ", ")
		_, err := t.tx.ExecContext(t.ctx, t.rebind(`INSERT INTO revision_changes (group_id, revision, seq, entity_type, entity_id, entity_key, op, before_doc, after_doc) VALUES `+values), args...)
		if err != nil {
			return fmt.Errorf("record %d changes of revision %d: %w", len(batch), rev, err)
		}
	}
	return nil
}
