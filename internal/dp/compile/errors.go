package compile

import (
	"errors"
	"fmt"
	"sort"
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

// fieldError is one problem with one field of an entity; field is "" for
// the entity as a whole.
type fieldError struct {
	field, msg string
}

// fieldErrors accumulates the problems of one entity while its fields are
// read, so that all of them are reported, not only the first.
type fieldErrors []fieldError

func (e *fieldErrors) add(field, msg string) { *e = append(*e, fieldError{field, msg}) }

// addErr records err from a doc accessor, whose message already starts with
// the field name ("port: expected an integer").
func (e *fieldErrors) addErr(err error) {
	field, msg, ok := strings.Cut(err.Error(), ": ")
	if !ok {
		field, msg = "", err.Error()
	}
	e.add(field, msg)
}

func (e *fieldErrors) str(d doc, name string) string {
	v, err := d.str(name)
	if err != nil {
		e.addErr(err)
	}
	return v
}

func (e *fieldErrors) integer(d doc, name string, def int) int {
	v, err := d.integer(name, def)
	if err != nil {
		e.addErr(err)
	}
	return v
}

func (e *fieldErrors) number(d doc, name string, def float64) float64 {
	v, err := d.number(name, def)
	if err != nil {
		e.addErr(err)
	}
	return v
}

func (e *fieldErrors) boolean(d doc, name string, def bool) bool {
	v, err := d.boolean(name, def)
	if err != nil {
		e.addErr(err)
	}
	return v
}

func (e *fieldErrors) strings(d doc, name string) []string {
	v, err := d.strings(name)
	if err != nil {
		e.addErr(err)
	}
	return v
}

func (e *fieldErrors) fk(d doc, name string) string {
	v, err := d.fk(name)
	if err != nil {
		e.addErr(err)
	}
	return v
}

func (e *fieldErrors) rec(d doc, name string) doc {
	v, err := d.record(name)
	if err != nil {
		e.addErr(err)
	}
	return v
}

// statuses reads a list of HTTP status codes, keeping def when the field is
// absent and checking the range the health checker accepts.
func (e *fieldErrors) statuses(d doc, name string, def []int) []int {
	if d[name] == nil {
		return def
	}
	v, err := d.ints(name)
	if err != nil {
		e.addErr(err)
		return def
	}
	for _, c := range v {
		if c < 100 || c > 999 {
			e.add(name, fmt.Sprintf("invalid HTTP status %d", c))
			return def
		}
	}
	return v
}

// collector gathers the entity errors of one Compile.
type collector struct {
	errs []wire.EntityError
}

// entity records the problems of one entity of the given collection. The
// entity's name is its endpoint key (nameField), when it has one.
func (c *collector) entity(collection string, d doc, nameField string, fe fieldErrors) {
	id, _ := d["id"].(string)
	name := ""
	if nameField != "" {
		name, _ = d[nameField].(string)
	}
	for _, f := range fe {
		c.errs = append(c.errs, wire.EntityError{EntityType: collection, EntityID: id, EntityName: name, Field: f.field, Message: f.msg})
	}
}

// one records a single problem.
func (c *collector) one(collection string, d doc, nameField, field, msg string) {
	c.entity(collection, d, nameField, fieldErrors{{field, msg}})
}

// sorted returns the errors in a stable order: by collection, id, field.
func (c *collector) sorted() []wire.EntityError {
	sort.SliceStable(c.errs, func(i, j int) bool {
		a, b := c.errs[i], c.errs[j]
		if a.EntityType != b.EntityType {
			return a.EntityType < b.EntityType
		}
		if a.EntityID != b.EntityID {
			return a.EntityID < b.EntityID
		}
		return a.Field < b.Field
	})
	return c.errs
}

// schemaFieldErrors flattens a schema violation into one error per field,
// with dotted paths ("config.key_names"), in a stable order.
func schemaFieldErrors(err *schema.Error) fieldErrors {
	if len(err.Fields) == 0 {
		return fieldErrors{{"", err.Error()}}
	}
	var out fieldErrors
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case string:
			out = append(out, fieldError{prefix, t})
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if k == "@entity" {
					walk(prefix, t[k])
					continue
				}
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, t[k])
			}
		case []any:
			for _, e := range t {
				if e != nil {
					walk(prefix, e)
				}
			}
		case nil:
		default:
			out = append(out, fieldError{prefix, fmt.Sprint(t)})
		}
	}
	walk("", err.Fields)
	return out
}
