package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// env is one control plane API on a real store, with the first organization's admin token.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	store  *sqlstore.Store
	token  string
	org    store.BootstrapResult
	client *http.Client
}

func newEnv(t *testing.T, s *sqlstore.Store) *env {
	t.Helper()
	return newEnvOpts(t, s, nil)
}

// newEnvOpts is newEnv with mod applied to the API's options.
func newEnvOpts(t *testing.T, s *sqlstore.Store, mod func(*api.Options)) *env {
	t.Helper()
	return newEnvMounted(t, s, mod, nil)
}

// newEnvMounted is newEnvOpts with mount called to add other components' routes.
func newEnvMounted(t *testing.T, s *sqlstore.Store, mod func(*api.Options), mount func(*api.API)) *env {
	t.Helper()
	token := auth.NewToken()
	res, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}})
	if err != nil {
		t.Fatal(err)
	}
	opts := api.Options{Store: s, Region: "us", ClusterEndpoint: "https://cp.example:8005", TelemetryEndpoint: "https://cp.example:8005"}
	if mod != nil {
		mod(&opts)
	}
	a, err := api.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if mount != nil {
		mount(a)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, store: s, token: token, org: res, client: srv.Client()}
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return newResp(e.t, res, raw)
}

// newResp records an answer; a JSON body (application/json or application/problem+json) must
// decode, so a malformed one fails the test instead of leaving body empty.
func newResp(t *testing.T, res *http.Response, raw []byte) resp {
	t.Helper()
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); len(raw) > 0 && (mt == "application/json" || mt == "application/problem+json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: malformed JSON body: %v: %s", res.Request.Method, res.Request.URL.Path, err, raw)
		}
	}
	return r
}

// admin sends a request with the admin token.
func (e *env) admin(method, path string, body any) resp {
	e.t.Helper()
	return e.do(method, path, e.token, body)
}

// wantProblem checks a problem+json answer and, for 400s, that the named field is reported.
func wantProblem(t *testing.T, r resp, status int, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	if r.body["status"] != float64(status) || r.body["title"] == "" || r.body["detail"] == "" ||
		!strings.HasPrefix(fmt.Sprint(r.body["instance"]), "gantry:trace:") || r.body["type"] == nil {
		t.Fatalf("incomplete problem: %s", r.raw)
	}
	if field == "" {
		return
	}
	params, _ := r.body["invalid_parameters"].([]any)
	for _, p := range params {
		m := p.(map[string]any)
		if m["field"] == field && m["reason"] != "" && m["rule"] != "" {
			return
		}
	}
	t.Fatalf("invalid_parameters does not name %q: %s", field, r.raw)
}

func (e *env) countGroups() int {
	e.t.Helper()
	var n int
	if err := e.store.DB().QueryRow(`SELECT COUNT(*) FROM runtime_groups`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestRuntimeGroupsCRUD(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s)
		for _, base := range api.GroupBasePaths {
			t.Run(base, func(t *testing.T) {
				name := "payments" + strings.ReplaceAll(base, "/", "-")
				r := e.admin("POST", base, map[string]any{"name": name, "description": "d", "labels": map[string]string{"env": "prod"}})
				if r.status != 201 {
					t.Fatalf("create: %d %s", r.status, r.raw)
				}
				id := r.body["id"].(string)
				cfg := r.body["config"].(map[string]any)
				if r.body["name"] != name || r.body["is_default"] != false || cfg["cluster_type"] != "CLUSTER_TYPE_CONTROL_PLANE" ||
					cfg["auth_type"] != "pinned_client_certs" || cfg["control_plane_endpoint"] != "https://cp.example:8005" ||
					r.body["labels"].(map[string]any)["env"] != "prod" || r.body["created_at"] == nil {
					t.Fatalf("created group: %s", r.raw)
				}
				if loc := r.header.Get("Location"); loc != base+"/"+id {
					t.Fatalf("Location %q", loc)
				}
				got := e.admin("GET", base+"/"+id, nil)
				if got.status != 200 || got.body["id"] != id {
					t.Fatalf("get: %d %s", got.status, got.raw)
				}
				p := e.admin("PATCH", base+"/"+id, map[string]any{"description": "new", "labels": map[string]any{"env": nil, "team": "core"}})
				if p.status != 200 || p.body["description"] != "new" || fmt.Sprint(p.body["labels"]) != "map[team:core]" || p.body["name"] != name {
					t.Fatalf("patch: %d %s", p.status, p.raw)
				}
				if d := e.admin("DELETE", base+"/"+id, nil); d.status != 204 {
					t.Fatalf("delete: %d %s", d.status, d.raw)
				}
				wantProblem(t, e.admin("GET", base+"/"+id, nil), 404, "")
				wantProblem(t, e.admin("DELETE", base+"/"+id, nil), 404, "")
			})
		}
	})
}

