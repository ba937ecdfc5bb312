package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kong's error codes (kong/db/errors.lua). The numbers are part of the Admin
// API contract: clients such as decK and go-kong branch on them.
const (
	CodeInvalidPrimaryKey     = 1
	CodeSchemaViolation       = 2
	CodePrimaryKeyViolation   = 3
	CodeForeignKeyViolation   = 4
	CodeUniqueViolation       = 5
	CodeNotFound              = 6
	CodeInvalidOffset         = 7
	CodeDatabaseError         = 8
	CodeInvalidSize           = 9
	CodeInvalidUnique         = 10
	CodeInvalidOptions        = 11
	CodeOperationUnsupported  = 12
	CodeForeignKeysUnresolved = 13
)

var codeNames = map[int]string{
	CodeInvalidPrimaryKey:     "invalid primary key",
	CodeSchemaViolation:       "schema violation",
	CodePrimaryKeyViolation:   "primary key violation",
	CodeForeignKeyViolation:   "foreign key violation",
	CodeUniqueViolation:       "unique constraint violation",
	CodeNotFound:              "not found",
	CodeInvalidOffset:         "invalid offset",
	CodeDatabaseError:         "database error",
	CodeInvalidSize:           "invalid size",
	CodeInvalidUnique:         "invalid unique %s",
	CodeInvalidOptions:        "invalid options",
	CodeOperationUnsupported:  "operation unsupported",
	CodeForeignKeysUnresolved: "foreign keys unresolved",
}

// Error is a Kong Admin API error. It marshals to Kong's body
// {"code","name","message","fields"} (or "options" for code 11); Fields and
// Options are omitted when nil. Values in Fields are strings, []any (array
// element errors, nil where an element was fine) or nested map[string]any
// (record errors); the "@entity" key holds a []any of entity-level messages.
type Error struct {
	Code    int
	Name    string
	Message string
	Fields  map[string]any
	Options map[string]any
}

// Error returns the Kong message.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Message
}

