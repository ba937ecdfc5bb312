package compile

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/config/schema"
)

// decodeFunc decodes one document of a collection, as Compile does, into a
// new entity; it returns the entity (a struct), the plan used and the
// problems found.
type decodeFunc func(d map[string]any) (reflect.Value, *plan, fieldErrors)

func decoder[T any](c collection[T]) decodeFunc {
	return func(d map[string]any) (reflect.Value, *plan, fieldErrors) {
		v := reflect.New(reflect.TypeFor[T]()).Elem()
		var fe fieldErrors
		p := c.plan(d)
		p.decode(v, d, nil, &fe)
		return v, p, fe
	}
}

// schemaEntities lists the collections compile decodes with a schema, with
// the schema entity each is checked against: every plugins entity (one per
// bundled plugin, and the generic one) for plugins.
func schemaEntities(t *testing.T) []struct {
	name   string
	entity *schema.Entity
	doc    map[string]any // fields the document needs to pick its schema
	decode decodeFunc
} {
	type entry = struct {
		name   string
		entity *schema.Entity
		doc    map[string]any
		decode decodeFunc
	}
	c := &collections
	var out []entry
	add := func(name string, decode decodeFunc) {
		e, ok := schema.Lookup(name)
		if !ok {
			t.Fatalf("no schema entity %s", name)
		}
		out = append(out, entry{name, e, nil, decode})
	}
	add("services", decoder(c.services))
	add("routes", decoder(c.routes))
	add("upstreams", decoder(c.upstreams))
	add("targets", decoder(c.targets))
	add("certificates", decoder(c.certificates))
	add("snis", decoder(c.snis))
	add("ca_certificates", decoder(c.caCertificates))
	add("vaults", decoder(c.vaults))
	add("key_sets", decoder(c.keySets))
	add("keys", decoder(c.keys))
	add("consumers", decoder(c.consumers))
	add("consumer_groups", decoder(c.consumerGroups))
	add("keyauth_credentials", decoder(c.keyAuths))
	add("basicauth_credentials", decoder(c.basicAuths))
	add("jwt_secrets", decoder(c.jwtSecrets))
	add("hmacauth_credentials", decoder(c.hmacAuths))
	add("acls", decoder(c.acls))
	add("plugins", decoder(c.plugins))
	for _, p := range schema.Plugins() {
		out = append(out, entry{"plugins/" + p.Name, p.Entity(), map[string]any{"name": p.Name}, decoder(c.plugins)})
	}
	return out
}

// TestDecodedDefaultsAreTheSchemas checks the one source of defaults: for
// every schema field with a default that a typed entity reads, at any depth
// of records, decoding a document that leaves the field out, or null (its
// enclosing records present), yields the schema's default.
func TestDecodedDefaultsAreTheSchemas(t *testing.T) {
	for _, ent := range schemaEntities(t) {
		t.Run(ent.name, func(t *testing.T) {
			checked := 0
			for _, sf := range fieldsWithDefaults(ent.entity.Fields, nil) {
				name := strings.Join(sf.path, ".")
				for _, how := range []string{"absent", "null"} {
					doc := with(ent.doc, nestedDoc(sf.path, how == "null"))
					v, p, fe := ent.decode(doc)
					if len(fe) > 0 {
						t.Fatalf("decoding %v: %v", doc, fe)
					}
					pf, fv := p.lookup(v, sf.path)
					if pf == nil {
						continue // compile does not read it
					}
					checked++
					for _, diff := range compareDefault(pf, fv, sf.field.DefaultValue()) {
						t.Errorf("%s %s: %s", name, how, diff)
					}
				}
			}
			t.Logf("%d defaults checked", checked/2)
		})
	}
}

// schemaField is a field of an entity at its path through records.
type schemaField struct {
	path  []string
	field *schema.Field
}

// fieldsWithDefaults lists the fields with a default among fields and,
// recursively, their records' sub-fields.
func fieldsWithDefaults(fields []*schema.Field, prefix []string) []schemaField {
	var out []schemaField
	for _, f := range fields {
		path := append(append([]string(nil), prefix...), f.Name)
		if f.DefaultValue() != nil {
			out = append(out, schemaField{path, f})
		}
		if f.Type == schema.TypeRecord {
			out = append(out, fieldsWithDefaults(f.Fields, path)...)
		}
	}
	return out
}

// nestedDoc is a document with empty records along path and its last
// element absent, or null.
func nestedDoc(path []string, null bool) map[string]any {
	doc := map[string]any{}
	cur := doc
	for _, p := range path[:len(path)-1] {
		next := map[string]any{}
		cur[p] = next
		cur = next
	}
	if null {
		cur[path[len(path)-1]] = nil
	}
	return doc
}

// lookup follows path through p and the decoded struct v; it returns the
// plan field and value at its end, or nil when the struct does not read
// some element of path.
func (p *plan) lookup(v reflect.Value, path []string) (*planField, reflect.Value) {
	var pf *planField
	for i, name := range path {
		if i > 0 {
			if pf.kind != kindRecord {
				return nil, v
			}
			if pf.ptr {
				if v.IsNil() {
					return nil, v
				}
				v = v.Elem()
			}
			p = pf.sub
		}
		if pf = p.field(name); pf == nil {
			return nil, v
		}
		v = v.Field(pf.index)
	}
	return pf, v
}

// field returns the plan field of schema field name, or nil.
func (p *plan) field(name string) *planField {
	for i := range p.fields {
		if p.fields[i].name == name {
			return &p.fields[i]
		}
	}
	return nil
}

// compareDefault compares the decoded value v of plan field pf with the
// schema default want (as DefaultValue returns it), walking into records
// field by field; it returns one line per difference.
func compareDefault(pf *planField, v reflect.Value, want any) []string {
	if want == nil {
		// No default (a record's sub-field without one): the field keeps
		// its zero value, which says nothing.
		return nil
	}
	if pf.opt {
		v = v.Field(0)
	}
	if pf.ptr {
		if v.IsNil() {
			return []string{fmt.Sprintf("decoded nil, schema default %#v", want)}
		}
		v = v.Elem()
	}
	if pf.kind == kindRecord {
		m, ok := want.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("schema default %#v is not a record", want)}
		}
		var diffs []string
		for i := range pf.sub.fields {
			sf := &pf.sub.fields[i]
			for _, d := range compareDefault(sf, v.Field(sf.index), m[sf.name]) {
				diffs = append(diffs, sf.name+": "+d)
			}
		}
		return diffs
	}
	got := schemaShaped(v)
	if !reflect.DeepEqual(got, want) {
		return []string{fmt.Sprintf("decoded %#v, schema default %#v", got, want)}
	}
	return nil
}

// schemaShaped converts a decoded scalar, list or map to the shapes the
// schema package uses (integers as int64, lists as []any), nil for a nil
// list or map.
func schemaShaped(v reflect.Value) any {
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Int:
		return v.Int()
	case reflect.Float64:
		return v.Float()
	case reflect.Bool:
		return v.Bool()
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = schemaShaped(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		for _, k := range v.MapKeys() {
			out[k.String()] = schemaShaped(v.MapIndex(k))
		}
		return out
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return v.Elem().Interface()
	}
	return v.Interface()
}

// with returns a copy of base with extra's entries.
func with(base, extra map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}
