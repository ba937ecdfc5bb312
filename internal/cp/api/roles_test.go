package api_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/adminapi"
	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/entitystore"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/google/uuid"
)

// addIdentity inserts a user or system account with no team and no role, and returns its id and
// a personal access token for it. Rows are written directly: these tests are about what roles
// do, not about how identities are made.
func addIdentity(t *testing.T, e *env, kind string) (id, token string) {
	t.Helper()
	id, token = uuid.NewString(), auth.NewToken()
	err := e.store.InTx(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(e.store.Rebind(`INSERT INTO users (id, org_id, name, role, kind, created_at) VALUES (?, ?, ?, '', ?, ?)`),
			id, e.org.Org.ID, "someone", kind, time.Now().UnixMicro())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateToken(context.Background(), store.Token{ID: uuid.NewString(), OrgID: e.org.Org.ID, UserID: id, Name: "t",
		Hash: auth.HashToken(token), Hint: auth.Hint(token), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return id, token
}

// addTeamOf inserts a team with the given members.
func addTeamOf(t *testing.T, e *env, members ...string) string {
	t.Helper()
	id := uuid.NewString()
	err := e.store.InTx(context.Background(), func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		if _, err := tx.Exec(e.store.Rebind(`INSERT INTO teams (id, org_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`), id, e.org.Org.ID, "team-"+id, now, now); err != nil {
			return err
		}
		for _, m := range members {
			if _, err := tx.Exec(e.store.Rebind(`INSERT INTO team_members (team_id, user_id, created_at) VALUES (?, ?, ?)`), id, m, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func groupNames(r resp) []string {
	var names []string
	for _, g := range r.body["data"].([]any) {
		names = append(names, g.(map[string]any)["name"].(string))
	}
	return names
}

func TestRolesAndVisibility(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnvMounted(t, s, nil, func(a *api.API) {
			if err := adminapi.Register(a, entitystore.New(s), nil); err != nil {
				t.Fatal(err)
			}
		})
		g1 := e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "payments"}).body["id"].(string)
		g2 := e.admin("POST", "/v2/runtime-groups", map[string]any{"name": "search"}).body["id"].(string)
		user, tok := addIdentity(t, e, store.KindUser)

		cat := e.admin("GET", "/v3/roles", nil)
		roles := cat.body["control_planes"].(map[string]any)["roles"].(map[string]any)
		if cat.status != 200 || roles["route_admin"] == nil || roles["viewer"] == nil || cat.body["runtime_groups"] == nil {
			t.Fatalf("GET /v3/roles = %d %s", cat.status, cat.raw)
		}

		// Without a role the user sees no group, and a group it may not see answers exactly
		// like one that does not exist.
		if r := e.do("GET", "/v2/runtime-groups", tok, nil); r.status != 200 || len(r.body["data"].([]any)) != 0 || r.body["meta"].(map[string]any)["page"].(map[string]any)["total"] != float64(0) {
			t.Fatalf("list without roles = %d %s", r.status, r.raw)
		}
		hidden := e.do("GET", "/v2/runtime-groups/"+g1, tok, nil)
		wantProblem(t, hidden, 404, "")
		other := uuid.NewString()
		unknown := e.do("GET", "/v2/runtime-groups/"+other, tok, nil)
		wantProblem(t, unknown, 404, "")
		// The answers differ only by the id asked for and the per-request trace id.
		if h, u := hidden.body, unknown.body; h["detail"] != strings.ReplaceAll(u["detail"].(string), other, g1) || h["title"] != u["title"] || h["type"] != u["type"] {
			t.Fatalf("hidden group answers %s, unknown group %s", hidden.raw, unknown.raw)
		}
		if r := e.do("GET", "/v2/runtime-groups/"+g1+"/core-entities/routes", tok, nil); r.status != 404 {
			t.Fatalf("admin API of a hidden group = %d %s", r.status, r.raw)
		}

		// Bad assignments are refused with the field at fault.
		for _, tt := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"role_name": "Emperor", "entity_type_name": "Runtime Groups", "entity_id": g1, "entity_region": "us"}, "role_name"},
			{map[string]any{"role_name": "Viewer", "entity_type_name": "Runtime Groups", "entity_region": "us"}, "entity_id"},
			{map[string]any{"role_name": "Viewer", "entity_type_name": "Runtime Groups", "entity_id": uuid.NewString(), "entity_region": "us"}, "entity_id"},
			{map[string]any{"role_name": "Viewer", "entity_type_name": "Runtime Groups", "entity_id": g1, "entity_region": "eu"}, "entity_id"},
			{map[string]any{"role_name": "Audit Viewer", "entity_type_name": "Audit Logs", "entity_id": g1}, "entity_id"},
			{map[string]any{"role_name": "Viewer", "entity_id": g1}, "entity_type_name"},
		} {
			wantProblem(t, e.admin("POST", "/v3/users/"+user+"/assigned-roles", tt.body), 400, tt.field)
		}
		viewer := map[string]any{"role_name": "Viewer", "entity_type_name": "Control Planes", "entity_id": g1, "entity_region": "us"}
		wantProblem(t, e.admin("POST", "/v3/users/"+uuid.NewString()+"/assigned-roles", viewer), 404, "")
		wantProblem(t, e.admin("POST", "/v3/system-accounts/"+user+"/assigned-roles", viewer), 404, "")
		a := e.admin("POST", "/v3/users/"+user+"/assigned-roles", viewer)
		if a.status != 201 || a.body["role_name"] != "Viewer" || a.body["entity_type_name"] != "Runtime Groups" || a.body["entity_id"] != g1 {
			t.Fatalf("assign Viewer = %d %s", a.status, a.raw)
		}
		wantProblem(t, e.admin("POST", "/v3/users/"+user+"/assigned-roles", viewer), 409, "")

		// A Viewer sees and reads its group, and nothing else; writes are 403 naming the
		// missing permission, in the API's own format.
		if r := e.do("GET", "/v2/runtime-groups", tok, nil); r.status != 200 || strings.Join(groupNames(r), ",") != "payments" {
			t.Fatalf("viewer's list = %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v2/runtime-groups/"+g1, tok, nil); r.status != 200 {
			t.Fatalf("viewer reads its group: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v2/runtime-groups/"+g2, tok, nil); r.status != 404 {
			t.Fatalf("viewer reads another group: %d %s", r.status, r.raw)
		}
		r := e.do("PATCH", "/v2/runtime-groups/"+g1, tok, map[string]any{"description": "x"})
		wantProblem(t, r, 403, "")
		if d := r.body["detail"].(string); !strings.Contains(d, "write runtime_group") || !strings.Contains(d, "Admin") {
			t.Fatalf("403 detail %q does not name the missing permission", d)
		}
		r = e.do("POST", "/v2/runtime-groups/"+g1+"/core-entities/routes", tok, map[string]any{"paths": []string{"/x"}})
		if r.status != 403 || r.header.Get("Content-Type") != "application/json" || !strings.Contains(r.body["message"].(string), "write routes") {
			t.Fatalf("admin API write by a viewer = %d %s %s, want a Kong-shaped 403", r.status, r.header.Get("Content-Type"), r.raw)
		}
		if r := e.do("GET", "/v2/runtime-groups/"+g1+"/core-entities/routes", tok, nil); r.status != 200 {
			t.Fatalf("admin API read by a viewer = %d %s", r.status, r.raw)
		}
		wantProblem(t, e.do("POST", "/v2/runtime-groups", tok, map[string]any{"name": "mine"}), 403, "")
		wantProblem(t, e.do("GET", "/v3/users/"+user+"/assigned-roles", tok, nil), 403, "")

		// A Creator makes groups and becomes their Admin.
		creator := map[string]any{"role_name": "Creator", "entity_type_name": "Runtime Groups", "entity_id": "*", "entity_region": "*"}
		if r := e.admin("POST", "/v3/users/"+user+"/assigned-roles", creator); r.status != 201 {
			t.Fatalf("assign Creator = %d %s", r.status, r.raw)
		}
		mine := e.do("POST", "/v2/runtime-groups", tok, map[string]any{"name": "mine"})
		if mine.status != 201 {
			t.Fatalf("creator creates = %d %s", mine.status, mine.raw)
		}
		if r := e.do("PATCH", "/v2/runtime-groups/"+mine.body["id"].(string), tok, map[string]any{"description": "ours"}); r.status != 200 {
			t.Fatalf("creator administers its group: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v2/runtime-groups", tok, nil); strings.Join(groupNames(r), ",") != "payments,mine" {
			t.Fatalf("creator's list = %v", groupNames(r))
		}

		// Team roles add to direct ones; removing a role takes effect on the next request.
		team := addTeamOf(t, e, user)
		if r := e.admin("POST", "/v3/teams/"+team+"/assigned-roles", map[string]any{"role_name": "Route Admin", "entity_type_name": "Runtime Groups", "entity_id": g2, "entity_region": "us"}); r.status != 201 {
			t.Fatalf("assign to team = %d %s", r.status, r.raw)
		}
		if r := e.do("POST", "/v2/runtime-groups/"+g2+"/core-entities/routes", tok, map[string]any{"name": "r1", "paths": []string{"/x"}}); r.status != 201 {
			t.Fatalf("route admin through its team creates a route: %d %s", r.status, r.raw)
		}
		if r := e.do("POST", "/v2/runtime-groups/"+g2+"/core-entities/services", tok, map[string]any{"name": "s1", "host": "example.com"}); r.status != 403 {
			t.Fatalf("route admin creates a service: %d %s", r.status, r.raw)
		}
		list := e.admin("GET", "/v3/users/"+user+"/assigned-roles", nil)
		if list.status != 200 || len(list.body["data"].([]any)) != 3 { // Viewer, Creator, and Admin of the group it made
			t.Fatalf("user's assignments = %d %s", list.status, list.raw)
		}
		if r := e.admin("DELETE", "/v3/users/"+user+"/assigned-roles/"+a.body["id"].(string), nil); r.status != 204 {
			t.Fatalf("remove Viewer = %d %s", r.status, r.raw)
		}
		wantProblem(t, e.admin("DELETE", "/v3/users/"+user+"/assigned-roles/"+a.body["id"].(string), nil), 404, "")
		if r := e.do("GET", "/v2/runtime-groups/"+g1, tok, nil); r.status != 404 {
			t.Fatalf("group still visible after its role was removed: %d", r.status)
		}

		// A system account's roles go through its own route.
		sa, saTok := addIdentity(t, e, store.KindSystemAccount)
		if r := e.admin("POST", "/v3/system-accounts/"+sa+"/assigned-roles", viewer); r.status != 201 {
			t.Fatalf("assign to system account = %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v2/runtime-groups/"+g1+"/core-entities/routes", saTok, nil); r.status != 200 {
			t.Fatalf("system account reads = %d %s", r.status, r.raw)
		}
	})
}
