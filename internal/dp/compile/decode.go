package compile

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// A config_table arrives decoded from JSON (numbers as float64, or
// json.Number) or from YAML (numbers as int), with Kong's nulls for unset
// fields. Compile decodes every entity document once, into the typed struct
// of its collection (entities.go), and reads typed values only from then on.
//
// A struct field tagged `schema:"name"` takes the value of the schema field
// of that name (of the entity, or of the record the struct stands for). When
// the document leaves the field out or null, it takes the schema's default
// instead (schema.Field.DefaultValue): no default is written in this
// package, so the runtime fills in exactly what the control plane's Admin
// API and /schemas do. A field the schema gives no default keeps its zero
// value, or nil for a pointer, which is how a struct tells null apart where
// compile must. The tag `schema:"name,transient"` reads an input-only field
// that the entity accepts but does not store (key-auth's ttl); it has no
// default.
//
// The Go type of a field says how its value is read:
//
//	string, int, float64, bool  a schema string, integer, number, boolean
//	ref                         a foreign key: an id, or an {"id": ...} record
//	[]string, []int             an array or a set of strings or integers
//	map[string][]string         a map of string arrays (headers)
//	map[string]any              a record kept as decoded (plugin config)
//	struct, *struct             a record, read field by field; *struct is
//	                            nil when null (records whose default is null)
//	*T                          a scalar without default; nil when null
//	opt[T]                      T, and whether the document set it
//
// A value of the wrong type is recorded as a fieldError at its path (the
// field keeps its zero value and the entity is rejected). Fields the struct
// does not name are not read.
//
// A struct's decoding plan is built once, at package init, and checked
// against the schema then: a tag naming no schema field, or a Go type that
// cannot hold the schema field's values, panics at init, so every test of
// the package catches it.

// ref is a foreign key: the id of the referenced entity. The control plane
// flattens foreign keys to id strings; declarative files nest them as
// {"id": ...} records. "" means none.
type ref string

// opt is a field whose absence compile must tell apart from its default:
// V holds the document's value or the schema default, Set whether the
// document gave a (non-null) value.
type opt[T any] struct {
	V   T
	Set bool
}

func (*opt[T]) isOpt() {}

// optional is implemented by *opt[T]; plans recognise opt fields by it.
type optional interface{ isOpt() }

var optionalType = reflect.TypeFor[optional]()

// kind is how a plan field reads a value.
type kind uint8

const (
	kindString kind = iota + 1
	kindRef
	kindInt
	kindFloat
	kindBool
	kindStrings
	kindInts
	kindHeaders
	kindRaw
	kindRecord
)

// plan is how to decode documents into one struct type.
type plan struct {
	typ    reflect.Type
	fields []planField
}

// planField decodes one schema field into one struct field.
type planField struct {
	name  string
	index int // of the struct field
	kind  kind
	// schema is the field's schema; nil for transient fields and for
	// collections the schema does not describe.
	schema *schema.Field
	// def is the value an absent or null field takes (the schema default);
	// nil for none.
	def any
	// ptr marks a pointer field, allocated when there is a value; opt an
	// opt[T] field.
	ptr, opt bool
	// sub is the plan of a record's struct.
	sub *plan
}

// newPlan builds the plan of struct type t over fields, the schema fields
// of an entity or record; transient lists input-only field names. nil
// fields stands for a collection the schema does not describe
// (consumer_group_consumers): its fields are read by their Go types, with
// no defaults. where names t's place in panics.
func newPlan(t reflect.Type, fields []*schema.Field, transient []string, where string) *plan {
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("compile: %s: %s is not a struct", where, t))
	}
	p := &plan{typ: t}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("schema")
		if !ok || tag == "" {
			panic(fmt.Sprintf("compile: %s.%s has no schema tag", where, sf.Name))
		}
		name, option, _ := strings.Cut(tag, ",")
		pf := planField{name: name, index: i}
		ft := sf.Type
		if reflect.PointerTo(ft).Implements(optionalType) {
			pf.opt = true
			ft = ft.Field(0).Type
		}
		if ft.Kind() == reflect.Pointer {
			pf.ptr = true
			ft = ft.Elem()
		}
		pf.kind = kindOf(ft)
		if pf.kind == 0 {
			panic(fmt.Sprintf("compile: %s.%s: type %s cannot be decoded", where, sf.Name, sf.Type))
		}
		switch {
		case option == "transient":
			if !slices.Contains(transient, name) {
				panic(fmt.Sprintf("compile: %s.%s: %q is not a transient field of the entity", where, sf.Name, name))
			}
		case option != "":
			panic(fmt.Sprintf("compile: %s.%s: unknown tag option %q", where, sf.Name, option))
		case fields != nil:
			i := slices.IndexFunc(fields, func(f *schema.Field) bool { return f.Name == name })
			if i < 0 {
				panic(fmt.Sprintf("compile: %s.%s: the schema has no field %q", where, sf.Name, name))
			}
			pf.schema = fields[i]
			if !fits(pf.kind, pf.schema) {
				panic(fmt.Sprintf("compile: %s.%s: type %s cannot hold schema field %q of type %s", where, sf.Name, sf.Type, name, pf.schema.Type))
			}
			pf.def = pf.schema.DefaultValue()
			if pf.ptr && pf.def != nil {
				panic(fmt.Sprintf("compile: %s.%s: pointer field for %q, which has a default and so is never null", where, sf.Name, name))
			}
		}
		if pf.kind == kindRecord {
			var subFields []*schema.Field
			if pf.schema != nil {
				subFields = pf.schema.Fields
			}
			pf.sub = newPlan(ft, subFields, nil, where+"."+name)
		}
		p.fields = append(p.fields, pf)
	}
	return p
}