// Status is the HTTP status Kong answers this error with
// (kong/api/endpoints.lua ERRORS_HTTP_CODES); unknown codes are 500.
func (e *Error) Status() int {
	switch e.Code {
	case CodeInvalidPrimaryKey, CodeSchemaViolation, CodePrimaryKeyViolation,
		CodeForeignKeyViolation, CodeInvalidOffset, CodeInvalidSize, CodeInvalidUnique,
		CodeInvalidOptions, CodeForeignKeysUnresolved:
		return http.StatusBadRequest
	case CodeUniqueViolation:
		return http.StatusConflict
	case CodeNotFound:
		return http.StatusNotFound
	case CodeOperationUnsupported:
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}

// MarshalJSON writes Kong's error body.
func (e *Error) MarshalJSON() ([]byte, error) {
	type body struct {
		Code    int            `json:"code"`
		Name    string         `json:"name"`
		Message string         `json:"message"`
		Fields  map[string]any `json:"fields,omitempty"`
		Options map[string]any `json:"options,omitempty"`
	}
	return json.Marshal(body{Code: e.Code, Name: e.Name, Message: e.Error(), Fields: e.Fields, Options: e.Options})
}

func newError(code int, msg string, fields map[string]any) *Error {
	return &Error{Code: code, Name: codeNames[code], Message: msg, Fields: fields}
}

// SchemaViolation builds a code 2 error from per-field messages. The message
// lists "@entity" messages first, then each field in sorted order; nested
// tables are flattened one level ("config.second: …") and anything deeper is
// printed with PrettyWrite, exactly as Kong's errors.lua does.
func SchemaViolation(fields map[string]any) *Error {
	var buf []string
	if ent, ok := fields["@entity"]; ok {
		switch v := ent.(type) {
		case []any:
			for _, m := range v {
				buf = append(buf, fmt.Sprint(m))
			}
		case []string:
			buf = append(buf, v...)
		default:
			buf = append(buf, fmt.Sprint(v))
		}
	}
	for _, name := range sortedKeys(fields) {
		if name == "@entity" {
			continue
		}
		switch v := fields[name].(type) {
		case map[string]any:
			for _, sub := range sortedKeys(v) {
				buf = append(buf, fmt.Sprintf("%s.%s: %s", name, sub, leafText(v[sub])))
			}
		case []any:
			for i, sub := range v {
				if sub == nil {
					continue
				}
				buf = append(buf, fmt.Sprintf("%s.%d: %s", name, i+1, leafText(sub)))
			}
		default:
			buf = append(buf, fmt.Sprintf("%s: %v", name, v))
		}
	}
	var msg string
	if len(buf) == 1 {
		msg = "schema violation (" + buf[0] + ")"
	} else {
		msg = fmt.Sprintf("%d schema violations (%s)", len(buf), strings.Join(buf, "; "))
	}
	return newError(CodeSchemaViolation, msg, fields)
}

func leafText(v any) string {
	switch v.(type) {
	case map[string]any, []any:
		return PrettyWrite(v, "  ")
	}
	return fmt.Sprint(v)
}

// UniqueViolation is Kong's code 5 (HTTP 409) for a duplicate unique key.
// key holds the conflicting fields, nil values meaning null.
func UniqueViolation(key map[string]any) *Error {
	return newError(CodeUniqueViolation, "UNIQUE violation detected on '"+PrettyKey(key)+"'", key)
}

// InvalidUnique is code 10 (HTTP 400): a URL key addressing an entity by its unique field
// (an endpoint key such as a vault prefix, or a tag) fails that field's validation, so Kong's DAO
// refuses it before looking anything up (select_by_<field> in kong/db/dao/init.lua). Its name
// carries the field: "invalid unique prefix".
func InvalidUnique(field, msg string) *Error {
	return &Error{Code: CodeInvalidUnique, Name: fmt.Sprintf(codeNames[CodeInvalidUnique], field), Message: msg}
}

// PrimaryKeyViolation is code 3: an entity with this primary key exists.
func PrimaryKeyViolation(key map[string]any) *Error {
	return newError(CodePrimaryKeyViolation, "primary key violation on key '"+PrettyKey(key)+"'", key)
}

// InvalidPrimaryKey is code 1 (HTTP 400).
func InvalidPrimaryKey(key map[string]any) *Error {
	return newError(CodeInvalidPrimaryKey, "invalid primary key: '"+PrettyKey(key)+"'", key)
}

// ForeignKeyViolation is code 4 for a reference to a missing parent: field is
// the foreign field name ("service"), key the parent's primary key and parent
// the parent's entity name ("services").
func ForeignKeyViolation(field string, key map[string]any, parent string) *Error {
	msg := fmt.Sprintf("the foreign key '%s' does not reference an existing '%s' entity.", PrettyKey(key), parent)
	return newError(CodeForeignKeyViolation, msg, map[string]any{field: key})
}

// ReferencedBy is code 4 for deleting a parent that child (an entity name,
// e.g. "routes") still references with on_delete=restrict; parent is the
// entity being deleted ("services").
func ReferencedBy(parent, child string) *Error {
	msg := fmt.Sprintf("an existing '%s' entity references this '%s' entity", child, parent)
	return newError(CodeForeignKeyViolation, msg, map[string]any{"@referenced_by": child})
}

// ForeignKeyUnresolved is code 13: the foreign field (e.g. "service") was
// given by endpoint key (keyField, e.g. "name", with value) and no parent
// entity of type parent matched.
func ForeignKeyUnresolved(field, keyField string, value any, parent string) *Error {
	text := fmt.Sprintf("the foreign key cannot be resolved with '%s' for an existing '%s' entity",
		PrettyKey(map[string]any{keyField: value}), parent)
	fields := map[string]any{field: map[string]any{keyField: text}}
	msg := fmt.Sprintf("foreign key unresolved (%s.%s: %s)", field, keyField, text)
	return newError(CodeForeignKeysUnresolved, msg, fields)
}

// NotFound is code 6 (HTTP 404). With an "id" key the message names the
// primary key; with any other key (PATCH by endpoint key) it names the filter.
func NotFound(key map[string]any) *Error {
	if _, ok := key["id"]; ok && len(key) == 1 {
		return newError(CodeNotFound, "could not find the entity with primary key '"+PrettyKey(key)+"'", key)
	}
	return newError(CodeNotFound, "could not find the entity with '"+PrettyKey(key)+"'", key)
}

// InvalidOffset is code 7: offset is the raw query value, reason e.g.
// "bad base64 encoding".
func InvalidOffset(offset, reason string) *Error {
	return newError(CodeInvalidOffset, fmt.Sprintf("'%s' is not a valid offset: %s", offset, reason), nil)
}

// InvalidSize is code 9, e.g. "size must be an integer between 1 and 1000".
func InvalidSize(msg string) *Error {
	return newError(CodeInvalidSize, msg, nil)
}

// InvalidOptions is code 11; options maps option names to messages
// (e.g. {"tags": "invalid filter syntax"}).
func InvalidOptions(options map[string]any) *Error {
	var buf []string
	for _, k := range sortedKeys(options) {
		if sub, ok := options[k].(map[string]any); ok {
			for _, s := range sortedKeys(sub) {
				buf = append(buf, fmt.Sprintf("%s.%s: %v", k, s, sub[s]))
			}
			continue
		}
		buf = append(buf, fmt.Sprintf("%s: %v", k, options[k]))
	}
	var msg string
	if len(buf) == 1 {
		msg = "invalid option (" + buf[0] + ")"
	} else {
		msg = fmt.Sprintf("%d option violations (%s)", len(buf), strings.Join(buf, "; "))
	}
	return &Error{Code: CodeInvalidOptions, Name: codeNames[CodeInvalidOptions], Message: msg, Options: options}
}

// OperationUnsupported is code 12 (HTTP 405).
func OperationUnsupported(msg string) *Error {
	return newError(CodeOperationUnsupported, msg, nil)
}

// PrettyKey renders a key table on one line as penlight's
// pretty.write(tbl, "") does: keys sorted, strings quoted, nil as null.
func PrettyKey(key map[string]any) string {
	return PrettyWrite(key, "")
}

var luaIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var luaKeywords = map[string]bool{
	"and": true, "break": true, "do": true, "else": true, "elseif": true, "end": true,
	"false": true, "for": true, "function": true, "goto": true, "if": true, "in": true,
	"local": true, "nil": true, "not": true, "or": true, "repeat": true, "return": true,
	"then": true, "true": true, "until": true, "while": true,
}

// PrettyWrite renders v like penlight's pretty.write(v, indent): with an
// empty indent everything is on one line ({a=1,b="x"}); otherwise one item
// per line, nested levels indented by indent, "key = value".
func PrettyWrite(v any, indent string) string {
	var b strings.Builder
	prettyWrite(&b, v, indent, "")
	return b.String()
}

func prettyWrite(b *strings.Builder, v any, indent, cur string) {
	eq, nl := "=", ""
	if indent != "" {
		eq, nl = " = ", "\n"
	}
	items := func(n int, each func(i int)) {
		if n == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{" + nl)
		for i := range n {
			b.WriteString(cur + indent)
			each(i)
			if i < n-1 {
				b.WriteString(",")
			}
			b.WriteString(nl)
		}
		b.WriteString(cur + "}")
	}
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case string:
		b.WriteString(strconv.Quote(t))
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1e15 {
			b.WriteString(strconv.FormatInt(int64(t), 10))
		} else {
			b.WriteString(strconv.FormatFloat(t, 'g', 14, 64))
		}
	case []any:
		items(len(t), func(i int) { prettyWrite(b, t[i], indent, cur+indent) })
	case map[string]any:
		keys := sortedKeys(t)
		items(len(keys), func(i int) {
			k := keys[i]
			if luaIdent.MatchString(k) && !luaKeywords[k] {
				b.WriteString(k)
			} else {
				b.WriteString("[" + strconv.Quote(k) + "]")
			}
			b.WriteString(eq)
			prettyWrite(b, t[k], indent, cur+indent)
		})
	default:
		fmt.Fprint(b, t)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