func TestRuntimeGroupsListing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s)
		for i, n := range []string{"bravo", "alpha", "charlie", "alphabet"} {
			body := map[string]any{"name": n, "labels": map[string]string{"idx": fmt.Sprint(i % 2)}}
			if n == "charlie" {
				body["cluster_type"] = "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER"
			}
			if r := e.admin("POST", "/v2/runtime-groups", body); r.status != 201 {
				t.Fatalf("create %s: %s", n, r.raw)
			}
			time.Sleep(2 * time.Millisecond)
		}
		names := func(r resp) string {
			var out []string
			for _, d := range r.body["data"].([]any) {
				out = append(out, d.(map[string]any)["name"].(string))
			}
			return strings.Join(out, ",")
		}
		cases := []struct {
			query string
			want  string
			total int
			size  int
			page  int
		}{
			{"", "default,bravo,alpha,charlie,alphabet", 5, 10, 1},
			{"?sort=name", "alpha,alphabet,bravo,charlie,default", 5, 10, 1},
			{"?sort=name%20desc", "default,charlie,bravo,alphabet,alpha", 5, 10, 1},
			{"?sort=-created_at", "alphabet,charlie,alpha,bravo,default", 5, 10, 1},
			{"?filter[name][eq]=alpha", "alpha", 1, 10, 1},
			{"?filter[name]=alpha", "alpha", 1, 10, 1},
			{"?filter[name][neq]=alpha&sort=name", "alphabet,bravo,charlie,default", 4, 10, 1},
			{"?filter[name][contains]=lph&sort=name", "alpha,alphabet", 2, 10, 1},
			{"?filter[cluster_type][eq]=CLUSTER_TYPE_K8S_INGRESS_CONTROLLER", "charlie", 1, 10, 1},
			{"?labels=idx:1&sort=name", "alpha,alphabet", 2, 10, 1},
			{"?labels=idx&sort=name", "alpha,alphabet,bravo,charlie", 4, 10, 1},
			{"?filter[labels.idx][eq]=1&sort=name", "alpha,alphabet", 2, 10, 1},
			{"?filter[labels.idx]=1&sort=name", "alpha,alphabet", 2, 10, 1},
			{"?filter[labels.idx][eq]=9", "", 0, 10, 1},
			{"?sort=name&page[size]=2&page[number]=2", "bravo,charlie", 5, 2, 2},
			{"?sort=name&page[size]=2&page[number]=3", "default", 5, 2, 3},
			{"?page[size]=2&page[number]=4", "", 5, 2, 4},
		}
		for _, c := range cases {
			t.Run(c.query, func(t *testing.T) {
				r := e.admin("GET", "/v2/runtime-groups"+c.query, nil)
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				page := r.body["meta"].(map[string]any)["page"].(map[string]any)
				if got := names(r); got != c.want || page["total"] != float64(c.total) || page["size"] != float64(c.size) || page["number"] != float64(c.page) {
					t.Fatalf("got %s %v, want %s total %d size %d number %d", got, page, c.want, c.total, c.size, c.page)
				}
			})
		}
		bad := []struct{ query, field string }{
			{"?page[size]=0", "page[size]"},
			{"?page[size]=101", "page[size]"},
			{"?page[size]=ten", "page[size]"},
			{"?page[number]=0", "page[number]"},
			{"?filter[nope][eq]=x", "filter[nope][eq]"},
			{"?filter[name][gt]=x", "filter[name][gt]"},
			{"?filter[name][eq]=", "filter[name][eq]"},
			{"?filter=x", "filter"},
			{"?sort=color", "sort"},
			{"?sort=name%20sideways", "sort"},
			{"?labels=:v", "labels"},
			{"?filter[labels.idx][neq]=1", "filter[labels.idx][neq]"},
			{"?filter[labels.idx][eq]=", "filter[labels.idx][eq]"},
		}
		for _, c := range bad {
			t.Run("bad "+c.query, func(t *testing.T) {
				wantProblem(t, e.admin("GET", "/v2/runtime-groups"+c.query, nil), 400, c.field)
			})
		}
	})
}

func TestRuntimeGroupsValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s)
		long := strings.Repeat("a", 64)
		labels50 := map[string]string{}
		for i := range 51 {
			labels50[fmt.Sprintf("k%d", i)] = "v"
		}
		cases := []struct {
			name  string
			body  any
			field string
		}{
			{"missing name", map[string]any{"description": "x"}, "name"},
			{"blank name", map[string]any{"name": "  "}, "name"},
			{"name wrong type", `{"name": 42}`, "name"},
			{"unknown field", map[string]any{"name": "x", "colour": "red"}, "colour"},
			{"malformed JSON", `{"name": "x"`, "body"},
			{"syntax error", `{"name" "x"}`, "body"},
			{"two values", `{"name":"x"} {"name":"y"}`, "body"},
			{"empty body", ``, "body"},
			{"array body", `[]`, "body"},
			{"bad cluster type", map[string]any{"name": "x", "cluster_type": "CLUSTER_TYPE_MAINFRAME"}, "cluster_type"},
			{"bad auth type", map[string]any{"name": "x", "auth_type": "password"}, "auth_type"},
			{"cloud gateway", map[string]any{"name": "x", "cloud_gateway": true}, "cloud_gateway"},
			{"long description", map[string]any{"name": "x", "description": strings.Repeat("d", 251)}, "description"},
			{"too many labels", map[string]any{"name": "x", "labels": labels50}, "labels"},
			{"long label key", map[string]any{"name": "x", "labels": map[string]string{long: "v"}}, "labels." + long},
			{"empty label value", map[string]any{"name": "x", "labels": map[string]string{"a": ""}}, "labels.a"},
			{"label value wrong type", `{"name":"x","labels":{"a":1}}`, "labels.a"},
			{"label value an object", `{"name":"x","labels":{"b":{}}}`, "labels.b"},
			{"labels not an object", `{"name":"x","labels":["a"]}`, "labels"},
			{"reserved kong", map[string]any{"name": "x", "labels": map[string]string{"kong-team": "v"}}, "labels.kong-team"},
			{"reserved konnect", map[string]any{"name": "x", "labels": map[string]string{"konnect": "v"}}, "labels.konnect"},
			{"reserved mesh", map[string]any{"name": "x", "labels": map[string]string{"meshy": "v"}}, "labels.meshy"},
			{"reserved kic", map[string]any{"name": "x", "labels": map[string]string{"kic": "v"}}, "labels.kic"},
			{"reserved underscore", map[string]any{"name": "x", "labels": map[string]string{"_x": "v"}}, "labels._x"},
		}
		before := e.countGroups()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantProblem(t, e.admin("POST", "/v2/runtime-groups", c.body), 400, c.field)
			})
		}
		t.Run("oversized body", func(t *testing.T) {
			big := `{"name":"x","description":"` + strings.Repeat("a", api.MaxBodyBytes) + `"}`
			wantProblem(t, e.admin("POST", "/v2/runtime-groups", big), 400, "body")
		})
		t.Run("wrong content type", func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/v2/runtime-groups", strings.NewReader("name=x"))
			req.Header.Set("Authorization", "Bearer "+e.token)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 415 {
				t.Fatalf("status %d, want 415", res.StatusCode)
			}
		})
		if after := e.countGroups(); after != before {
			t.Fatalf("refused requests wrote groups: %d before, %d after", before, after)
		}
		t.Run("50 labels is the limit", func(t *testing.T) {
			delete(labels50, "k0")
			if r := e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "fifty", "labels": labels50}); r.status != 201 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
		t.Run("duplicate name", func(t *testing.T) {
			wantProblem(t, e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "fifty"}), 409, "")
			wantProblem(t, e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "default"}), 409, "")
			other := e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "other"})
			wantProblem(t, e.admin("PATCH", "/v2/runtime-groups/"+other.body["id"].(string), map[string]any{"name": "fifty"}), 409, "")
		})
		t.Run("bad patch writes nothing", func(t *testing.T) {
			r := e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "stable", "labels": map[string]string{"a": "b"}})
			id := r.body["id"].(string)
			for _, body := range []any{
				map[string]any{"name": ""},
				map[string]any{"description": "ok", "labels": map[string]string{"kong": "x"}},
				map[string]any{"cluster_type": "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER"},
				map[string]any{"is_default": true},
				`{"name": 1}`,
			} {
				wantProblem(t, e.admin("PATCH", "/v2/runtime-groups/"+id, body), 400, "")
			}
			got := e.admin("GET", "/v2/runtime-groups/"+id, nil)
			if got.body["name"] != "stable" || got.body["description"] != "" || fmt.Sprint(got.body["labels"]) != "map[a:b]" {
				t.Fatalf("refused patches changed the group: %s", got.raw)
			}
		})
		t.Run("malformed id", func(t *testing.T) {
			wantProblem(t, e.admin("GET", "/v2/runtime-groups/not-a-uuid", nil), 404, "")
		})
	})
}

func TestDefaultGroupRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s)
		list := e.admin("GET", "/v2/runtime-groups", nil)
		data := list.body["data"].([]any)
		if len(data) != 1 || data[0].(map[string]any)["is_default"] != true || data[0].(map[string]any)["name"] != "default" {
			t.Fatalf("first start must have exactly the default group: %s", list.raw)
		}
		id := data[0].(map[string]any)["id"].(string)
		r := e.admin("DELETE", "/v2/runtime-groups/"+id, nil)
		wantProblem(t, r, 409, "")
		if !strings.Contains(r.body["detail"].(string), "default runtime group cannot be deleted") {
			t.Fatalf("detail does not say why: %s", r.raw)
		}
		wantProblem(t, e.admin("PATCH", "/v2/runtime-groups/"+id, map[string]any{"is_default": false}), 400, "is_default")
		if g := e.admin("GET", "/v2/runtime-groups/"+id, nil); g.status != 200 || g.body["is_default"] != true {
			t.Fatalf("default group changed: %s", g.raw)
		}
		// It can be renamed and described like any group.
		if p := e.admin("PATCH", "/v2/runtime-groups/"+id, map[string]any{"description": "main"}); p.status != 200 || p.body["is_default"] != true {
			t.Fatalf("patch default group: %s", p.raw)
		}
	})
}

