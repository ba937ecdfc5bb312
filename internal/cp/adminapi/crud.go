package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/google/uuid"
)

// Doc is an entity document: every field present, unset ones nil, foreign keys as {"id": …}.
type Doc = entitystore.Doc

// scope restricts a nested entity to one parent: doc[field] must reference parentID.
type scope struct {
	field    string
	parentID string
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// refID returns the id of a foreign key value {"id": "…"}, or "".
func refID(v any) string {
	if m, ok := v.(map[string]any); ok {
		if id, ok := m["id"].(string); ok {
			return id
		}
	}
	return ""
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// errAbsent is the not-found error of lookups; it wraps store.ErrNotFound so that writeError
// answers Kong's bare 404.
var errAbsent = fmt.Errorf("entity: %w", store.ErrNotFound)

// find resolves a URL key to an entity: a UUID addresses the id, anything else the entity's
// endpoint key (targets by host:port within their upstream, certificates by one of their SNI
// names, ACLs by group within their consumer). With a scope, an entity of another parent is
// absent too.
func find(tx *entitystore.Tx, e *schema.Entity, key string, sc *scope) (Doc, error) {
	var doc Doc
	var err error
	switch {
	case isUUID(key):
		doc, err = tx.Get(e, key)
	case e.Name == "certificates":
		snis, _ := schema.Lookup("snis")
		var sni Doc
		if sni, err = tx.FindBy(snis, "name", key); err == nil {
			doc, err = tx.Get(e, refID(sni["certificate"]))
		}
	case e.Name == "targets" || e.Name == "acls":
		if sc == nil {
			return nil, errAbsent
		}
		field, want := "target", schema.NormalizeTarget(key)
		if e.Name == "acls" {
			field, want = "group", key
		}
		doc, err = scan(tx, e, sc, func(d Doc) bool { return d[field] == want })
	case e.EndpointKey != "":
		// Kong's DAO validates the key as the endpoint-key field before any lookup
		// (select_by_/upsert_by_/delete_by_ in kong/db/dao/init.lua): PUT /vaults/env is code
		// 10, not a 404 or a create. Only vaults do it here for now: the other entity types'
		// answers to invalid keys are pinned by their own tests.
		if e.Name == "vaults" {
			if kerr := e.CheckKey(e.EndpointKey, key); kerr != nil {
				return nil, kerr
			}
		}
		doc, err = tx.FindBy(e, e.EndpointKey, key)
	default:
		return nil, errAbsent
	}
	if err != nil {
		return nil, err
	}
	if sc != nil && refID(doc[sc.field]) != sc.parentID || expired(e, doc) {
		return nil, errAbsent
	}
	return doc, nil
}

// scan pages through the children of one parent for the first that matches.
func scan(tx *entitystore.Tx, e *schema.Entity, sc *scope, match func(Doc) bool) (Doc, error) {
	q := entitystore.ListQuery{Parent: sc.field, ParentID: sc.parentID, Limit: maxPageSize}
	for {
		docs, more, err := tx.List(e, q)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if match(d) {
				return d, nil
			}
		}
		if !more || len(docs) == 0 {
			return nil, errAbsent
		}
		q.After, _ = docs[len(docs)-1]["id"].(string)
	}
}

// resolveScope finds the parent of a nested path; an absent parent is Kong's bare 404.
func resolveScope(tx *entitystore.Tx, ps *parentSel) (*scope, error) {
	if ps == nil {
		return nil, nil
	}
	parent, err := find(tx, ps.e, ps.key, nil)
	if err != nil {
		return nil, err
	}
	id, _ := parent["id"].(string)
	return &scope{field: ps.field, parentID: id}, nil
}

// resolveRefs rewrites the foreign keys of input to {"id": …} as Kong's DAO does before it
// validates a write (resolve_foreign in kong/db/dao/init.lua): a reference with a valid id keeps
// only the id, whatever else it carries (decK sends {"id", "name"}); one without is resolved by
// the parent's unique fields and endpoint key ({"name": "svc"}, {"username": "alice"}), in the
// parent's field order, in the same transaction. A value that names no entity is Kong's code 13;
// a value that is not a valid key is that field's schema violation ("service.name: invalid
// value …"); a reference with neither is left to validation ("service.id: missing primary key").
func resolveRefs(tx *entitystore.Tx, e *schema.Entity, input map[string]any) error {
	for _, r := range e.Refs {
		m, ok := input[r.Field].(map[string]any)
		if !ok {
			continue
		}
		if id, ok := m["id"].(string); ok && isUUID(id) {
			input[r.Field] = map[string]any{"id": id}
			continue
		}
		parent, _ := schema.Lookup(r.Entity)
		if parent == nil {
			continue
		}
		var invalid map[string]any
		for _, f := range parent.Fields {
			if !f.Unique && f.Name != parent.EndpointKey {
				continue
			}
			s, ok := m[f.Name].(string)
			if !ok {
				continue
			}
			if kerr := parent.CheckKey(f.Name, s); kerr != nil {
				if invalid == nil {
					invalid = map[string]any{}
				}
				invalid[f.Name] = kerr.Message
				continue
			}
			doc, err := tx.FindBy(parent, f.Name, s)
			if isNotFound(err) {
				return schema.ForeignKeyUnresolved(r.Field, f.Name, s, r.Entity)
			}
			if err != nil {
				return err
			}
			input[r.Field] = map[string]any{"id": doc["id"]}
			invalid = nil
			break
		}
		if invalid != nil {
			return schema.SchemaViolation(map[string]any{r.Field: invalid})
		}
	}
	return nil
}

// schemaFor is the schema a write is checked against: plugins by their name.
func schemaFor(e *schema.Entity, input, existing map[string]any) *schema.Entity {
	if e.Name != "plugins" {
		return e
	}
	name, ok := input["name"].(string)
	if !ok && existing != nil {
		name, _ = existing["name"].(string)
	}
	if p, ok := schema.LookupPlugin(name); ok {
		return p.Entity()
	}
	return e
}

// body reads the request body; form bodies are coerced later by the schema of the write.
func (c *call) body() (map[string]any, bool, error) {
	return c.h.readBody(c.r)
}

// process prepares a document: coerce form values, resolve references, validate and default.
func (c *call) process(tx *entitystore.Tx, e *schema.Entity, op schema.Op, input, existing map[string]any, form bool) (Doc, map[string]any, error) {
	if form {
		coerceForm(schemaFor(e, input, existing), input)
	}
	if err := resolveRefs(tx, e, input); err != nil {
		return nil, nil, err
	}
	stored := existing
	if e.TTL && existing != nil {
		// The stored expiry is not a schema field; the write decides it below.
		existing = withoutKey(existing, "ttl")
	}
	doc, transient, perr := e.Process(op, input, existing)
	if perr != nil {
		return nil, nil, perr
	}
	if e.TTL {
		setExpiry(op, doc, transient, stored, time.Now().Unix())
	}
	if e.Name == "basicauth_credentials" && c.r.URL.Query().Get("skip_hash") == "true" {
		// The client sends a password it hashed already (decK syncing a dump).
		if pw, ok := input["password"].(string); ok {
			doc["password"] = pw
		}
	}
	return doc, transient, nil
}

// afterWrite applies the transient parts of a write (a certificate's SNI names) and renders the
// stored entity.
func (c *call) afterWrite(tx *entitystore.Tx, e *schema.Entity, doc Doc, transient map[string]any) (Doc, error) {
	if e.Name == "certificates" {
		if names, ok := transient["snis"]; ok {
			if err := syncSNIs(tx, doc, names); err != nil {
				return nil, err
			}
		}
	}
	return render(tx, e, doc)
}

// A ttl-enabled entity (key-auth credentials) stores its expiry in the document as "ttl": the
// absolute Unix time, the form Kong's control plane exports to data planes (schema.TTLExpiry
// also reads the relative form a declarative file may carry). The Admin API reports the seconds
// left, as Kong does (its postgres strategy selects FLOOR(ttl - CURRENT_TIMESTAMP)), and an
// expired entity reads as absent.

// setExpiry stores the expiry of a write: ttl seconds from now when the body gives one (0 or
// null: none), the stored expiry for an update that names none, none otherwise.
func setExpiry(op schema.Op, doc Doc, transient map[string]any, stored Doc, now int64) {
	delete(doc, "ttl")
	if v, given := transient["ttl"]; given {
		if ttl, ok := toInt64(v); ok && ttl > 0 {
			doc["ttl"] = now + ttl
		}
		return
	}
	if op == schema.OpUpdate && stored != nil && stored["ttl"] != nil {
		doc["ttl"] = stored["ttl"]
	}
}

// secondsLeft returns how long a document with an expiry has left (negative once expired).
func secondsLeft(doc Doc, now int64) (int64, bool) {
	ttl, ok := toInt64(doc["ttl"])
	if !ok {
		return 0, false
	}
	created, _ := toInt64(doc["created_at"])
	return schema.TTLExpiry(ttl, created) - now, true
}

// expired reports whether a document of a ttl-enabled entity is past its expiry.
func expired(e *schema.Entity, doc Doc) bool {
	if !e.TTL {
		return false
	}
	left, ok := secondsLeft(doc, time.Now().Unix())
	return ok && left < 0
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}

// withoutKey returns a shallow copy of d without key.
func withoutKey(d Doc, key string) Doc {
	out := make(Doc, len(d))
	for k, v := range d {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// render returns the answer form of a stored entity: certificates carry their SNI names,
// entities with an expiry the seconds they have left.
func render(tx *entitystore.Tx, e *schema.Entity, doc Doc) (Doc, error) {
	if e.TTL {
		if left, ok := secondsLeft(doc, time.Now().Unix()); ok {
			doc["ttl"] = max(left, 0)
		}
	}
	if e.Name == "certificates" {
		id, _ := doc["id"].(string)
		names, err := sniNames(tx, id)
		if err != nil {
			return nil, err
		}
		doc["snis"] = names
	}
	return doc, nil
}

func sniNames(tx *entitystore.Tx, certID string) ([]any, error) {
	snis, _ := schema.Lookup("snis")
	var names []string
	q := entitystore.ListQuery{Parent: "certificate", ParentID: certID, Limit: maxPageSize}
	for {
		docs, more, err := tx.List(snis, q)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if n, ok := d["name"].(string); ok {
				names = append(names, n)
			}
		}
		if !more || len(docs) == 0 {
			break
		}
		q.After, _ = docs[len(docs)-1]["id"].(string)
	}
	sort.Strings(names)
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = n
	}
	return out, nil
}

// syncSNIs makes the certificate's SNI entities exactly the given names: new names are created,
// missing ones deleted, and a name that belongs to another certificate is refused as Kong does.
func syncSNIs(tx *entitystore.Tx, cert Doc, v any) error {
	snis, _ := schema.Lookup("snis")
	certID, _ := cert["id"].(string)
	want := map[string]bool{}
	var order []string
	list, _ := v.([]any)
	for _, n := range list {
		s, _ := n.(string)
		if !want[s] {
			want[s] = true
			order = append(order, s)
		}
	}
	current, _, err := tx.List(snis, entitystore.ListQuery{Parent: "certificate", ParentID: certID})
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, d := range current {
		name, _ := d["name"].(string)
		if want[name] {
			have[name] = true
			continue
		}
		if _, err := tx.Delete(snis, d["id"].(string)); err != nil {
			return err
		}
	}
	for _, name := range order {
		if have[name] {
			continue
		}
		other, err := tx.FindBy(snis, "name", name)
		if err == nil {
			return schema.SchemaViolation(map[string]any{
				"snis": fmt.Sprintf("%s already associated with existing certificate '%s'", name, refID(other["certificate"])),
			})
		}
		if !isNotFound(err) {
			return err
		}
		doc, _, perr := snis.Process(schema.OpCreate, map[string]any{"name": name, "certificate": map[string]any{"id": certID}}, nil)
		if perr != nil {
			return perr
		}
		if err := tx.Insert(snis, doc); err != nil {
			return err
		}
	}
	return nil
}

func (c *call) list(e *schema.Entity, ps *parentSel) error {
	q := c.r.URL.Query()
	p, err := parsePage(q, e.Field("tags") != nil)
	if err != nil {
		return err
	}
	if e.Name == "consumers" && ps == nil && q.Has("custom_id") {
		return c.consumerByCustomID(q["custom_id"])
	}
	lq := p.query()
	var docs []Doc
	var more bool
	err = c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return err
		}
		if sc != nil {
			lq.Parent, lq.ParentID = sc.field, sc.parentID
		}
		if docs, more, err = tx.List(e, lq); err != nil {
			return err
		}
		docs = slices.DeleteFunc(docs, func(d Doc) bool { return expired(e, d) })
		for i, d := range docs {
			if docs[i], err = render(tx, e, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, pageBody(docs, more, c.relPath(c.segs...), p))
}

// consumerByCustomID answers GET /consumers?custom_id= as kong/api/routes/consumers.lua does: one
// non-empty value is required, and the answer is the one consumer with it (or none), without
// paging or tag filters.
func (c *call) consumerByCustomID(values []string) error {
	if len(values) != 1 || values[0] == "" {
		return badRequest("custom_id must be an unempty string")
	}
	data := []Doc{}
	err := c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		d, err := tx.FindBy(consumers(), "custom_id", values[0])
		if err == nil {
			data = append(data, d)
		}
		if isNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]any{"data": data, "next": nil})
}

