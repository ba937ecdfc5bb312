package schema

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Kong's basic-auth password hash, see HashBasicAuthPassword
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
)

// KongVersion is the Kong Gateway version the Admin API claims (GET /
// "version") and the control plane announces to data planes: the newest
// version whose configuration format Gantry produces. Bundled plugins report
// it as their version too.
//
// It is the open-source x.y.z form of Kong Gateway 3.12.0.1, the newest 3.12
// release found in Kong's public changelogs (3.12.0.1, 2025-11-18; Kong
// Enterprise appends a fourth number to the open-source patch). Every entity
// and plugin field Gantry's schema has is known to Kong 3.10 and later, so
// 3.10, 3.11 and 3.12 data planes accept the configuration unchanged; older
// ones get it downgraded by internal/wire/kongcompat.
const KongVersion = "3.12.0"

// Op is the kind of write Process prepares a document for.
type Op int

const (
	// OpCreate is POST: absent fields take their defaults, a missing id is
	// generated.
	OpCreate Op = iota
	// OpUpsert is PUT: a full replace; omitted fields reset to defaults.
	OpUpsert
	// OpUpdate is PATCH: input is merged into the existing document, records
	// deeply, everything else replaced.
	OpUpdate
)

// Ref is one foreign key of an entity.
type Ref struct {
	// Field is the foreign field name ("service").
	Field string
	// Entity is the referenced entity name ("services").
	Entity string
	// Required foreign keys must be set.
	Required bool
	// OnDelete is what deleting the parent does: "cascade" deletes this
	// entity, "restrict" refuses the delete, "null" clears the field.
	OnDelete string
}

// Check is an entity-level rule. Fields are dotted paths ("config.second").
// Failures are reported under fields["@entity"], except that a failed
// Conditional also reports its then-field.
type Check struct {
	// Kind is one of at_least_one_of, only_one_of, exactly_one_of,
	// mutually_required, mutually_exclusive, distinct, conditional and
	// custom_entity_check.
	Kind   string
	Fields []string
	// IfField/IfMatch/ThenField/ThenMatch describe a conditional.
	IfField   string
	IfMatch   *Match
	ThenField string
	ThenMatch *Match
	// Fn runs a custom check over the processed document; it returns a
	// message or "". It is skipped when any of Fields has an error or holds
	// a vault reference.
	Fn func(doc map[string]any) string
}

// Match is a value condition of a conditional check.
type Match struct {
	// Contains requires an array value holding this element.
	Contains any
	OneOf    []any
	NotOneOf []any
	Eq       any
	EqNull   bool
	Required bool
	// Gt is an exclusive lower bound; 0 means unset unless GtSet.
	Gt    float64
	GtSet bool
	// Validator is Kong's custom_validator in a match: it runs on a non-null value and returns
	// the field's error message, or "".
	Validator func(v any) string
}

func (m *Match) matches(v any) string {
	if m.Required && v == nil {
		return "required field missing"
	}
	if m.EqNull && v != nil {
		return "value must be null"
	}
	if m.Eq != nil && v != m.Eq {
		return fmt.Sprintf("value must be %v", m.Eq)
	}
	if m.Contains != nil {
		list, _ := v.([]any)
		if !containsValue(list, m.Contains) {
			return fmt.Sprintf("expected to contain: %v", m.Contains)
		}
	}
	if len(m.NotOneOf) > 0 {
		for _, o := range m.NotOneOf {
			if o == v {
				return "must not be one of: " + oneOfText(m.NotOneOf)
			}
		}
	}
	if len(m.OneOf) > 0 {
		if v == nil {
			return "required field missing"
		}
		for _, o := range m.OneOf {
			if o == v {
				return ""
			}
		}
		return "expected one of: " + oneOfText(m.OneOf)
	}
	if m.GtSet {
		n, ok := toFloat(v)
		if !ok || n <= m.Gt {
			return "value must be greater than " + fmtNum(m.Gt)
		}
	}
	if m.Validator != nil && v != nil {
		return m.Validator(v)
	}
	return ""
}