func TestAuthentication(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s)
		// Tokens: create one that expires, one to revoke, and check each state.
		short := e.admin("POST", "/v2/users/me/personal-access-tokens", map[string]any{"name": "short", "expires_in": 1})
		revoked := e.admin("POST", "/v2/users/me/personal-access-tokens", map[string]any{"name": "revoked"})
		if short.status != 201 || revoked.status != 201 || !strings.HasPrefix(revoked.body["token"].(string), auth.TokenPrefix) {
			t.Fatalf("create tokens: %s %s", short.raw, revoked.raw)
		}
		if r := e.do("GET", "/v2/runtime-groups", revoked.body["token"].(string), nil); r.status != 200 {
			t.Fatalf("fresh token refused: %s", r.raw)
		}
		if d := e.admin("DELETE", "/v2/users/me/personal-access-tokens/"+revoked.body["id"].(string), nil); d.status != 204 {
			t.Fatalf("revoke: %s", d.raw)
		}
		list := e.admin("GET", "/v2/users/me/personal-access-tokens", nil)
		if strings.Contains(list.raw, revoked.body["token"].(string)) || strings.Contains(list.raw, e.token) || len(list.body["data"].([]any)) != 3 {
			t.Fatalf("token list leaks secrets or misses tokens: %s", list.raw)
		}
		var stored int
		if err := e.store.DB().QueryRow(e.store.Rebind(`SELECT COUNT(*) FROM tokens WHERE hash = ? OR hash = ?`), revoked.body["token"], e.token).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != 0 {
			t.Fatal("a token secret is stored in clear")
		}
		other, _, _, err := s.CreateOrganization(context.Background(), "Other", "us", store.User{Name: "o"})
		if err != nil {
			t.Fatal(err)
		}
		otherAdmin := ""
		if err := s.DB().QueryRow(s.Rebind(`SELECT id FROM users WHERE org_id = ?`), other.ID).Scan(&otherAdmin); err != nil {
			t.Fatal(err)
		}
		otherToken := auth.NewToken()
		if err := s.CreateToken(context.Background(), store.Token{ID: uuid.NewString(), OrgID: other.ID, UserID: otherAdmin, Name: "o", Hash: auth.HashToken(otherToken), Hint: "x", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // let the one-second token expire
		for _, c := range []struct {
			name, header string
		}{
			{"missing", ""},
			{"not bearer", "Basic YWRtaW46YWRtaW4="},
			{"empty bearer", "Bearer "},
			{"wrong", "Bearer " + auth.NewToken()},
			{"expired", "Bearer " + short.body["token"].(string)},
			{"revoked", "Bearer " + revoked.body["token"].(string)},
		} {
			t.Run(c.name, func(t *testing.T) {
				req, _ := http.NewRequest("GET", e.srv.URL+"/v2/runtime-groups", nil)
				if c.header != "" {
					req.Header.Set("Authorization", c.header)
				}
				res, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				wantProblem(t, newResp(t, res, raw), 401, "")
				if res.Header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate header")
				}
			})
		}
		t.Run("other organization", func(t *testing.T) {
			mine := e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "mine"})
			id := mine.body["id"].(string)
			wantProblem(t, e.do("GET", "/v2/runtime-groups/"+id, otherToken, nil), 404, "")
			wantProblem(t, e.do("PATCH", "/v2/runtime-groups/"+id, otherToken, map[string]any{"description": "x"}), 404, "")
			wantProblem(t, e.do("DELETE", "/v2/runtime-groups/"+id, otherToken, nil), 404, "")
			l := e.do("GET", "/v2/runtime-groups", otherToken, nil)
			if strings.Contains(l.raw, id) || l.body["meta"].(map[string]any)["page"].(map[string]any)["total"] != float64(1) {
				t.Fatalf("other org sees: %s", l.raw)
			}
			me := e.do("GET", "/v2/organizations/me", otherToken, nil)
			if me.body["id"] != other.ID || me.body["name"] != "Other" {
				t.Fatalf("organizations/me: %s", me.raw)
			}
			if g := e.admin("GET", "/v2/runtime-groups/"+id, nil); g.status != 200 {
				t.Fatalf("owner lost access: %s", g.raw)
			}
		})
		t.Run("token requests", func(t *testing.T) {
			wantProblem(t, e.admin("POST", "/v2/users/me/personal-access-tokens", map[string]any{}), 400, "name")
			wantProblem(t, e.admin("POST", "/v2/users/me/personal-access-tokens", map[string]any{"name": "x", "expires_in": 0}), 400, "expires_in")
			wantProblem(t, e.admin("POST", "/v2/users/me/personal-access-tokens", map[string]any{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}), 400, "expires_at")
			wantProblem(t, e.admin("POST", "/v2/users/me/personal-access-tokens", map[string]any{"name": "x", "expires_at": "soon"}), 400, "expires_at")
			wantProblem(t, e.admin("DELETE", "/v2/users/me/personal-access-tokens/"+uuid.NewString(), nil), 404, "")
		})
	})
}