func (c *call) get(e *schema.Entity, key string, ps *parentSel) error {
	return c.readDoc(func(tx *entitystore.Tx) (Doc, error) {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return nil, err
		}
		doc, err := find(tx, e, key, sc)
		if err != nil {
			return nil, err
		}
		return render(tx, e, doc)
	})
}

// readDoc answers 200 with the document read reads in one read transaction.
func (c *call) readDoc(read func(tx *entitystore.Tx) (Doc, error)) error {
	var out Doc
	err := c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) (err error) {
		out, err = read(tx)
		return err
	})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, out)
}

// writeDoc reads the request body, runs write with it in one write transaction (one revision)
// and answers status with the document write returns.
func (c *call) writeDoc(status int, write func(tx *entitystore.Tx, input map[string]any, form bool) (Doc, error)) error {
	input, form, err := c.body()
	if err != nil {
		return err
	}
	var out Doc
	_, err = c.h.es.Write(c.r.Context(), c.group, func(tx *entitystore.Tx) (err error) {
		out, err = write(tx, input, form)
		return err
	})
	if err != nil {
		return err
	}
	return c.reply(status, out)
}

func (c *call) create(e *schema.Entity, ps *parentSel) error {
	return c.writeDoc(http.StatusCreated, func(tx *entitystore.Tx, input map[string]any, form bool) (Doc, error) {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return nil, err
		}
		if sc != nil {
			input[sc.field] = map[string]any{"id": sc.parentID}
		}
		doc, transient, err := c.process(tx, e, schema.OpCreate, input, nil, form)
		if err != nil {
			return nil, err
		}
		if err := tx.Insert(e, doc); err != nil {
			return nil, err
		}
		return c.afterWrite(tx, e, doc, transient)
	})
}