// Entity describes one entity type; it is immutable after package init.
type Entity struct {
	// Name is Kong's DAO name, e.g. "services", "keyauth_credentials".
	Name string
	// AdminPath is the top-level Admin API path segment, e.g. "key-auths".
	AdminPath string
	// NestedPath is the segment under /consumers/{c}/ for credentials
	// ("key-auth", "acls", …); "" otherwise.
	NestedPath string
	// EndpointKey is the field a non-UUID URL key addresses; "" if none.
	EndpointKey string
	// Fields are the stored fields, in Kong's order.
	Fields []*Field
	// Unique lists uniqueness constraints: single fields and composite
	// cache keys. Nil foreign keys take part in composite keys as null.
	Unique [][]string
	// Refs are the foreign keys, derived from Fields.
	Refs []Ref
	// Transient fields are accepted on input and returned apart, never
	// stored (certificates.snis, services.url).
	Transient []string
	// TTL entities accept a "ttl" (seconds) on input, returned as transient.
	TTL bool
	// Checks are entity-level rules, in Kong's order.
	Checks []Check

	// shorthand rewrites input before anything else (services.url,
	// upstreams algorithm); it may report field errors.
	shorthand func(op Op, in map[string]any, errs map[string]any)
	// auto fills generated fields other than id and timestamps.
	auto func(op Op, doc, input, existing map[string]any)
	// validateDoc runs entity rules that need the whole processed document
	// and may set field errors; it returns "@entity" messages.
	validateDoc func(doc map[string]any, errs map[string]any) []any
	// msTimestamps stores created_at/updated_at as float seconds with
	// millisecond precision (targets).
	msTimestamps bool
	// plugin is set on the per-plugin variants of the plugins entity.
	plugin *Plugin
}

var (
	entities     []*Entity
	entityByName = map[string]*Entity{}
)

func register(e *Entity) {
	for _, f := range e.Fields {
		if f.Type == TypeForeign {
			e.Refs = append(e.Refs, Ref{Field: f.Name, Entity: f.Reference, Required: f.Required, OnDelete: onDelete(f)})
		}
		if f.Unique {
			e.Unique = append(e.Unique, []string{f.Name})
		}
	}
	entities = append(entities, e)
	entityByName[e.Name] = e
	if e.AdminPath != "" {
		entityByName[e.AdminPath] = e
	}
}

func onDelete(f *Field) string {
	if f.OnDelete == "" {
		return "restrict"
	}
	return f.OnDelete
}

// Lookup finds an entity by DAO name or Admin API path segment.
func Lookup(nameOrPath string) (*Entity, bool) {
	e, ok := entityByName[nameOrPath]
	return e, ok
}

// LookupNested finds a credential entity by its path under /consumers/{c}/.
func LookupNested(path string) (*Entity, bool) {
	for _, e := range entities {
		if e.NestedPath != "" && e.NestedPath == path {
			return e, true
		}
	}
	return nil, false
}

// Entities returns every entity, in dependency order (parents before the
// entities referring to them). The slice is a copy.
func Entities() []*Entity {
	return append([]*Entity(nil), entities...)
}

