package entitystore

import "github.com/gantry-gw/gantry/internal/config/schema"

// SingleUnique returns e's non-foreign fields that are unique on their own (name, username, …):
// the values a replace of the whole configuration (an import, a rollback) may have to pass from
// one entity to another within one transaction.
func SingleUnique(e *schema.Entity) []string {
	var out []string
	for _, u := range e.Unique {
		if len(u) == 1 && e.Field(u[0]) != nil && e.Field(u[0]).Type != schema.TypeForeign {
			out = append(out, u[0])
		}
	}
	return out
}

// HasUniqueValue reports whether d holds a value in one of e's single unique fields.
func HasUniqueValue(e *schema.Entity, d Doc) bool {
	for _, f := range SingleUnique(e) {
		if d[f] != nil {
			return true
		}
	}
	return false
}

// WithoutUnique returns a copy of d whose single unique fields are null: for the moment of a
// transaction it holds no value another entity may need (nulls never collide).
func WithoutUnique(e *schema.Entity, d Doc) Doc {
	out := make(Doc, len(d))
	for k, v := range d {
		out[k] = v
	}
	for _, f := range SingleUnique(e) {
		out[f] = nil
	}
	return out
}
