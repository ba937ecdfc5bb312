package declarative

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/revisions"
	"github.com/google/uuid"
)

// ImportOptions configure one Import.
type ImportOptions struct {
	// DryRun validates the file and computes the diff without changing anything.
	DryRun bool
}

// Summary counts, per entity type, what an import created, updated and deleted: the shape of a
// revision's summary, so that an import's answer reads like the revision it made.
type Summary map[string]entitystore.Counts

// Result is the outcome of an Import.
type Result struct {
	// Revision is the group's revision after the import: a new one when something changed, the
	// current one otherwise (and for a dry run).
	Revision int64
	// Changed reports whether the import changed the configuration (or would, for a dry run).
	Changed bool
	// Summary counts the changes per type.
	Summary Summary
	// Diff is what changes from the current configuration to the file's, per entity.
	Diff revisions.Diff
}

// Import replaces the group's whole configuration with the declarative file in, in one
// transaction recorded as one revision (source entitystore.SourceImport). When the file equals
// the current configuration nothing is written and no revision is made. A file with errors
// changes nothing and yields a *ValidationError listing every invalid entity.
func (s *Service) Import(ctx context.Context, groupID string, in map[string]any, opts ImportOptions) (Result, error) {
	var res Result
	run := func(t *entitystore.Tx) error {
		cur, err := t.Snapshot()
		if err != nil {
			return err
		}
		target, err := s.plan(cur, in)
		if err != nil {
			return err
		}
		res.Diff = revisions.Diff{From: cur.Revision, To: cur.Revision, Entities: revisions.DiffSnapshots(cur, target)}
		res.Changed = len(res.Diff.Entities) > 0
		res.Summary = summarize(res.Diff.Entities)
		res.Revision = cur.Revision
		if opts.DryRun || !res.Changed {
			return nil
		}
		return apply(t, cur, target)
	}
	var err error
	if opts.DryRun {
		err = s.es.Read(ctx, groupID, run)
	} else {
		var rev int64
		rev, err = s.es.Write(entitystore.WithSource(ctx, entitystore.SourceImport), groupID, run)
		if err == nil {
			res.Revision = rev
			res.Diff.To = rev
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("import into group %s: %w", groupID, err)
	}
	return res, nil
}

func summarize(diffs []revisions.EntityDiff) Summary {
	sum := Summary{}
	for _, d := range diffs {
		c := sum[d.Type]
		switch d.Change {
		case revisions.Added:
			c.Created++
		case revisions.Changed:
			c.Updated++
		case revisions.Removed:
			c.Deleted++
		}
		sum[d.Type] = c
	}
	return sum
}

// kongNamespace is the namespace of the ids Kong derives for declarative entities that come
// without one (kong/db/schema/others/declarative_config.lua): uuid5(uuid5(ns, dao name), key).
var kongNamespace = uuid.MustParse("fd02801f-0957-4a15-a55a-c8d9606f30b5")

func derivedID(dao, key string) string {
	return uuid.NewSHA1(uuid.NewSHA1(kongNamespace, []byte(dao)), []byte(key)).String()
}

// item is one entity (or membership) of the file while it is planned.
type item struct {
	// e is the entity type; nil for a consumer group membership.
	e *schema.Entity
	// section is the file's top-level key the item came under; index its position there (for
	// top-level items) and shown its original form for errors, nested children left out.
	section string
	shown   map[string]any
	// input is the entity's own fields.
	input map[string]any
	// parent is the entity the item was nested in, and parentField the foreign key to it.
	parent      *item
	parentField string
	children    []*item
	// id is the entity's id; stableID says it came from the file or was derived, not drawn.
	id       string
	stableID bool
	doc      entitystore.Doc
	errs     []FieldError
}

func (it *item) fail(field, msg string) {
	typ := "entity"
	if field != "" {
		typ = "field"
	}
	it.errs = append(it.errs, FieldError{Type: typ, Field: field, Message: msg})
}

// planner turns a declarative file into the configuration it describes.
type planner struct {
	s         *Service
	cur       entitystore.Snapshot
	transform bool
	fields    map[string]any
	// roots are the top-level items per section; all every item in the order found.
	roots map[string][]*item
	all   []*item
	// byType lists the items of each type in file order.
	byType map[string][]*item
	// byID and byKey index the file's entities per type by id and by endpoint key.
	byID  map[string]map[string]*item
	byKey map[string]map[string]*item
	// existing indexes the current configuration: per type, unique key → id.
	existing map[string]map[string]string
	current  map[string]map[string]entitystore.Doc
	// seen counts content keys, so identical unnamed entities get distinct derived ids.
	seen map[string]int
}

// nestable lists, per parent type, the child types that may be nested in it and their foreign
// key to it.
func nestable(parent *schema.Entity) map[string]string {
	out := map[string]string{}
	for _, c := range schema.Entities() {
		for _, r := range c.Refs {
			if r.Entity == parent.Name && (parent.Field(c.Name) == nil) {
				out[c.Name] = r.Field
			}
		}
	}
	return out
}

// plan validates the file and returns the configuration it describes, or a *ValidationError.
func (s *Service) plan(cur entitystore.Snapshot, in map[string]any) (entitystore.Snapshot, error) {
	p := &planner{s: s, cur: cur, transform: true, fields: map[string]any{}, roots: map[string][]*item{},
		byType: map[string][]*item{}, byID: map[string]map[string]*item{}, byKey: map[string]map[string]*item{},
		existing: map[string]map[string]string{}, current: map[string]map[string]entitystore.Doc{}, seen: map[string]int{}}
	p.indexCurrent()
	p.collectTop(in)
	p.assignKeyIDs()
	for _, e := range schema.Entities() {
		for _, it := range p.byType[e.Name] {
			p.process(it)
		}
	}
	for _, it := range p.byType[entitystore.MembershipType] {
		p.membership(it)
	}
	p.checkUnique()
	if err := p.errors(); err != nil {
		return entitystore.Snapshot{}, err
	}
	return p.snapshot(), nil
}

func (p *planner) indexCurrent() {
	for _, e := range schema.Entities() {
		byID := map[string]entitystore.Doc{}
		keys := map[string]string{}
		for _, d := range p.cur.Entities[e.Name] {
			id, _ := d["id"].(string)
			byID[id] = d
			for _, k := range uniqueKeys(e, d) {
				keys[k] = id
			}
		}
		p.current[e.Name] = byID
		p.existing[e.Name] = keys
	}
}

// uniqueKeys returns the canonical strings of d's uniqueness constraints; single-field
// constraints on a null value are left out.
func uniqueKeys(e *schema.Entity, d map[string]any) []string {
	var out []string
	for i, u := range e.Unique {
		var b strings.Builder
		fmt.Fprintf(&b, "%d", i)
		skip := false
		for _, f := range u {
			v := d[f]
			if v == nil && len(u) == 1 {
				skip = true
				break
			}
			if id := refOf(v); id != "" {
				v = id
			}
			j, _ := json.Marshal(v)
			b.WriteByte('|')
			b.Write(j)
		}
		if !skip {
			out = append(out, b.String())
		}
	}
	return out
}

// refOf returns the id of a resolved foreign key {"id": x}, or "".
func refOf(v any) string {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		s, _ := m["id"].(string)
		return s
	}
	return ""
}

