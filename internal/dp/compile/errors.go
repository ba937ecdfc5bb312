package compile

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/wire"
)

// ErrRejected is returned (wrapped) by Compile when any entity failed to
// compile. The revision is rejected as a whole: a gateway missing, say, one
// route or one auth plugin would serve a configuration nobody wrote, so the
// previous revision keeps serving and every entity error is reported
// together for the control plane to show.
var ErrRejected = errors.New("configuration rejected")

// fieldError is one problem with one field of an entity.
type fieldError struct {
	// path locates the field in the entity, one element per record level,
	// map key or array index: {"healthchecks", "active", "http_path"},
	// {"paths", "2"}. nil stands for the entity as a whole.
	path []string
	msg  string
}

// fieldErrors accumulates the problems of one entity while it is decoded
// and compiled, so that all of them are reported, not only the first.
type fieldErrors []fieldError

func (e *fieldErrors) add(path []string, msg string) { *e = append(*e, fieldError{path, msg}) }

// at is the path of a field: at("pem", "private_key").
func at(elems ...string) []string { return elems }

// sub returns path followed by elems, in a new slice, so that paths handed
// to fieldErrors are never shared.
func sub(path []string, elems ...string) []string {
	out := make([]string, 0, len(path)+len(elems))
	return append(append(out, path...), elems...)
}

// entity is a decoded entity that errors can name.
type entity interface {
	// ident returns the entity's id and the name reports show for it: its
	// endpoint key, or "" where it has none or the key is a secret.
	ident() (id, name string)
}

// entityError is one problem with one entity of a configuration: which
// entity (its collection, id and name; all but the collection empty for a
// problem with a collection as a whole), which field of it, and what is
// wrong.
type entityError struct {
	collection, id, name string
	fieldError
}

// Error implements error: "routes 1c1c…: paths.2: invalid regex".
func (e *entityError) Error() string {
	var b strings.Builder
	b.WriteString(e.collection)
	if e.id != "" {
		b.WriteString(" " + e.id)
	}
	b.WriteString(": ")
	if e.path != nil {
		b.WriteString(e.field() + ": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

// field is the dotted path of the field, as the wire protocol carries it.
func (e *entityError) field() string { return strings.Join(e.path, ".") }

func (e *entityError) wire() wire.EntityError {
	return wire.EntityError{EntityType: e.collection, EntityID: e.id, EntityName: e.name, Field: e.field(), Message: e.msg}
}

// collector gathers the entity errors of one Compile.
type collector struct {
	errs []entityError
}

// entity records the problems of entity e of the given collection.
func (c *collector) entity(collection string, e entity, fe fieldErrors) {
	id, name := e.ident()
	for _, f := range fe {
		c.errs = append(c.errs, entityError{collection: collection, id: id, name: name, fieldError: f})
	}
}

// one records a single problem of entity e at path.
func (c *collector) one(collection string, e entity, path []string, msg string) {
	c.entity(collection, e, fieldErrors{{path, msg}})
}

// collection records a problem that belongs to no one entity of the
// collection.
func (c *collector) collection(collection, msg string) {
	c.errs = append(c.errs, entityError{collection: collection, fieldError: fieldError{msg: msg}})
}

// sorted returns the errors for the wire, in a stable order: by
// collection, id, field.
func (c *collector) sorted() []wire.EntityError {
	out := make([]wire.EntityError, len(c.errs))
	for i := range c.errs {
		out[i] = c.errs[i].wire()
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.EntityType != b.EntityType {
			return a.EntityType < b.EntityType
		}
		if a.EntityID != b.EntityID {
			return a.EntityID < b.EntityID
		}
		return a.Field < b.Field
	})
	return out
}

// schemaFieldErrors flattens a schema violation into one error per field,
// each at its path (array elements at their index), in a stable order.
func schemaFieldErrors(err *schema.Error) fieldErrors {
	if len(err.Fields) == 0 {
		return fieldErrors{{nil, err.Error()}}
	}
	var out fieldErrors
	var walk func(path []string, v any)
	walk = func(path []string, v any) {
		switch t := v.(type) {
		case string:
			out.add(path, t)
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if k != "@entity" {
					walk(sub(path, k), t[k])
					continue
				}
				// The messages of the record (or entity) itself.
				if msgs, ok := t[k].([]any); ok {
					for _, m := range msgs {
						walk(path, m)
					}
				} else {
					walk(path, t[k])
				}
			}
		case []any:
			// Element errors, nil where an element was fine.
			for i, e := range t {
				if e != nil {
					walk(sub(path, strconv.Itoa(i)), e)
				}
			}
		case nil:
		default:
			out.add(path, fmt.Sprint(t))
		}
	}
	walk(nil, err.Fields)
	return out
}