func (c *call) put(e *schema.Entity, key string, ps *parentSel) error {
	return c.writeDoc(http.StatusOK, func(tx *entitystore.Tx, input map[string]any, form bool) (Doc, error) {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return nil, err
		}
		if _, ok := input["snis"]; !ok && e.Name == "certificates" && ps == nil {
			// A replace without snis leaves the certificate with none (kong/api/routes/
			// certificates.lua sets them to null for PUT).
			input["snis"] = nil
		}
		return c.upsert(tx, e, key, input, sc, form)
	})
}

// upsert is PUT: a full replace of the entity the key addresses, or its creation with that id or
// endpoint key. The URL key wins over the body.
func (c *call) upsert(tx *entitystore.Tx, e *schema.Entity, key string, input map[string]any, sc *scope, form bool) (Doc, error) {
	existing, err := find(tx, e, key, sc)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	switch {
	case isUUID(key):
		input["id"] = key
	case e.Name == "certificates":
		// PUT /certificates/{sni} creates a certificate serving that name.
		names, _ := input["snis"].([]any)
		found := false
		for _, n := range names {
			found = found || n == key
		}
		if !found {
			input["snis"] = append(names, key)
		}
	case e.Name == "acls":
		input["group"] = key
	case e.EndpointKey != "":
		input[e.EndpointKey] = key
	default:
		return nil, errAbsent
	}
	if existing != nil {
		input["id"] = existing["id"]
		// A replace keeps the creation time unless the client sends one (decK does).
		if _, ok := input["created_at"]; !ok {
			input["created_at"] = existing["created_at"]
		}
	}
	if sc != nil {
		input[sc.field] = map[string]any{"id": sc.parentID}
	}
	doc, transient, err := c.process(tx, e, schema.OpUpsert, input, existing, form)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		err = tx.Replace(e, doc)
	} else {
		err = tx.Insert(e, doc)
	}
	if err != nil {
		return nil, err
	}
	return c.afterWrite(tx, e, doc, transient)
}