func (p *planner) collectTop(in map[string]any) {
	v, ok := in["_format_version"]
	switch {
	case !ok || v == nil:
		p.fields["_format_version"] = "required field missing"
	case v != FormatVersion:
		p.fields["_format_version"] = "expected one of: " + FormatVersion
	}
	if v, ok := in["_transform"]; ok && v != nil {
		b, isBool := v.(bool)
		if !isBool {
			p.fields["_transform"] = "expected a boolean"
		}
		p.transform = b || !isBool
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, "_") {
			continue // _format_version, _transform, _comment, _info, _workspace, …
		}
		var e *schema.Entity
		if k != entitystore.MembershipType {
			var ok bool
			if e, ok = schema.Lookup(k); !ok || e.Name != k {
				p.fields[k] = "unknown field"
				continue
			}
		}
		list, ok := in[k].([]any)
		if !ok {
			if in[k] != nil {
				p.fields[k] = "expected an array"
			}
			continue
		}
		p.collect(k, e, list, nil, "")
	}
}

// collect adds the items of one list; e is nil for memberships.
func (p *planner) collect(section string, e *schema.Entity, list []any, parent *item, parentField string) {
	for i, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			if s, isString := v.(string); isString && e != nil && e.Name == "snis" {
				m = map[string]any{"name": s} // certificates' snis as names
			} else {
				p.fields[fmt.Sprintf("%s.%d", section, i+1)] = "expected a record"
				continue
			}
		}
		it := &item{e: e, section: section, parent: parent, parentField: parentField, input: map[string]any{}, shown: map[string]any{}}
		typ := entitystore.MembershipType
		if e != nil {
			typ = e.Name
		}
		var nested map[string]string
		if e != nil {
			nested = nestable(e)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			val := m[k]
			if k == "_comment" || k == "_ignore" {
				continue
			}
			if e != nil {
				if field, ok := nested[k]; ok || (e.Name == "certificates" && k == "snis") {
					if k == "snis" {
						field = "certificate"
					}
					child, _ := schema.Lookup(k)
					if sub, ok := val.([]any); ok {
						p.collectChildren(it, child, sub, field)
					} else if val != nil {
						it.fail(k, "expected an array")
					}
					continue
				}
				// decK's memberships: consumers[].groups and consumer_groups[].consumers.
				if (e.Name == "consumers" && k == "groups") || (e.Name == "consumer_groups" && k == "consumers") {
					if sub, ok := val.([]any); ok {
						p.collectMembers(it, sub)
					} else if val != nil {
						it.fail(k, "expected an array")
					}
					continue
				}
			}
			it.input[k] = val
			it.shown[k] = val
		}
		if parent == nil {
			p.roots[section] = append(p.roots[section], it)
		} else {
			parent.children = append(parent.children, it)
		}
		p.add(typ, it)
	}
}