var refType = reflect.TypeFor[ref]()

// kindOf returns how values of Go type t are read, or 0 when they cannot be.
func kindOf(t reflect.Type) kind {
	switch {
	case t == refType:
		return kindRef
	case t == reflect.TypeFor[string]():
		return kindString
	case t == reflect.TypeFor[int]():
		return kindInt
	case t == reflect.TypeFor[float64]():
		return kindFloat
	case t == reflect.TypeFor[bool]():
		return kindBool
	case t == reflect.TypeFor[[]string]():
		return kindStrings
	case t == reflect.TypeFor[[]int]():
		return kindInts
	case t == reflect.TypeFor[map[string][]string]():
		return kindHeaders
	case t == reflect.TypeFor[map[string]any]():
		return kindRaw
	case t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(optionalType):
		return kindRecord
	}
	return 0
}

// fits reports whether a field of kind k can hold the values of schema
// field f.
func fits(k kind, f *schema.Field) bool {
	list := f.Type == schema.TypeArray || f.Type == schema.TypeSet
	switch k {
	case kindString:
		return f.Type == schema.TypeString
	case kindRef:
		return f.Type == schema.TypeForeign
	case kindInt:
		return f.Type == schema.TypeInteger
	case kindFloat:
		return f.Type == schema.TypeNumber
	case kindBool:
		return f.Type == schema.TypeBoolean
	case kindStrings:
		return list && f.Elements != nil && f.Elements.Type == schema.TypeString
	case kindInts:
		return list && f.Elements != nil && f.Elements.Type == schema.TypeInteger
	case kindHeaders:
		v := f.Values
		return f.Type == schema.TypeMap && v != nil && (v.Type == schema.TypeArray || v.Type == schema.TypeSet) &&
			v.Elements != nil && v.Elements.Type == schema.TypeString
	case kindRaw:
		return f.Type == schema.TypeRecord || f.Type == schema.TypeMap || f.Type == schema.TypeJSON
	case kindRecord:
		return f.Type == schema.TypeRecord
	}
	return false
}

// decode fills the struct dst from the document d, recording problems in
// fe; path locates d in its entity (nil for the entity itself).
func (p *plan) decode(dst reflect.Value, d map[string]any, path []string, fe *fieldErrors) {
	for i := range p.fields {
		f := &p.fields[i]
		v := d[f.name]
		set := v != nil
		if !set {
			if f.def == nil {
				continue
			}
			v = f.def
			if f.kind == kindRaw {
				// A raw record is kept, not copied: hand each entity its
				// own default.
				v = f.schema.DefaultValue()
			}
		}
		fv := dst.Field(f.index)
		if f.opt {
			fv.Field(1).SetBool(set)
			fv = fv.Field(0)
		}
		if f.ptr {
			fv.Set(reflect.New(fv.Type().Elem()))
			fv = fv.Elem()
		}
		f.decode(fv, v, path, fe)
	}
}