func (c *call) patch(e *schema.Entity, key string, ps *parentSel) error {
	return c.writeDoc(http.StatusOK, func(tx *entitystore.Tx, input map[string]any, form bool) (Doc, error) {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return nil, err
		}
		return c.update(tx, e, key, input, sc, form)
	})
}

// update is PATCH: input merged into the entity the key addresses; Kong's code 6 when absent.
func (c *call) update(tx *entitystore.Tx, e *schema.Entity, key string, input map[string]any, sc *scope, form bool) (Doc, error) {
	existing, err := find(tx, e, key, sc)
	if isNotFound(err) {
		if isUUID(key) || e.EndpointKey == "" {
			return nil, schema.NotFound(map[string]any{"id": key})
		}
		return nil, schema.NotFound(map[string]any{e.EndpointKey: key})
	}
	if err != nil {
		return nil, err
	}
	if sc != nil {
		if _, ok := input[sc.field]; !ok {
			input[sc.field] = map[string]any{"id": sc.parentID}
		}
	}
	doc, transient, err := c.process(tx, e, schema.OpUpdate, input, existing, form)
	if err != nil {
		return nil, err
	}
	if err := tx.Replace(e, doc); err != nil {
		return nil, err
	}
	return c.afterWrite(tx, e, doc, transient)
}