func (p *planner) collectChildren(parent *item, child *schema.Entity, list []any, field string) {
	p.collect(parent.section, child, list, parent, field)
}

// collectMembers adds the memberships decK nests in a consumer (groups: the consumer groups it
// belongs to) or in a consumer group (consumers: its members); entries name the other side.
func (p *planner) collectMembers(parent *item, list []any) {
	parentField, other := "consumer", "consumer_group"
	if parent.e.Name == "consumer_groups" {
		parentField, other = "consumer_group", "consumer"
	}
	wrapped := make([]any, 0, len(list))
	for _, v := range list {
		wrapped = append(wrapped, map[string]any{other: v})
	}
	p.collect(parent.section, nil, wrapped, parent, parentField)
}

func (p *planner) add(typ string, it *item) {
	p.all = append(p.all, it)
	p.byType[typ] = append(p.byType[typ], it)
	if it.e == nil {
		return
	}
	if id, ok := it.input["id"].(string); ok && id != "" {
		it.id, it.stableID = id, true
		if p.byID[typ] == nil {
			p.byID[typ] = map[string]*item{}
		}
		if _, dup := p.byID[typ][id]; !dup {
			p.byID[typ][id] = it
		}
	}
	if k := it.e.EndpointKey; k != "" {
		if s, ok := it.input[k].(string); ok && s != "" {
			if p.byKey[typ] == nil {
				p.byKey[typ] = map[string]*item{}
			}
			if _, dup := p.byKey[typ][s]; !dup {
				p.byKey[typ][s] = it
			}
		}
	}
}

// uniqueEndpointKey reports whether e's endpoint key is unique on its own, so that it names an
// entity across the whole configuration.
func uniqueEndpointKey(e *schema.Entity) bool {
	f := e.Field(e.EndpointKey)
	return f != nil && f.Unique
}

// assignKeyIDs gives entities without an id but with a unique endpoint key their id: the id of
// the current entity with that key, or Kong's derived id.
func (p *planner) assignKeyIDs() {
	for _, e := range schema.Entities() {
		if e.EndpointKey == "" || !uniqueEndpointKey(e) {
			continue
		}
		for _, it := range p.byType[e.Name] {
			key, ok := it.input[e.EndpointKey].(string)
			if it.id != "" || !ok || key == "" {
				continue
			}
			probe := map[string]any{e.EndpointKey: key}
			for _, k := range uniqueKeys(e, probe) {
				if id, ok := p.existing[e.Name][k]; ok && strings.HasPrefix(k, fmt.Sprint(indexOfUnique(e, e.EndpointKey))+"|") {
					it.id = id
				}
			}
			if it.id == "" {
				it.id = derivedID(e.Name, key)
			}
			it.stableID = true
			p.indexID(e.Name, it)
		}
	}
}

func indexOfUnique(e *schema.Entity, field string) int {
	for i, u := range e.Unique {
		if len(u) == 1 && u[0] == field {
			return i
		}
	}
	return -1
}

func (p *planner) indexID(typ string, it *item) {
	if p.byID[typ] == nil {
		p.byID[typ] = map[string]*item{}
	}
	if _, dup := p.byID[typ][it.id]; !dup {
		p.byID[typ][it.id] = it
	}
}