// Field returns the top-level field by name, or nil.
func (e *Entity) Field(name string) *Field {
	for _, f := range e.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// CheckKey validates value as the field named field (a unique field or the endpoint key) the
// way Kong's DAO checks a key before select_by_/update_by_/upsert_by_/delete_by_: nil when it is
// valid, Kong's code 10 otherwise. Fields that are not strings are not checked here.
func (e *Entity) CheckKey(field, value string) *Error {
	f := e.Field(field)
	if f == nil || f.Type != TypeString {
		return nil
	}
	if _, msg := f.validate(value); msg != nil {
		return InvalidUnique(field, leafText(msg))
	}
	return nil
}

// nowFunc is replaced by tests that need fixed timestamps.
var nowFunc = time.Now

// Process checks input for op and returns the document to store: every
// field present (unset ones nil), defaults filled, auto fields generated,
// shorthands expanded, transient fields returned apart, unknown fields
// refused. For OpUpdate, existing is the stored document and input is merged
// into it. Foreign keys must arrive resolved as {"id": "<uuid>"}. input and
// existing are not modified.
func (e *Entity) Process(op Op, input, existing map[string]any) (map[string]any, map[string]any, *Error) {
	if e.Name == "plugins" && e.plugin == nil {
		return processPlugin(op, input, existing)
	}
	in := make(map[string]any, len(input))
	for k, v := range input {
		in[k] = v
	}
	errs := map[string]any{}
	var transient map[string]any
	takeTransient := func(name string) {
		if v, ok := in[name]; ok {
			if transient == nil {
				transient = map[string]any{}
			}
			transient[name] = v
			delete(in, name)
		}
	}
	if e.shorthand != nil {
		e.shorthand(op, in, errs)
	}
	for _, t := range e.Transient {
		takeTransient(t)
	}
	if e.Name == "certificates" {
		// The certificates DAO refuses a repeated name before anything else is checked.
		if dup := repeatedString(transient["snis"]); dup != "" {
			return nil, nil, SchemaViolation(map[string]any{"snis": dup + " is duplicated"})
		}
	}
	if e.TTL {
		takeTransient("ttl")
		if v, ok := transient["ttl"]; ok && v != nil {
			if n, ok := toInt(v); !ok || n < 0 || n > 100000000 {
				errs["ttl"] = "value should be between 0 and 100000000"
			} else {
				transient["ttl"] = n
			}
		}
	}

	merged := in
	if op == OpUpdate && existing != nil {
		merged = mergeInto(e.Fields, existing, in)
	}
	e.fillAuto(op, merged, existing)
	if e.auto != nil {
		e.auto(op, merged, in, existing)
	}

	doc, ferrs := processFields(e.Fields, merged)
	for k, v := range ferrs {
		if _, dup := errs[k]; !dup {
			errs[k] = v
		}
	}
	var entityErrs []any
	for _, c := range e.Checks {
		entityErrs = append(entityErrs, runCheck(c, doc, errs)...)
	}
	if e.validateDoc != nil {
		entityErrs = append(entityErrs, e.validateDoc(doc, errs)...)
	}
	if e.Name == "certificates" && transient != nil {
		if v, ok := transient["snis"]; ok && v != nil {
			nv, err := certificateSNIs.validate(v)
			if err != nil {
				errs["snis"] = err
			} else {
				transient["snis"] = nv
			}
		}
	}
	if len(entityErrs) > 0 {
		errs["@entity"] = entityErrs
	}
	if len(errs) > 0 {
		return nil, nil, SchemaViolation(errs)
	}
	if e.Name == "basicauth_credentials" {
		hashBasicAuthPassword(op, doc, in, existing)
	}
	return doc, transient, nil
}

// TTLExpiry returns when (Unix seconds) a ttl-enabled entity, such as a key-auth credential,
// expires, from its stored "ttl" and created_at. The ttl takes two forms: the absolute expiry
// Kong's control plane exports (its postgres export selects EXTRACT(EPOCH FROM ttl)), which is what
// Gantry's control plane stores and sends, and seconds counted from created_at, as a declarative
// file may give it. A ttl no smaller than created_at is absolute; a smaller one is relative (a
// ttl is at most 100000000 s, far below any creation time after 1973).
func TTLExpiry(ttl, createdAt int64) int64 {
	if ttl >= createdAt {
		return ttl
	}
	return createdAt + ttl
}

// repeatedString returns the first string that occurs twice in a list value, or "".
func repeatedString(v any) string {
	list, _ := v.([]any)
	seen := make(map[string]bool, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			continue
		}
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}

// Validate checks a complete document without generating or filling
// anything beyond defaults (POST /schemas/{entity}/validate).
func (e *Entity) Validate(input map[string]any) *Error {
	_, _, err := e.Process(OpCreate, input, nil)
	return err
}

func (e *Entity) fillAuto(op Op, doc, existing map[string]any) {
	now := nowFunc()
	var ts any = now.Unix()
	if e.msTimestamps {
		ts = math.Round(float64(now.UnixMilli())) / 1000
	}
	for _, f := range e.Fields {
		if !f.Auto {
			continue
		}
		v, present := doc[f.Name]
		switch f.Name {
		case "id":
			if !present || v == nil {
				if op == OpUpdate && existing != nil {
					doc["id"] = existing["id"]
				} else {
					doc["id"] = uuid.NewString()
				}
			}
		case "created_at":
			if !present || v == nil {
				if op == OpUpdate && existing != nil && existing["created_at"] != nil {
					doc["created_at"] = existing["created_at"]
				} else {
					doc["created_at"] = ts
				}
			}
		case "updated_at":
			doc["updated_at"] = ts
		}
	}
}

// randomString returns 32 random alphanumeric characters, the shape of
// Kong's generated credentials (base64 of 24 random bytes with the
// non-alphanumeric characters replaced).
func randomString() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Errorf("schema: reading random bytes: %w", err))
	}
	s := []byte(base64.StdEncoding.EncodeToString(b[:]))
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i, c := range s {
		if c == '+' || c == '/' || c == '=' {
			s[i] = alnum[int(b[i%len(b)])%len(alnum)]
		}
	}
	return string(s)
}

// autoStrings generates the named string fields when absent or null.
func autoStrings(names ...string) func(op Op, doc, input, existing map[string]any) {
	return func(op Op, doc, _, _ map[string]any) {
		for _, n := range names {
			if v, ok := doc[n]; !ok || v == nil {
				doc[n] = randomString()
			}
		}
	}
}

