package declarative

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/google/uuid"
)

// Kong's error code and name for an invalid declarative configuration (kong/constants.lua,
// kong/db/errors.lua DECLARATIVE_CONFIG).
const (
	CodeInvalidDeclarative = 14
	NameInvalidDeclarative = "invalid declarative configuration"
)

// FieldError is one error of one entity: of a field (Type "field", Field the dotted path, array
// elements numbered from 1) or of the entity as a whole (Type "entity").
type FieldError struct {
	Type    string `json:"type"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// FlatError is one invalid entity, as Kong's flatten_errors reports it: singular type, id, name
// and tags when valid, the entity as the file gave it (nested children left out, the foreign key
// to the parent it was nested in set) and its errors.
type FlatError struct {
	EntityType string         `json:"entity_type"`
	EntityID   string         `json:"entity_id,omitempty"`
	EntityName string         `json:"entity_name,omitempty"`
	EntityTags []any          `json:"entity_tags,omitempty"`
	Entity     map[string]any `json:"entity"`
	Errors     []FieldError   `json:"errors"`
}

// ValidationError is an invalid declarative file: every invalid entity in Flattened, and in
// Fields the errors that belong to no entity (the file's own keys). It marshals to Kong's body
// for POST /config?flatten_errors=1.
type ValidationError struct {
	Fields    map[string]any
	Flattened []FlatError
}

// Error returns Kong's message: the errors left after flattening, pretty-printed.
func (e *ValidationError) Error() string {
	fields := e.Fields
	if fields == nil {
		fields = map[string]any{}
	}
	return "declarative config is invalid: " + schema.PrettyWrite(fields, "")
}

// MarshalJSON writes Kong's error body.
func (e *ValidationError) MarshalJSON() ([]byte, error) {
	fields := e.Fields
	if fields == nil {
		fields = map[string]any{}
	}
	flat := e.Flattened
	if flat == nil {
		flat = []FlatError{}
	}
	return json.Marshal(struct {
		Code      int            `json:"code"`
		Name      string         `json:"name"`
		Message   string         `json:"message"`
		Fields    map[string]any `json:"fields"`
		Flattened []FlatError    `json:"flattened_errors"`
	}{CodeInvalidDeclarative, NameInvalidDeclarative, e.Error(), fields, flat})
}

// flattenFields turns a schema error's nested fields into a flat list, entity errors first and
// fields in sorted order, as Kong's categorize_errors does.
func flattenFields(err *schema.Error) []FieldError {
	if len(err.Fields) == 0 {
		return []FieldError{{Type: "entity", Message: err.Error()}}
	}
	var out []FieldError
	categorize(err.Fields, "", &out)
	return out
}

func categorize(errs map[string]any, ns string, out *[]FieldError) {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "@entity" {
			addEntity(errs[k], out)
			continue
		}
		addField(join(ns, k), errs[k], out)
	}
}

func addEntity(v any, out *[]FieldError) {
	switch x := v.(type) {
	case []any:
		for _, m := range x {
			addEntity(m, out)
		}
	case nil:
	default:
		*out = append(*out, FieldError{Type: "entity", Message: fmt.Sprint(x)})
	}
}

func addField(path string, v any, out *[]FieldError) {
	switch x := v.(type) {
	case string:
		*out = append(*out, FieldError{Type: "field", Field: path, Message: x})
	case map[string]any:
		categorize(x, path, out)
	case []any:
		for i, el := range x {
			if el != nil {
				addField(join(path, fmt.Sprint(i+1)), el, out)
			}
		}
	case nil:
	default:
		*out = append(*out, FieldError{Type: "field", Field: path, Message: fmt.Sprint(x)})
	}
}

func join(ns, field string) string {
	if ns == "" {
		return field
	}
	return ns + "." + field
}

// errors returns the file's errors as a *ValidationError, or nil: sections in name order, items
// in file order, an entity's nested children before the entity itself, as Kong lists them.
func (p *planner) errors() error {
	var flat []FlatError
	var emit func(it *item)
	emit = func(it *item) {
		for _, c := range it.children {
			emit(c)
		}
		if len(it.errs) > 0 {
			flat = append(flat, flatError(it))
		}
	}
	sections := make([]string, 0, len(p.roots))
	for s := range p.roots {
		sections = append(sections, s)
	}
	sort.Strings(sections)
	for _, s := range sections {
		for _, it := range p.roots[s] {
			emit(it)
		}
	}
	if len(flat) == 0 && len(p.fields) == 0 {
		return nil
	}
	return &ValidationError{Fields: p.fields, Flattened: flat}
}

func flatError(it *item) FlatError {
	typ := entitystore.MembershipType
	if it.e != nil {
		typ = it.e.Name
	}
	fe := FlatError{EntityType: strings.TrimSuffix(typ, "s"), Entity: it.shown, Errors: it.errs}
	if name, ok := it.shown["name"].(string); ok && name != "" {
		fe.EntityName = name
	}
	if _, err := uuid.Parse(it.id); err == nil && it.stableID && len(it.id) == 36 {
		fe.EntityID = it.id
	}
	if tags, ok := it.shown["tags"].([]any); ok {
		valid := true
		for _, t := range tags {
			if _, ok := t.(string); !ok {
				valid = false
			}
		}
		if valid {
			fe.EntityTags = tags
		}
	}
	return fe
}
