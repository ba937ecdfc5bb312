package declarative

import (
	"errors"
	"fmt"
	"sort"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
)

// byID is a configuration keyed by type and id, memberships under entitystore.MembershipType.
type byID map[string]map[string]entitystore.Doc

func index(s entitystore.Snapshot) byID {
	m := byID{}
	for typ, docs := range s.Entities {
		ids := make(map[string]entitystore.Doc, len(docs))
		for _, d := range docs {
			id, _ := d["id"].(string)
			ids[id] = d
		}
		m[typ] = ids
	}
	ms := make(map[string]entitystore.Doc, len(s.Memberships))
	for _, p := range s.Memberships {
		ms[entitystore.MembershipID(p[0], p[1])] = entitystore.Doc{"pair": p}
	}
	m[entitystore.MembershipType] = ms
	return m
}

func sortedIDs(m map[string]entitystore.Doc) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// apply turns the configuration cur, read in t, into target, ids kept, as a rollback does, but
// inserts the entities that are new with multi-row statements (entitystore.InsertMany): the
// plan checked ids, unique keys and references across the whole file, and a large import is
// mostly inserts. Memberships and entities that go are removed first (children before parents;
// a delete refused because an entity that stays still references it waits until that entity is
// replaced), then entities are inserted or replaced parents first, then memberships added.
func apply(t *entitystore.Tx, cur, target entitystore.Snapshot) error {
	types := schema.Entities()
	have, want := index(cur), index(target)
	for _, id := range sortedIDs(have[entitystore.MembershipType]) {
		if want[entitystore.MembershipType][id] == nil {
			p := have[entitystore.MembershipType][id]["pair"].([2]string)
			if _, err := t.RemoveMember(p[0], p[1]); err != nil {
				return err
			}
		}
	}
	type ref struct {
		e  *schema.Entity
		id string
	}
	var deferred []ref
	deleted := false
	for i := len(types) - 1; i >= 0; i-- {
		e := types[i]
		for _, id := range sortedIDs(have[e.Name]) {
			if want[e.Name][id] != nil {
				continue
			}
			if _, err := t.Delete(e, id); err != nil {
				var se *schema.Error
				if errors.As(err, &se) {
					deferred = append(deferred, ref{e, id})
					continue
				}
				return err
			}
			deleted = true
		}
	}
	if deleted {
		// Deletes may have cascaded to entities that stay: compare with what is left.
		left, err := t.Snapshot()
		if err != nil {
			return err
		}
		have = index(left)
	}
	// Unique values that pass from one entity to another (a name given to a new id, two routes
	// that swap names) are freed first: entities that change such a value, and entities that go
	// but wait for their referrers, give theirs up for the rest of the transaction.
	for _, r := range deferred {
		if d := have[r.e.Name][r.id]; d != nil && entitystore.HasUniqueValue(r.e, d) {
			free := entitystore.WithoutUnique(r.e, d)
			if err := t.Replace(r.e, free); err != nil {
				return fmt.Errorf("free the unique values of %s %s: %w", r.e.Name, r.id, err)
			}
			have[r.e.Name][r.id] = free
		}
	}
	for _, e := range types {
		for _, id := range sortedIDs(want[e.Name]) {
			h := have[e.Name][id]
			if h == nil || !uniqueChanged(e, h, want[e.Name][id]) {
				continue
			}
			free := entitystore.WithoutUnique(e, h)
			if err := t.Replace(e, free); err != nil {
				return fmt.Errorf("free the unique values of %s %s: %w", e.Name, id, err)
			}
			have[e.Name][id] = free
		}
	}
	for _, e := range types {
		var inserts []entitystore.Doc
		for _, id := range sortedIDs(want[e.Name]) {
			w, h := want[e.Name][id], have[e.Name][id]
			switch {
			case h == nil:
				inserts = append(inserts, w)
			case !sameExcept(h, w, false, false):
				if err := t.Replace(e, w); err != nil {
					return fmt.Errorf("replace %s %s: %w", e.Name, id, err)
				}
			}
		}
		if err := t.InsertMany(e, inserts); err != nil {
			return err
		}
	}
	for _, r := range deferred {
		if _, err := t.Delete(r.e, r.id); err != nil {
			return fmt.Errorf("remove %s %s: %w", r.e.Name, r.id, err)
		}
	}
	for _, id := range sortedIDs(want[entitystore.MembershipType]) {
		if have[entitystore.MembershipType][id] == nil {
			p := want[entitystore.MembershipType][id]["pair"].([2]string)
			if err := t.AddMember(p[0], p[1]); err != nil {
				return fmt.Errorf("add membership %s: %w", id, err)
			}
		}
	}
	return nil
}

// uniqueChanged reports whether a non-null unique value of a differs in b.
func uniqueChanged(e *schema.Entity, a, b entitystore.Doc) bool {
	for _, f := range entitystore.SingleUnique(e) {
		if a[f] != nil && !sameExcept(entitystore.Doc{"v": a[f]}, entitystore.Doc{"v": b[f]}, false, false) {
			return true
		}
	}
	return false
}