// HashBasicAuthPassword returns the stored form of a basic-auth password:
// the hex SHA-1 of password followed by the consumer id, as Kong stores it.
func HashBasicAuthPassword(password, consumerID string) string {
	sum := sha1.Sum([]byte(password + consumerID)) //nolint:gosec // Kong's stored format for basic-auth credentials
	return hex.EncodeToString(sum[:])
}

func hashBasicAuthPassword(op Op, doc, input, existing map[string]any) {
	pw, ok := doc["password"].(string)
	if !ok {
		return
	}
	if op == OpUpdate {
		if _, changed := input["password"]; !changed {
			// PATCH without a password keeps the stored hash as is.
			return
		}
	}
	cid := ""
	if c, ok := doc["consumer"].(map[string]any); ok {
		cid, _ = c["id"].(string)
	}
	doc["password"] = HashBasicAuthPassword(pw, cid)
}

// getPath reads a dotted path from a document.
func getPath(doc map[string]any, path string) any {
	cur := any(doc)
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// hasErr reports whether a dotted path (or any of its parents) has an error.
func hasErr(errs map[string]any, path string) bool {
	cur := any(errs)
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return cur != nil
		}
		v, present := m[p]
		if !present {
			return false
		}
		if _, isMap := v.(map[string]any); !isMap {
			return true
		}
		cur = v
	}
	return true
}

// setErr sets an error at a dotted path, creating nested maps.
func setErr(errs map[string]any, path string, msg any) {
	parts := strings.Split(path, ".")
	cur := errs
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = msg
}

func nonEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	case map[string]any:
		return len(t) > 0
	}
	return true
}

func quotedList(fields []string) string {
	q := make([]string, len(fields))
	for i, f := range fields {
		q[i] = "'" + f + "'"
	}
	return strings.Join(q, ", ")
}

// runCheck evaluates one entity check and returns its "@entity" messages;
// conditional failures also set the then-field error in errs.
func runCheck(c Check, doc map[string]any, errs map[string]any) []any {
	all := append(append([]string(nil), c.Fields...), c.IfField)
	for _, f := range all {
		if f != "" && hasErr(errs, f) {
			return nil
		}
	}
	count := 0
	for _, f := range c.Fields {
		if nonEmpty(getPath(doc, f)) {
			count++
		}
	}
	switch c.Kind {
	case "at_least_one_of":
		if count == 0 {
			return []any{"at least one of these fields must be non-empty: " + quotedList(c.Fields)}
		}
	case "exactly_one_of":
		if count != 1 {
			return []any{"exactly one of these fields must be non-empty: " + quotedList(c.Fields)}
		}
	case "only_one_of":
		if count > 1 {
			return []any{"only one of these fields must be non-empty: " + quotedList(c.Fields)}
		}
	case "mutually_exclusive":
		if count > 1 {
			return []any{"only one or none of these fields must be set: " + quotedList(c.Fields)}
		}
	case "mutually_required":
		if count != 0 && count != len(c.Fields) {
			return []any{"all or none of these fields must be set: " + quotedList(c.Fields)}
		}
	case "distinct":
		seen := map[string]bool{}
		for _, f := range c.Fields {
			v := getPath(doc, f)
			if v == nil {
				continue
			}
			k := fmt.Sprint(v)
			if seen[k] {
				return []any{"values of these fields must be distinct: " + quotedList(c.Fields)}
			}
			seen[k] = true
		}
	case "conditional":
		if c.IfMatch.matches(getPath(doc, c.IfField)) != "" {
			return nil
		}
		if msg := c.ThenMatch.matches(getPath(doc, c.ThenField)); msg != "" {
			setErr(errs, c.ThenField, msg)
			return []any{fmt.Sprintf("failed conditional validation given value of field '%s'", c.IfField)}
		}
	case "custom_entity_check":
		for _, f := range c.Fields {
			if s, ok := getPath(doc, f).(string); ok && isReference(s) {
				return nil
			}
		}
		if msg := c.Fn(doc); msg != "" {
			return []any{msg}
		}
	}
	return nil
}

// UniqueKeys returns, for each uniqueness constraint of e, the key values
// doc holds (foreign keys as their {"id": …} tables, nil for null). Single
// field constraints whose value is null are left out, as NULLs never clash.
func (e *Entity) UniqueKeys(doc map[string]any) []map[string]any {
	var out []map[string]any
	for _, u := range e.Unique {
		key := make(map[string]any, len(u))
		for _, f := range u {
			key[f] = doc[f]
		}
		if len(u) == 1 && doc[u[0]] == nil {
			continue
		}
		out = append(out, key)
	}
	return out
}
