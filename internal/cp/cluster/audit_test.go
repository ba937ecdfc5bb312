package cluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire"
)

// TestInstanceCertificatesAudited: a certificate an instance obtains itself, by enrollment or
// renewal, is recorded with the credential it presented as the actor; a refused enrollment
// records nothing.
func TestInstanceCertificatesAudited(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st, nil)
		ctx := context.Background()
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr := csrPEM(t, key)
		tok, secret, err := e.c.CreateEnrollmentToken(ctx, e.group, time.Hour, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewTLSServer(e.c.Handler())
		defer srv.Close()
		enroll := func(token string) int {
			body, _ := json.Marshal(wire.EnrollRequest{Token: token, CSR: csr, Hostname: "edge-1"})
			req, _ := http.NewRequest(http.MethodPost, srv.URL+wire.EnrollPath, bytes.NewReader(body))
			req.Header.Set("User-Agent", "runtime/1")
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode
		}
		if s := enroll(secret); s != http.StatusOK {
			t.Fatalf("enroll = %d", s)
		}
		if s := enroll(secret); s != http.StatusUnauthorized {
			t.Fatalf("second enroll of a one-use token = %d", s)
		}
		entries, _, err := e.st.ListAudit(ctx, store.AuditQuery{OrgID: e.org.Org.ID, Action: AuditEnroll, Limit: 10})
		if err != nil || len(entries) != 1 {
			t.Fatalf("enroll entries = %+v, %v", entries, err)
		}
		en := entries[0]
		if en.ActorType != AuditActorEnrollmentToken || en.ActorID != tok.ID || en.GroupID != e.group || en.EntityType != AuditCertificates ||
			en.SourceAddr != "127.0.0.1" || en.UserAgent != "runtime/1" || en.Status != http.StatusOK || !strings.Contains(string(en.After), "BEGIN CERTIFICATE") ||
			strings.Contains(string(en.After)+en.ActorName, secret[5:20]) {
			t.Errorf("enroll entry = %+v", en)
		}

		// Renewal, as the listener calls it for an instance presenting its pinned certificate.
		pins, _ := e.c.Certificates(ctx, e.group)
		if len(pins) != 1 {
			t.Fatalf("pins = %+v", pins)
		}
		pending := &store.AuditEntry{SourceAddr: "192.0.2.7", Method: http.MethodPost, Path: wire.RenewPath}
		if _, _, err := e.c.Renew(store.WithPendingAudit(ctx, pending), peerIdentity{groupID: e.group, fingerprint: pins[0].Fingerprint}, csr); err != nil {
			t.Fatal(err)
		}
		entries, _, err = e.st.ListAudit(ctx, store.AuditQuery{OrgID: e.org.Org.ID, Action: AuditRenew, Limit: 10})
		if err != nil || len(entries) != 1 || entries[0].ActorType != AuditActorCertificate || entries[0].ActorID != pins[0].ID || entries[0].SourceAddr != "192.0.2.7" {
			t.Fatalf("renew entries = %+v, %v", entries, err)
		}
	})
}