// resolve finds the file entity a reference names: a string (endpoint key first, then id) or a
// record {id} or {<endpoint key>}. It reports false, with the error already recorded on it, when
// nothing in the file matches.
func (p *planner) resolve(it *item, field, target string, v any) (string, bool) {
	pe, _ := schema.Lookup(target)
	var found *item
	switch x := v.(type) {
	case string:
		found = p.byKey[target][x]
		if found == nil {
			found = p.byID[target][x]
		}
	case map[string]any:
		if id, ok := x["id"].(string); ok {
			found = p.byID[target][id]
		} else if pe != nil && pe.EndpointKey != "" {
			if k, ok := x[pe.EndpointKey].(string); ok {
				found = p.byKey[target][k]
			}
		}
	default:
		it.fail(field, "expected a string or a record")
		return "", false
	}
	if found == nil || found.id == "" {
		shown, ok := v.(string)
		if !ok {
			j, _ := json.Marshal(v)
			shown = string(j)
		}
		it.fail(field, fmt.Sprintf("invalid reference '%s: %s' (no such entry in '%s')", field, shown, target))
		return "", false
	}
	return found.id, true
}

// process resolves the item's references, validates it with its schema and fixes its id.
func (p *planner) process(it *item) {
	e := it.e
	input := make(map[string]any, len(it.input)+1)
	for k, v := range it.input {
		input[k] = v
	}
	if it.parent != nil {
		input[it.parentField] = map[string]any{"id": it.parent.id}
		it.shown[it.parentField] = map[string]any{"id": it.parent.id}
	}
	for _, r := range e.Refs {
		v, ok := input[r.Field]
		if !ok || v == nil || (it.parent != nil && r.Field == it.parentField) {
			continue
		}
		if id, ok := p.resolve(it, r.Field, r.Entity, v); ok {
			input[r.Field] = map[string]any{"id": id}
		} else {
			delete(input, r.Field)
		}
	}
	if it.id != "" {
		input["id"] = it.id
	}
	target := e
	if e.Name == "plugins" {
		if name, ok := input["name"].(string); ok {
			if pl, ok := schema.LookupPlugin(name); ok {
				target = pl.Entity()
			}
		}
	}
	doc, _, perr := target.Process(schema.OpCreate, input, nil)
	if perr != nil {
		it.errs = append(it.errs, flattenFields(perr)...)
		if it.id == "" {
			it.id = uuid.NewString() // children still resolve to it
		}
		return
	}
	if len(it.errs) > 0 {
		if it.id == "" {
			it.id = uuid.NewString()
		}
		return
	}
	if e.Name == "basicauth_credentials" && !p.transform {
		// _transform: false says values are stored ones: the password is a hash already.
		if pw, ok := input["password"].(string); ok {
			doc["password"] = pw
		}
	}
	if v, ok := input["updated_at"]; ok {
		switch v.(type) {
		case int64, float64:
			doc["updated_at"] = v
		}
	}
	if it.id == "" {
		it.id, it.stableID = p.contentID(e, doc), true
		doc["id"] = it.id
		p.indexID(e.Name, it)
	}
	if old := p.current[e.Name][it.id]; old != nil {
		_, hasCreated := input["created_at"]
		_, hasUpdated := input["updated_at"]
		if sameExcept(old, doc, !hasCreated, !hasUpdated) {
			doc = old
		} else if !hasCreated {
			doc["created_at"] = old["created_at"]
		}
	}
	it.doc = doc
}

// contentID is the id of an entity the file gives no id and no unique endpoint key: the id of the
// current entity with the same unique key, or an id derived from its unique key, or from its
// content (so that importing the same file twice keeps every id).
func (p *planner) contentID(e *schema.Entity, doc entitystore.Doc) string {
	keys := uniqueKeys(e, doc)
	for _, k := range keys {
		if id, ok := p.existing[e.Name][k]; ok {
			return id
		}
	}
	var key string
	if len(keys) > 0 {
		key = keys[0]
	} else {
		c := make(map[string]any, len(doc))
		for k, v := range doc {
			if k != "id" && k != "created_at" && k != "updated_at" {
				c[k] = v
			}
		}
		j, _ := json.Marshal(c)
		key = string(j)
	}
	n := p.seen[e.Name+"\x00"+key]
	p.seen[e.Name+"\x00"+key] = n + 1
	if n > 0 {
		key = fmt.Sprintf("%s#%d", key, n)
	}
	return derivedID(e.Name, key)
}