func (c *call) delete(e *schema.Entity, key string, ps *parentSel) error {
	_, err := c.h.es.Write(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return err
		}
		doc, err := find(tx, e, key, sc)
		if isNotFound(err) && sc == nil {
			// Kong answers 204 whether or not the entity existed; under a parent, an entity
			// that is absent or another parent's is its bare 404.
			return nil
		}
		if err != nil {
			return err
		}
		if e.Name == "ca_certificates" {
			if err := caInUse(tx, doc["id"].(string)); err != nil {
				return err
			}
		}
		_, err = tx.Delete(e, doc["id"].(string))
		return err
	})
	if err != nil {
		return err
	}
	return c.noContent()
}

// caInUse refuses to delete a CA certificate that a service still lists in ca_certificates, with
// the answer of kong/api/routes/ca_certificates.lua (a 400 with a plain message).
func caInUse(tx *entitystore.Tx, id string) error {
	services, _ := schema.Lookup("services")
	docs, err := all(tx, services, entitystore.ListQuery{})
	if err != nil {
		return err
	}
	for _, d := range docs {
		list, _ := d["ca_certificates"].([]any)
		for _, v := range list {
			if v == id {
				return badRequest(fmt.Sprintf("ca_certificate %s is still referenced by services (id = %s)", id, d["id"]))
			}
		}
	}
	return nil
}

