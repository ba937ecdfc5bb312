package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// TestAuditOfRequests: unsafe requests that write are recorded once with the status they
// answered, refusals (403) are recorded as denials, and requests that fail otherwise, are
// unauthenticated or only read are not recorded.
func TestAuditOfRequests(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		token := auth.NewToken()
		res, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
			AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}})
		if err != nil {
			t.Fatal(err)
		}
		a, err := api.New(api.Options{Store: s, Region: "us"})
		if err != nil {
			t.Fatal(err)
		}
		// A write whose handler answers 202, where the write predicts 201.
		a.Mount("POST /test/accepted", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := store.RuntimeGroup{ID: uuid.NewString(), OrgID: res.Org.ID, Region: "us", Name: "accepted", ClusterType: "CLUSTER_TYPE_CONTROL_PLANE",
				AuthType: "pinned_client_certs", CreatedAt: time.Now(), UpdatedAt: time.Now()}
			if err := s.CreateGroup(r.Context(), g); err != nil {
				t.Error(err)
			}
			w.WriteHeader(http.StatusAccepted)
		}))
		a.Mount("POST /test/{groupId}/forbidden", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			api.WriteProblem(w, r, &api.Problem{Status: http.StatusForbidden, Detail: "no"})
		}))
		a.Mount("GET /test/{groupId}/forbidden", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			api.WriteProblem(w, r, &api.Problem{Status: http.StatusForbidden, Detail: "no"})
		}))
		a.Mount("DELETE /test/invalid", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			api.WriteProblem(w, r, &api.Problem{Status: http.StatusBadRequest, Detail: "bad"})
		}))
		srv := httptest.NewServer(a.Handler())
		defer srv.Close()
		send := func(method, path, tok string) int {
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			req.Header.Set("X-Request-Id", method+path)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for _, c := range []struct {
			method, path, token string
			status              int
		}{
			{"POST", "/test/accepted", token, 202},
			{"POST", "/test/g1/forbidden", token, 403},
			{"GET", "/test/g1/forbidden", token, 403},
			{"DELETE", "/test/invalid", token, 400},
			{"POST", "/test/g1/forbidden", "", 401},
			{"POST", "/test/g1/forbidden", "gpat_unknown", 401},
		} {
			if got := send(c.method, c.path, c.token); got != c.status {
				t.Fatalf("%s %s = %d, want %d", c.method, c.path, got, c.status)
			}
		}
		entries, _, err := s.ListAudit(context.Background(), store.AuditQuery{OrgID: res.Org.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.RequestID+" "+e.Action+" "+http.StatusText(e.Status))
			if e.Action == store.ActionDenied && e.GroupID != "g1" {
				t.Errorf("the denial does not name the route's group: %+v", e)
			}
			if e.ActorID != res.Admin.ID || e.TokenID == "" || e.ActorType != store.KindUser || e.SourceAddr != "127.0.0.1" {
				t.Errorf("actor fields of %+v", e)
			}
		}
		want := "POST/test/g1/forbidden denied Forbidden|POST/test/accepted create Accepted"
		if strings.Join(got, "|") != want {
			t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(got, "|"), want)
		}
	})
}

// TestAuditOfHostileRequestFields sends a write whose user agent is long and multi-byte, with an
// invalid UTF-8 byte, and whose request id is not printable: the write still succeeds, and its
// entry holds valid UTF-8 within the bounds (PostgreSQL refuses invalid UTF-8 text, which would
// undo the write with its entry).
func TestAuditOfHostileRequestFields(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		token := auth.NewToken()
		res, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
			AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}})
		if err != nil {
			t.Fatal(err)
		}
		a, err := api.New(api.Options{Store: s, Region: "us"})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler())
		defer srv.Close()
		req, _ := http.NewRequest("POST", srv.URL+"/v2/runtime-groups", strings.NewReader(`{"name": "g"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "\xff"+strings.Repeat("é", 400))
		req.Header.Set("X-Request-Id", "id\xff")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("write with hostile headers: %d", resp.StatusCode)
		}
		if id := resp.Header.Get("X-Request-Id"); strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			t.Errorf("request id %q echoed with unprintable bytes", id)
		}
		entries, _, err := s.ListAudit(context.Background(), store.AuditQuery{OrgID: res.Org.ID, Limit: 10})
		if err != nil || len(entries) != 1 {
			t.Fatalf("entries %+v, %v", entries, err)
		}
		e := entries[0]
		for name, v := range map[string]string{"user agent": e.UserAgent, "request id": e.RequestID, "path": e.Path} {
			if !utf8.ValidString(v) {
				t.Errorf("%s %q is not valid UTF-8", name, v)
			}
		}
		if len(e.UserAgent) > 512 || !strings.HasSuffix(e.UserAgent, "é") {
			t.Errorf("user agent kept %d bytes, ending %q: want at most 512, cut between characters", len(e.UserAgent), e.UserAgent[max(0, len(e.UserAgent)-4):])
		}
	})
}
