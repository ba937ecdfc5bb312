package revisions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/revisions"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// apiEnv is the management API with the Admin API and the revision routes on a real store.
type apiEnv struct {
	t     *testing.T
	st    *sqlstore.Store
	es    *entitystore.Store
	srv   *httptest.Server
	token string
	user  string
	group string
}

func newAPIEnv(t *testing.T, st *sqlstore.Store) *apiEnv {
	t.Helper()
	tok := auth.NewToken()
	res, err := st.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(tok), Hint: auth.Hint(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	es := entitystore.New(st)
	es.SetActor(func(ctx context.Context) entitystore.Actor {
		p, _ := api.PrincipalFrom(ctx)
		return entitystore.Actor{UserID: p.UserID, TokenID: p.TokenID}
	})
	a, err := api.New(api.Options{Store: st, Region: "us"})
	if err != nil {
		t.Fatal(err)
	}
	if err := adminapi.Register(a, es, nil); err != nil {
		t.Fatal(err)
	}
	rs, err := revisions.New(revisions.Options{Entities: es})
	if err != nil {
		t.Fatal(err)
	}
	rs.Mount(a)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &apiEnv{t: t, st: st, es: es, srv: srv, token: tok, user: res.Admin.ID, group: res.Group.ID}
}

// do sends a request and decodes a JSON answer into a map.
func (e *apiEnv) do(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
		}
	}
	return res.StatusCode, out
}

func (e *apiEnv) must(want int, method, path string, body any) map[string]any {
	e.t.Helper()
	code, out := e.do(method, path, body)
	if code != want {
		e.t.Fatalf("%s %s: %d %v, want %d", method, path, code, out, want)
	}
	return out
}

func TestRevisionsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newAPIEnv(t, st)
		core := "/v2/runtime-groups/" + e.group + "/core-entities"
		revs := "/v2/runtime-groups/" + e.group + "/revisions"

		e.must(201, "POST", core+"/services", map[string]any{"name": "billing", "url": "http://billing.internal"})
		e.must(201, "POST", core+"/services/billing/routes", map[string]any{"name": "billing", "paths": []any{"/billing"}})
		e.must(200, "PATCH", core+"/services/billing", map[string]any{"host": "billing-v2.internal"})
		e.must(201, "POST", core+"/services/billing/routes", map[string]any{"name": "later", "paths": []any{"/later"}})

		// List, newest first, paged.
		out := e.must(200, "GET", revs+"?page[size]=3&page[number]=1", nil)
		data := out["data"].([]any)
		if len(data) != 3 || num(data[0]) != 4 || num(data[2]) != 2 {
			t.Fatalf("list: %v", out)
		}
		if page := out["meta"].(map[string]any)["page"].(map[string]any); page["total"] != float64(4) || page["size"] != float64(3) || page["number"] != float64(1) {
			t.Errorf("meta.page: %v", page)
		}
		first := data[0].(map[string]any)
		actor, _ := first["actor"].(map[string]any)
		if first["source"] != "admin-api" || actor["user_id"] != e.user || actor["token_id"] == "" || actor["token_id"] == nil {
			t.Errorf("revision 4: %v", first)
		}
		if s := first["summary"].(map[string]any)["routes"].(map[string]any); s["created"] != float64(1) {
			t.Errorf("summary of revision 4: %v", first["summary"])
		}
		out = e.must(200, "GET", revs+"?page[size]=3&page[number]=2", nil)
		if data := out["data"].([]any); len(data) != 1 || num(data[0]) != 1 {
			t.Errorf("page 2: %v", out)
		}

		// One revision, with its configuration on request.
		out = e.must(200, "GET", revs+"/2", nil)
		if out["config"] != nil || num(out) != 2 {
			t.Errorf("revision 2 without include: %v", out)
		}
		out = e.must(200, "GET", revs+"/2?include=config", nil)
		config := out["config"].(map[string]any)
		if config["_format_version"] != "3.0" || len(config["routes"].([]any)) != 1 || out["config_hash"] == nil {
			t.Errorf("revision 2 config: %v", out)
		}

		// Diffs: default against n-1, and across several revisions.
		out = e.must(200, "GET", revs+"/3/diff", nil)
		if out["from"] != float64(2) || out["to"] != float64(3) {
			t.Errorf("diff 3: %v", out)
		}
		ents := out["entities"].([]any)
		if len(ents) != 1 || ents[0].(map[string]any)["change"] != "changed" || !containsAll(ents[0].(map[string]any)["fields"], "host") {
			t.Errorf("diff 3 against 2: %v", ents)
		}
		out = e.must(200, "GET", "/v2/control-planes/"+e.group+"/revisions/4/diff?against=1", nil)
		if ents := out["entities"].([]any); len(ents) != 3 {
			t.Errorf("diff 4 against 1: %v", ents)
		}

		// Roll back to 2: the later route is gone, the service's host is back.
		out = e.must(201, "POST", revs+"/2/rollback", nil)
		if num(out) != 5 || out["source"] != "rollback" {
			t.Errorf("rollback: %v", out)
		}
		if routes := e.must(200, "GET", core+"/routes", nil)["data"].([]any); len(routes) != 1 || routes[0].(map[string]any)["name"] != "billing" {
			t.Errorf("routes after rollback: %v", routes)
		}
		if svc := e.must(200, "GET", core+"/services/billing", nil); svc["host"] != "billing.internal" {
			t.Errorf("service after rollback: %v", svc)
		}
		out = e.must(200, "GET", revs+"/5/diff?against=2", nil)
		if ents := out["entities"].([]any); len(ents) != 0 {
			t.Errorf("rollback differs from its target: %v", ents)
		}
		// Rolling back to the current configuration is a no-op answer.
		out = e.must(200, "POST", revs+"/5/rollback", nil)
		if num(out) != 5 {
			t.Errorf("no-op rollback: %v", out)
		}
		if list := e.must(200, "GET", revs, nil); list["meta"].(map[string]any)["page"].(map[string]any)["total"] != float64(5) {
			t.Errorf("no-op rollback made a revision: %v", list["meta"])
		}

		// Errors.
		for _, c := range []struct {
			method, path string
			status       int
			field        string
		}{
			{"GET", revs + "/abc", 400, "revision"},
			{"GET", revs + "/0", 400, "revision"},
			{"GET", revs + "/2?include=everything", 400, "include"},
			{"GET", revs + "?page[size]=0", 400, "page[size]"},
			{"GET", revs + "?page[size]=1001", 400, "page[size]"},
			{"GET", revs + "?page[number]=x", 400, "page[number]"},
			{"GET", revs + "/3/diff?against=-1", 400, "against"},
			{"POST", revs + "/x/rollback", 400, "revision"},
			{"GET", revs + "/99", 404, ""},
			{"GET", revs + "/3/diff?against=77", 404, ""},
			{"POST", revs + "/99/rollback", 404, ""},
			{"GET", "/v2/runtime-groups/" + uuid.NewString() + "/revisions", 404, ""},
		} {
			code, out := e.do(c.method, c.path, nil)
			if code != c.status {
				t.Errorf("%s %s: %d %v, want %d", c.method, c.path, code, out, c.status)
				continue
			}
			if c.field != "" {
				params, _ := out["invalid_parameters"].([]any)
				if len(params) != 1 || params[0].(map[string]any)["field"] != c.field {
					t.Errorf("%s %s: invalid_parameters %v, want %s", c.method, c.path, out["invalid_parameters"], c.field)
				}
			}
		}

		// A pruned revision is a 404 that says so.
		if _, err := st.DB().ExecContext(context.Background(), st.Rebind(`UPDATE revisions SET created_at = ? WHERE group_id = ? AND number <= 2`), time.Now().Add(-60*24*time.Hour).Unix(), e.group); err != nil {
			t.Fatal(err)
		}
		if _, err := e.es.PruneRevisions(context.Background(), entitystore.Retention{Count: 1, Age: 30 * 24 * time.Hour}, time.Now()); err != nil {
			t.Fatal(err)
		}
		code, out := e.do("GET", revs+"/1", nil)
		if detail, _ := out["detail"].(string); code != 404 || !strings.Contains(detail, "retention") {
			t.Errorf("pruned revision: %d %v", code, out)
		}
		code, out = e.do("POST", revs+"/1/rollback", nil)
		if code != 404 {
			t.Errorf("rollback to a pruned revision: %d %v", code, out)
		}
	})
}

func num(v any) float64 { return v.(map[string]any)["number"].(float64) }

func containsAll(list any, want ...string) bool {
	l, _ := list.([]any)
	for _, w := range want {
		found := false
		for _, x := range l {
			if x == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