// decode reads the non-null value v into fv.
func (f *planField) decode(fv reflect.Value, v any, path []string, fe *fieldErrors) {
	switch f.kind {
	case kindString:
		s, ok := v.(string)
		if !ok {
			fe.add(sub(path, f.name), "expected a string")
			return
		}
		fv.SetString(s)
	case kindRef:
		id, msg := refID(v)
		if msg != "" {
			fe.add(sub(path, f.name), msg)
			return
		}
		fv.SetString(id)
	case kindInt:
		n, ok := toInt(v)
		if !ok {
			fe.add(sub(path, f.name), "expected an integer")
			return
		}
		fv.SetInt(int64(n))
	case kindFloat:
		n, ok := toFloat(v)
		if !ok {
			fe.add(sub(path, f.name), "expected a number")
			return
		}
		fv.SetFloat(n)
	case kindBool:
		b, ok := v.(bool)
		if !ok {
			fe.add(sub(path, f.name), "expected a boolean")
			return
		}
		fv.SetBool(b)
	case kindStrings:
		*fv.Addr().Interface().(*[]string) = toStrings(v, path, f.name, fe)
	case kindInts:
		*fv.Addr().Interface().(*[]int) = toInts(v, path, f.name, fe)
	case kindHeaders:
		*fv.Addr().Interface().(*map[string][]string) = toHeaders(v, path, f.name, fe)
	case kindRaw:
		m, ok := v.(map[string]any)
		if !ok {
			fe.add(sub(path, f.name), "expected a record")
			return
		}
		*fv.Addr().Interface().(*map[string]any) = m
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			fe.add(sub(path, f.name), "expected a record")
			return
		}
		f.sub.decode(fv, m, sub(path, f.name), fe)
	}
}

// refID reads a foreign key; it returns a message when v is not one.
func refID(v any) (string, string) {
	switch t := v.(type) {
	case string:
		return t, ""
	case map[string]any:
		id, _ := t["id"].(string)
		if id == "" {
			return "", "expected a reference with an id"
		}
		return id, ""
	}
	return "", "expected a reference"
}

// toInt reads an integer: JSON's float64 when integral (and within the
// range Kong's integers take), YAML's int, or json.Number.
func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || n > math.MaxInt32*2 || n < -math.MaxInt32*2 {
			return 0, false
		}
		return int(n), true
	case int:
		return n, true
	case int64:
		return int(n), true
	case json.Number:
		i, err := strconv.Atoi(string(n))
		return i, err == nil
	}
	return 0, false
}

// toFloat reads a number.
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// list reads an array value. An empty JSON object is an empty array, as
// for Kong, whose Lua tables cannot tell {} from [].
func list(v any) ([]any, bool) {
	switch t := v.(type) {
	case []any:
		return t, true
	case map[string]any:
		return nil, len(t) == 0
	}
	return nil, false
}

// toStrings reads an array of strings, recording each bad element at its
// index.
func toStrings(v any, path []string, name string, fe *fieldErrors) []string {
	if ss, ok := v.([]string); ok {
		return ss
	}
	a, ok := list(v)
	if !ok {
		fe.add(sub(path, name), "expected an array of strings")
		return nil
	}
	out := make([]string, len(a))
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			fe.add(sub(path, name, strconv.Itoa(i)), "expected a string")
			continue
		}
		out[i] = s
	}
	return out
}

// toInts reads an array of integers, recording each bad element at its
// index.
func toInts(v any, path []string, name string, fe *fieldErrors) []int {
	if is, ok := v.([]int); ok {
		return is
	}
	a, ok := list(v)
	if !ok {
		fe.add(sub(path, name), "expected an array of integers")
		return nil
	}
	out := make([]int, len(a))
	for i, e := range a {
		n, ok := toInt(e)
		if !ok {
			fe.add(sub(path, name, strconv.Itoa(i)), "expected an integer")
			continue
		}
		out[i] = n
	}
	return out
}

// toHeaders reads a map of header names to value arrays.
func toHeaders(v any, path []string, name string, fe *fieldErrors) map[string][]string {
	m, ok := v.(map[string]any)
	if !ok {
		fe.add(sub(path, name), "expected a map")
		return nil
	}
	out := make(map[string][]string, len(m))
	p := sub(path, name)
	for k, vals := range m {
		if vals == nil {
			out[k] = nil
			continue
		}
		out[k] = toStrings(vals, p, k, fe)
	}
	return out
}

// documents returns the entity documents of one collection of the
// config_table.
func documents(cfg map[string]any, collection string) ([]map[string]any, error) {
	switch v := cfg[collection].(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]map[string]any, 0, len(v))
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s[%d]: expected an object", collection, i)
			}
			out = append(out, m)
		}
		return out, nil
	case []map[string]any:
		return v, nil
	default:
		return nil, fmt.Errorf("%s: expected an array", collection)
	}
}
