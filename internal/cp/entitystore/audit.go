package entitystore

import (
	"encoding/json"

	"github.com/gantry-gw/gantry/internal/config/schema"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/redact"
)

// Audit. Every Write that changes something records one audit entry in its transaction, with
// the request's pending entry (see sqlstore.Store.RecordAudit): for a write through the Admin
// API, the entity the writer asked to change (not the rows the database cascaded) with its
// document before and after, secrets redacted; for a rollback or an import, which change many
// entities at once, the group's configuration as a whole with the revision made and the count
// of changes per entity type.

// AuditEntityConfiguration is the entity type of the audit entries of rollbacks and imports.
const AuditEntityConfiguration = "configuration"

// recordPrimary records a change the writer asked for, and remembers the first as the one the
// audit entry describes.
func (t *Tx) recordPrimary(typ, id, key string, before, after []byte) {
	t.record(typ, id, key, before, after)
	if t.primary == nil {
		t.primary = t.changes[typ+"\x00"+id]
	}
}

// auditChange describes the transaction's change for the audit log; rev is the revision it
// makes.
func (t *Tx) auditChange(rev int64) store.AuditChange {
	c := store.AuditChange{GroupID: t.group}
	source := sourceFrom(t.ctx)
	if source != SourceAdminAPI || t.primary == nil {
		summary := map[string]Counts{}
		for _, p := range t.order {
			if p.before == nil && p.after == nil {
				continue
			}
			n := summary[p.typ]
			switch {
			case p.before == nil:
				n.Created++
			case p.after == nil:
				n.Deleted++
			default:
				n.Updated++
			}
			summary[p.typ] = n
		}
		c.Action, c.EntityType, c.EntityID = source, AuditEntityConfiguration, t.group
		if source == SourceAdminAPI {
			c.Action = store.ActionUpdate
		}
		c.After = map[string]any{"revision": rev, "changes": summary}
		return c
	}
	p := t.primary
	c.EntityType, c.EntityID, c.EntityName = p.typ, p.id, p.key
	if e, ok := schema.Lookup(p.typ); ok && e.EndpointKey != "" && redact.IsSecretField(p.typ, e.EndpointKey) {
		// The endpoint key is the secret itself (a key-auth credential's key).
		c.EntityName = ""
	}
	switch {
	case p.before == nil:
		c.Action = store.ActionCreate
	case p.after == nil:
		c.Action = store.ActionDelete
	default:
		c.Action = store.ActionUpdate
	}
	if p.before != nil {
		c.Before = json.RawMessage(p.before)
	}
	if p.after != nil {
		c.After = json.RawMessage(p.after)
	}
	return c
}