// getTarget answers GET /upstreams/{u}/targets/{t}: a target of weight 0 is disabled and Kong
// answers it as absent (select_target_cb).
func (c *call) getTarget(e *schema.Entity, key string, ps *parentSel) error {
	return c.readDoc(func(tx *entitystore.Tx) (Doc, error) {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return nil, err
		}
		doc, err := find(tx, e, key, sc)
		if err != nil {
			return nil, err
		}
		if w, ok := doc["weight"].(int64); ok && w == 0 {
			return nil, errAbsent
		}
		return doc, nil
	})
}

// updateTarget answers PUT and PATCH of /upstreams/{u}/targets/{t}: the target found by id or
// host:port is updated with the body; an absent one is a bare 404 (Kong's update_target_cb).
func (c *call) updateTarget(e *schema.Entity, key string, ps *parentSel) error {
	return c.writeDoc(http.StatusOK, func(tx *entitystore.Tx, input map[string]any, form bool) (Doc, error) {
		sc, err := resolveScope(tx, ps)
		if err != nil {
			return nil, err
		}
		doc, err := find(tx, e, key, sc)
		if err != nil {
			return nil, err
		}
		return c.update(tx, e, doc["id"].(string), input, sc, form)
	})
}

// foreign resolves /{e}/{key}/{ref.Field}: the child entity and the id it references ("" when
// the reference is null).
func foreign(tx *entitystore.Tx, e *schema.Entity, key string, ref *schema.Ref) (Doc, *schema.Entity, string, error) {
	child, err := find(tx, e, key, nil)
	if err != nil {
		return nil, nil, "", err
	}
	pe, ok := schema.Lookup(ref.Entity)
	if !ok {
		return nil, nil, "", errAbsent
	}
	return child, pe, refID(child[ref.Field]), nil
}

func (c *call) getForeign(e *schema.Entity, key string, ref *schema.Ref) error {
	return c.readDoc(func(tx *entitystore.Tx) (Doc, error) {
		_, pe, id, err := foreign(tx, e, key, ref)
		if err != nil {
			return nil, err
		}
		if id == "" {
			return nil, errAbsent
		}
		doc, err := tx.Get(pe, id)
		if err != nil {
			return nil, err
		}
		return render(tx, pe, doc)
	})
}

func (c *call) patchForeign(e *schema.Entity, key string, ref *schema.Ref) error {
	return c.writeDoc(http.StatusOK, func(tx *entitystore.Tx, input map[string]any, form bool) (Doc, error) {
		_, pe, id, err := foreign(tx, e, key, ref)
		if err != nil {
			return nil, err
		}
		if id == "" {
			return nil, errAbsent
		}
		return c.update(tx, pe, id, input, nil, form)
	})
}

// deleteForeign answers DELETE /{e}/{key}/{ref.Field} as kong/api/endpoints.lua does: the
// referenced entity is never deleted this way (405), and a child that is absent or references
// nothing is a bare 404.
func (c *call) deleteForeign(e *schema.Entity, key string, ref *schema.Ref) error {
	return c.h.es.Read(c.r.Context(), c.group, func(tx *entitystore.Tx) error {
		_, _, id, err := foreign(tx, e, key, ref)
		if err != nil {
			return err
		}
		if id == "" {
			return errAbsent
		}
		return errMethodNotAllowed
	})
}

// putForeign replaces the referenced entity; when the reference is null, Kong creates the entity
// and points the child at it.
func (c *call) putForeign(e *schema.Entity, key string, ref *schema.Ref) error {
	return c.writeDoc(http.StatusOK, func(tx *entitystore.Tx, input map[string]any, form bool) (Doc, error) {
		child, pe, id, err := foreign(tx, e, key, ref)
		if err != nil {
			return nil, err
		}
		associate := id == ""
		if associate {
			id = uuid.NewString()
		}
		out, err := c.upsert(tx, pe, id, input, nil, form)
		if err != nil || !associate {
			return out, err
		}
		doc, _, perr := e.Process(schema.OpUpdate, map[string]any{ref.Field: map[string]any{"id": id}}, child)
		if perr != nil {
			return nil, perr
		}
		return out, tx.Replace(e, doc)
	})
}
