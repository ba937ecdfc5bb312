package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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

// outcome is what the policy table expects of one request.
type outcome string

const (
	allow     outcome = "allowed"
	hidden    outcome = "404 (group hidden)"
	forbidden outcome = "403"
)

// tableRoles are the identities of the policy table: one per kind of access, all on the same
// group except the Creator (every group) and the organization admin.
var tableRoles = []string{"none", "viewer", "route_admin", "admin", "creator", "org_admin"}

// expect is the policy table: what each role gets from a route of each rule. It is written out
// here, apart from the policy's own code, so that a change of the policy that alters who may do
// what fails this test until the table says so too.
func expect(rule, role, method, adminEntity string) outcome {
	if role == "org_admin" || rule == "self" {
		return allow
	}
	if rule == "admin-api" {
		rule = "write " + adminEntity
		if method == http.MethodGet {
			rule = "read"
		}
	}
	switch {
	case rule == "read":
		if role == "none" || role == "creator" {
			return hidden
		}
		return allow
	case strings.HasPrefix(rule, "write "):
		switch {
		case role == "none" || role == "creator":
			return hidden
		case role == "admin", role == "route_admin" && rule == "write routes":
			return allow
		}
		return forbidden
	case rule == "create_group":
		if role == "creator" {
			return allow
		}
		return forbidden
	}
	// view_fleet (needs a role on every group), manage_identity, read_audit, manage_audit.
	return forbidden
}

// TestPolicyTable sends every authenticated route of the assembled control plane, as each role of
// tableRoles, and checks the answer against expect. A route without a rule fails the test, so no
// endpoint ships outside the policy.
func TestPolicyTable(t *testing.T) {
	so := storetest.Options(t, "postgres")
	const adminToken = "gpat_policytabletestadmintoken0000"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	var routes []string
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Listen: "127.0.0.1:0", DatabaseURL: so.DatabaseURL, Region: "us", AdminToken: adminToken,
			ShutdownTimeout: 5 * time.Second, Routes: func(p []string) { routes = p }, Ready: func(a net.Addr) { addrc <- a }})
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after the test: %v", err)
		}
	}()

	st, err := sqlstore.Open(context.Background(), so)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var orgID string
	if err := st.DB().QueryRow(`SELECT org_id FROM bootstrap`).Scan(&orgID); err != nil {
		t.Fatal(err)
	}

	send := func(token, method, path string, body any) (int, map[string]any, string) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if rd != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return res.StatusCode, m, string(raw)
	}
	newGroup := func() string {
		t.Helper()
		code, m, raw := send(adminToken, "POST", "/v2/runtime-groups", map[string]any{"name": "g-" + uuid.NewString()[:8]})
		if code != 201 {
			t.Fatalf("create group: %d %s", code, raw)
		}
		return m["id"].(string)
	}
	// Identities are written to the database directly: this test is about what roles allow.
	tokens := map[string]string{"org_admin": adminToken}
	ids := map[string]string{}
	for _, role := range tableRoles[:5] {
		id, tok := uuid.NewString(), auth.NewToken()
		if _, err := st.DB().Exec(`INSERT INTO users (id, org_id, name, role, kind, created_at) VALUES ($1, $2, $3, '', 'user', $4)`, id, orgID, role, time.Now().UnixMicro()); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateToken(context.Background(), store.Token{ID: uuid.NewString(), OrgID: orgID, UserID: id, Name: role, Hash: auth.HashToken(tok), Hint: auth.Hint(tok), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		tokens[role], ids[role] = tok, id
	}
	roleNames := map[string]string{"viewer": "Viewer", "route_admin": "Route Admin", "admin": "Admin"}
	assignOn := func(group string) {
		t.Helper()
		for role, name := range roleNames {
			code, _, raw := send(adminToken, "POST", "/v3/users/"+ids[role]+"/assigned-roles",
				map[string]any{"role_name": name, "entity_type_name": "Runtime Groups", "entity_id": group, "entity_region": "us"})
			if code != 201 {
				t.Fatalf("assign %s: %d %s", name, code, raw)
			}
		}
	}
	group := newGroup()
	assignOn(group)
	if code, _, raw := send(adminToken, "POST", "/v3/users/"+ids["creator"]+"/assigned-roles",
		map[string]any{"role_name": "Creator", "entity_type_name": "Runtime Groups", "entity_id": "*", "entity_region": "*"}); code != 201 {
		t.Fatalf("assign Creator: %d %s", code, raw)
	}

	if len(routes) < 50 {
		t.Fatalf("only %d routes mounted: %v", len(routes), routes)
	}
	if unused := api.UnusedRules(routes); len(unused) > 0 {
		t.Errorf("rules for routes that are not mounted: %v", unused)
	}
	for _, pattern := range routes {
		rule := api.RouteRule(pattern)
		if rule == "" {
			t.Errorf("route %q has no rule in the policy table (internal/cp/api/authorize.go routeRules)", pattern)
			continue
		}
		method, path, ok := strings.Cut(pattern, " ")
		type call struct{ method, path, entity string }
		var calls []call
		switch {
		case ok:
			calls = []call{{method, path, ""}}
		case strings.HasSuffix(pattern, "/"):
			// The subtree of the group's Kong Admin API.
			calls = []call{{"GET", pattern + "routes", ""}, {"POST", pattern + "routes", "routes"}, {"POST", pattern + "services", "services"}}
		default:
			calls = []call{{"GET", pattern, ""}}
		}
		for _, c := range calls {
			for _, role := range tableRoles {
				g := group
				if c.method == "DELETE" && strings.HasSuffix(c.path, "/{groupId}") {
					// Deleting the group: a fresh one per request, with the same roles.
					g = newGroup()
					assignOn(g)
				}
				p := c.path
				for _, param := range []string{"{nodeId}", "{certId}", "{tokenId}", "{userId}", "{teamId}", "{accountId}", "{roleId}"} {
					p = strings.ReplaceAll(p, param, uuid.NewString())
				}
				p = strings.ReplaceAll(strings.ReplaceAll(p, "{groupId}", g), "{n}", "1")
				var body any
				if c.method == "POST" || c.method == "PATCH" || c.method == "PUT" {
					body = map[string]any{}
				}
				want := expect(rule, role, c.method, c.entity)
				code, m, raw := send(tokens[role], c.method, p, body)
				groupMissing := code == 404 && strings.HasPrefix(fmt.Sprint(m["detail"]), "No runtime group with id")
				var got outcome
				switch {
				case code == 403:
					got = forbidden
				case groupMissing:
					got = hidden
				case code == 401:
					got = "401"
				case code >= 500:
					// A server error is no answer of the policy's: it must not pass as allowed.
					got = outcome(fmt.Sprintf("server error %d", code))
				default:
					got = allow
				}
				if got != want {
					t.Errorf("%s %s as %s (rule %q): got %s (%d %s), want %s", c.method, c.path, role, rule, got, code, raw, want)
				}
			}
		}
	}
}
