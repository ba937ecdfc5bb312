package declarative_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/declarative"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/revisions"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
)

// env is the management API with the Admin API, the revision routes and the declarative routes
// on a real store.
type env struct {
	t     testing.TB
	st    *sqlstore.Store
	es    *entitystore.Store
	srv   *httptest.Server
	token string
	group string
}

// newEnv builds the environment; opts, when given, configure the declarative service (its
// Entities are set here).
func newEnv(t testing.TB, st *sqlstore.Store, opts ...declarative.Options) *env {
	t.Helper()
	tok := auth.NewToken()
	res, err := st.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(tok), Hint: auth.Hint(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	es := entitystore.New(st)
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
	var o declarative.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Entities = es
	ds, err := declarative.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ds.Mount(a)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, es: es, srv: srv, token: tok, group: res.Group.ID}
}

// raw sends a request with a raw body and returns the status, the Content-Type and the body.
func (e *env) raw(method, path, contentType, accept string, body []byte) (int, string, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), out
}

// must sends a JSON request and decodes the JSON answer, failing unless the status is want.
func (e *env) must(want int, method, path string, body any) map[string]any {
	e.t.Helper()
	var b []byte
	ct := ""
	if body != nil {
		b, _ = json.Marshal(body)
		ct = "application/json"
	}
	code, _, raw := e.raw(method, path, ct, "", b)
	if code != want {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, code, raw, want)
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s: %s", method, path, raw)
		}
	}
	return out
}

func (e *env) path(rest string) string { return "/v2/runtime-groups/" + e.group + rest }

func (e *env) admin(rest string) string { return e.path("/core-entities" + rest) }

func (e *env) revision() int64 {
	e.t.Helper()
	rev, err := e.es.Revision(context.Background(), e.group)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}