func TestHealthMetricsAndRouting(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s)
		if r := e.do("GET", "/healthz", "", nil); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
		if r := e.do("GET", "/readyz", "", nil); r.status != 200 || r.body["database"] != s.Dialect() {
			t.Fatalf("readyz: %d %s", r.status, r.raw)
		}
		e.admin("GET", "/v2/runtime-groups", nil)
		wantProblem(t, e.admin("GET", "/v2/nowhere", nil), 404, "")
		r := e.admin("PUT", "/v2/runtime-groups", nil)
		wantProblem(t, r, 405, "")
		if !strings.Contains(r.header.Get("Allow"), "GET") {
			t.Fatalf("405 without Allow: %v", r.header)
		}
		m := e.do("GET", "/metrics", "", nil)
		for _, want := range []string{
			`gantry_http_requests_total{code="200",method="GET",route="/v2/runtime-groups"} 1`,
			`gantry_http_request_duration_seconds_count{method="GET",route="/v2/runtime-groups"} 1`,
			`gantry_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		} {
			if !strings.Contains(m.raw, want) {
				t.Fatalf("metrics lack %q:\n%s", want, m.raw)
			}
		}
		s.Close()
		if r := e.do("GET", "/readyz", "", nil); r.status != 503 {
			t.Fatalf("readyz with a closed database: %d", r.status)
		}
	})
}

// TestDeleteGroupWithBackup checks DELETE ?backup=true answers the group's
// backup and then deletes it, keeps the group when the backup fails, and
// refuses a bad value or a control plane without backups.
func TestDeleteGroupWithBackup(t *testing.T) {
	s := storetest.Open(t, "sqlite")
	failFor := ""
	e := newEnvOpts(t, s, func(o *api.Options) {
		o.Backup = func(_ context.Context, g store.RuntimeGroup) (any, error) {
			if g.Name == failFor {
				return nil, errors.New("export failed")
			}
			return map[string]any{"gantry_backup_format": "1", "groups": []any{map[string]any{"name": g.Name, "labels": g.Labels}}}, nil
		}
	})
	create := func(name string) string {
		r := e.admin("POST", "/v2/runtime-groups", map[string]any{"name": name, "labels": map[string]string{"team": "a"}})
		if r.status != 201 {
			t.Fatalf("create %s: %s", name, r.raw)
		}
		return r.body["id"].(string)
	}
	id := create("payments")
	r := e.admin("DELETE", "/v2/runtime-groups/"+id+"?backup=true", nil)
	groups, _ := r.body["groups"].([]any)
	if r.status != 200 || len(groups) != 1 || groups[0].(map[string]any)["name"] != "payments" ||
		!strings.Contains(r.header.Get("Content-Disposition"), `filename=payments-backup.json`) {
		t.Fatalf("delete with backup: %d %s %v", r.status, r.raw, r.header)
	}
	if g := e.admin("GET", "/v2/runtime-groups/"+id, nil); g.status != 404 {
		t.Fatalf("the group is still there: %d", g.status)
	}

	failFor = "orders"
	id = create("orders")
	if r := e.admin("DELETE", "/v2/runtime-groups/"+id+"?backup=true", nil); r.status != 500 {
		t.Fatalf("failed backup: %d %s", r.status, r.raw)
	}
	if g := e.admin("GET", "/v2/runtime-groups/"+id, nil); g.status != 200 {
		t.Fatalf("a failed backup deleted the group: %d", g.status)
	}
	wantProblem(t, e.admin("DELETE", "/v2/runtime-groups/"+id+"?backup=yes", nil), 400, "backup")

	plain := newEnv(t, storetest.Open(t, "sqlite"))
	r = plain.admin("POST", "/v2/runtime-groups", map[string]any{"name": "x"})
	wantProblem(t, plain.admin("DELETE", "/v2/runtime-groups/"+r.body["id"].(string)+"?backup=true", nil), 400, "backup")
	if d := plain.admin("DELETE", "/v2/runtime-groups/"+r.body["id"].(string)+"?backup=false", nil); d.status != 204 {
		t.Fatalf("backup=false: %d", d.status)
	}
}
