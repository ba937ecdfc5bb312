package entitystore_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// TestWriteAudit: a write records one entry describing the entity asked for (not what the
// database cascaded), with redacted documents; a write whose entry cannot be recorded is not
// made and does not bump the revision.
func TestWriteAudit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		g, _ := twoGroups(t, s)
		es := entitystore.New(s)
		var org string
		if err := s.DB().QueryRow(`SELECT org_id FROM bootstrap`).Scan(&org); err != nil {
			t.Fatal(err)
		}
		consumers, keyauth := entity(t, "consumers"), entity(t, "keyauth_credentials")
		cons := process(t, "consumers", map[string]any{"username": "alice"})
		cred := process(t, "keyauth_credentials", map[string]any{"key": "kept-SECRET-key", "consumer": map[string]any{"id": cons["id"]}})
		write := func(method string, fn func(*entitystore.Tx) error) *store.AuditEntry {
			p := &store.AuditEntry{OrgID: org, ActorID: "u1", Method: method}
			if _, err := es.Write(store.WithPendingAudit(context.Background(), p), g, fn); err != nil {
				t.Fatal(err)
			}
			return p
		}
		write(http.MethodPost, func(tx *entitystore.Tx) error { return tx.Insert(consumers, cons) })
		write(http.MethodPost, func(tx *entitystore.Tx) error { return tx.Insert(keyauth, cred) })
		// Deleting the consumer cascades to its credential: one entry, for the consumer.
		write(http.MethodDelete, func(tx *entitystore.Tx) error { _, err := tx.Delete(consumers, cons["id"].(string)); return err })
		entries, _, err := s.ListAudit(context.Background(), store.AuditQuery{OrgID: org, Limit: 10})
		if err != nil || len(entries) != 3 {
			t.Fatalf("entries = %+v, %v", entries, err)
		}
		del, cr := entries[0], entries[1]
		if del.Action != store.ActionDelete || del.EntityType != "consumers" || del.EntityName != "alice" || del.After != nil || del.GroupID != g || del.Status != http.StatusNoContent {
			t.Errorf("delete entry = %+v", del)
		}
		if cr.Action != store.ActionCreate || cr.EntityType != "keyauth_credentials" || cr.EntityName != "" || cr.Before != nil || cr.Status != http.StatusCreated {
			t.Errorf("credential entry = %+v", cr)
		}
		var after map[string]any
		if err := json.Unmarshal(cr.After, &after); err != nil || after["key"] != "[redacted]" || strings.Contains(string(cr.After), "kept-SECRET") {
			t.Errorf("credential after = %s (%v)", cr.After, err)
		}

		// An entry that cannot be recorded (no such organization) undoes the write.
		rev, _ := es.Revision(context.Background(), g)
		other := process(t, "consumers", map[string]any{"username": "bob"})
		p := &store.AuditEntry{OrgID: "no-such-organization", Method: http.MethodPost}
		if _, err := es.Write(store.WithPendingAudit(context.Background(), p), g, func(tx *entitystore.Tx) error { return tx.Insert(consumers, other) }); err == nil {
			t.Fatal("the write succeeded without its entry")
		}
		if now, _ := es.Revision(context.Background(), g); now != rev {
			t.Errorf("revision moved from %d to %d", rev, now)
		}
		err = es.Read(context.Background(), g, func(tx *entitystore.Tx) error {
			_, err := tx.Get(consumers, other["id"].(string))
			return err
		})
		if err == nil {
			t.Error("the consumer was written")
		}
	})
}