// sameExcept reports whether a and b are equal, created_at and updated_at aside when asked.
func sameExcept(a, b entitystore.Doc, ignoreCreated, ignoreUpdated bool) bool {
	strip := func(d entitystore.Doc) map[string]any {
		m := make(map[string]any, len(d))
		for k, v := range d {
			if (k == "created_at" && ignoreCreated) || (k == "updated_at" && ignoreUpdated) {
				continue
			}
			m[k] = v
		}
		return m
	}
	ja, errA := json.Marshal(strip(a))
	jb, errB := json.Marshal(strip(b))
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// membership resolves one consumer group membership.
func (p *planner) membership(it *item) {
	ids := map[string]string{}
	for _, side := range []struct{ field, target string }{{"consumer_group", "consumer_groups"}, {"consumer", "consumers"}} {
		if it.parent != nil && it.parentField == side.field {
			ids[side.field] = it.parent.id
			it.shown[side.field] = map[string]any{"id": it.parent.id}
			continue
		}
		v, ok := it.input[side.field]
		if !ok || v == nil {
			it.fail(side.field, "required field missing")
			continue
		}
		if id, ok := p.resolve(it, side.field, side.target, v); ok {
			ids[side.field] = id
		}
	}
	for k := range it.input {
		if k != "consumer_group" && k != "consumer" && k != "created_at" {
			it.fail(k, "unknown field")
		}
	}
	if len(it.errs) == 0 {
		it.id = entitystore.MembershipID(ids["consumer_group"], ids["consumer"])
		it.doc = entitystore.Doc{"consumer_group": map[string]any{"id": ids["consumer_group"]}, "consumer": map[string]any{"id": ids["consumer"]}}
	}
}

// checkUnique reports entities that repeat an id or a unique key declared earlier in the file.
func (p *planner) checkUnique() {
	for _, e := range schema.Entities() {
		ids := map[string]bool{}
		keys := map[string]bool{}
		for _, it := range p.byType[e.Name] {
			if it.doc == nil {
				continue
			}
			dupKey := false
			for i, k := range uniqueKeys(e, it.doc) {
				if keys[k] {
					it.fail("", uniqueMessage(e, e.Unique[indexOfKey(k, i)], it.doc))
					dupKey = true
				}
				keys[k] = true
			}
			// An id derived from a repeated key repeats too; the key says more.
			if ids[it.id] && !dupKey {
				it.fail("", fmt.Sprintf("uniqueness violation: '%s' entity with primary key set to '%s' already declared", e.Name, it.id))
			}
			ids[it.id] = true
		}
	}
	seen := map[string]bool{}
	for _, it := range p.byType[entitystore.MembershipType] {
		if it.doc == nil {
			continue
		}
		if seen[it.id] {
			it.fail("", "uniqueness violation: 'consumer_group_consumers' entity with (consumer_group, consumer) set to ("+strings.Replace(it.id, ":", ", ", 1)+") already declared")
		}
		seen[it.id] = true
	}
}

// indexOfKey returns the constraint number a canonical unique key starts with.
func indexOfKey(k string, fallback int) int {
	var n int
	if _, err := fmt.Sscanf(k, "%d|", &n); err != nil {
		return fallback
	}
	return n
}

func uniqueMessage(e *schema.Entity, fields []string, d map[string]any) string {
	vals := make([]string, len(fields))
	for i, f := range fields {
		v := d[f]
		if id := refOf(v); id != "" {
			v = id
		}
		if v == nil {
			vals[i] = "null"
		} else {
			vals[i] = fmt.Sprint(v)
		}
	}
	if len(fields) == 1 {
		return fmt.Sprintf("uniqueness violation: '%s' entity with %s set to '%s' already declared", e.Name, fields[0], vals[0])
	}
	return fmt.Sprintf("uniqueness violation: '%s' entity with (%s) set to (%s) already declared", e.Name, strings.Join(fields, ", "), strings.Join(vals, ", "))
}

// snapshot is the planned configuration.
func (p *planner) snapshot() entitystore.Snapshot {
	snap := entitystore.Snapshot{Revision: p.cur.Revision, Entities: map[string][]entitystore.Doc{}}
	for _, e := range schema.Entities() {
		var docs []entitystore.Doc
		for _, it := range p.byType[e.Name] {
			docs = append(docs, it.doc)
		}
		if len(docs) == 0 {
			continue
		}
		sort.Slice(docs, func(i, j int) bool { return docs[i]["id"].(string) < docs[j]["id"].(string) })
		snap.Entities[e.Name] = docs
	}
	for _, it := range p.byType[entitystore.MembershipType] {
		snap.Memberships = append(snap.Memberships, entitystore.MembershipPair(it.doc))
	}
	sort.Slice(snap.Memberships, func(i, j int) bool {
		a, b := snap.Memberships[i], snap.Memberships[j]
		return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1])
	})
	return snap
}
