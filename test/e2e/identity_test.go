package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// client is one identity talking to the control plane: a bearer token, or a browser-like
// session (cookie jar and CSRF token).
type client struct {
	t     *testing.T
	base  string
	token string
	jar   http.CookieJar
	csrf  string
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path string, body any) answer {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Jar: c.jar}).Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body) // lists and errors are objects; an empty body leaves nil
	return a
}

// must sends a request and fails the test unless it answers want.
func (c *client) must(want int, method, path string, body any) map[string]any {
	c.t.Helper()
	a := c.do(method, path, body)
	if a.status != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.raw, want)
	}
	return a.body
}

func names(list map[string]any, field string) []string {
	var out []string
	for _, x := range list["data"].([]any) {
		out = append(out, x.(map[string]any)[field].(string))
	}
	return out
}

// TestTeamsRolesAndAudit is issue 12's scenario with real processes, on SQLite and PostgreSQL: an
// organization admin makes a group, a team with Viewer on it, a user in the team and a system
// account with Route Admin on it. The user logs in with a password and reads but cannot write;
// the system account writes routes but not services and sees no other group. The audit log then
// holds every write with its actor, and no secret.
func TestTeamsRolesAndAudit(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			base := "http://" + freeAddr(t)
			cp := startControlPlaneOn(t, dialect, base, freeAddr(t))
			s := newRolesScenario(t, cp)
			s.check(t)
		})
	}
}

// rolesScenario is the organization TestTeamsRolesAndAudit and TestDeckRoles set up.
type rolesScenario struct {
	admin, user, robot *client
	group, other       string
	userID, robotID    string
	password, robotTok string
}

func newRolesScenario(t *testing.T, cp *controlPlane) *rolesScenario {
	t.Helper()
	s := &rolesScenario{password: "Correct-Horse-9-battery"}
	s.admin = &client{t: t, base: cp.base, token: cp.token}
	s.group = s.admin.must(201, "POST", "/v2/runtime-groups", map[string]any{"name": "payments"})["id"].(string)
	s.other = s.admin.must(201, "POST", "/v2/runtime-groups", map[string]any{"name": "search"})["id"].(string)

	team := s.admin.must(201, "POST", "/v3/teams", map[string]any{"name": "on-call", "description": "read-only access for on-call engineers"})["id"].(string)
	s.admin.must(201, "POST", "/v3/teams/"+team+"/assigned-roles",
		map[string]any{"role_name": "Viewer", "entity_type_name": "Control Planes", "entity_id": s.group, "entity_region": "us"})
	s.userID = s.admin.must(201, "POST", "/v3/users", map[string]any{"email": "Alice@Example.com", "full_name": "Alice", "password": s.password})["id"].(string)
	s.admin.must(201, "POST", "/v3/teams/"+team+"/users", map[string]any{"id": s.userID})

	s.robotID = s.admin.must(201, "POST", "/v3/system-accounts", map[string]any{"name": "ci", "description": "pipeline"})["id"].(string)
	s.admin.must(201, "POST", "/v3/system-accounts/"+s.robotID+"/assigned-roles",
		map[string]any{"role_name": "Route Admin", "entity_type_name": "Runtime Groups", "entity_id": s.group, "entity_region": "us"})
	s.robotTok = s.admin.must(201, "POST", "/v3/system-accounts/"+s.robotID+"/access-tokens", map[string]any{"name": "ci"})["token"].(string)
	if !strings.HasPrefix(s.robotTok, "gsat_") {
		t.Fatalf("system account token %q lacks the gsat_ prefix", s.robotTok)
	}
	s.robot = &client{t: t, base: cp.base, token: s.robotTok}

	// The user logs in with a password: a session cookie and a CSRF token.
	jar, _ := cookiejar.New(nil)
	s.user = &client{t: t, base: cp.base, jar: jar}
	login := s.user.do("POST", "/v3/authenticate", map[string]any{"username": "alice@example.com", "password": s.password})
	if login.status != 200 {
		t.Fatalf("login: %d %s", login.status, login.raw)
	}
	u, _ := url.Parse(cp.base)
	var session *http.Cookie
	for _, c := range login.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "gantry_session=") {
			session, _ = http.ParseSetCookie(c)
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || len(jar.Cookies(u)) != 1 {
		t.Fatalf("session cookie %+v (Set-Cookie %q): want HttpOnly, SameSite=Lax, not Secure over plain HTTP", session, login.header.Values("Set-Cookie"))
	}
	s.user.csrf, _ = login.body["csrf_token"].(string)
	if s.user.csrf == "" {
		t.Fatalf("login answered no csrf_token: %s", login.raw)
	}
	return s
}

func (s *rolesScenario) check(t *testing.T) {
	routes := "/v2/runtime-groups/" + s.group + "/core-entities/routes"

	// The user sees only the team's group and reads its routes.
	if got := names(s.user.must(200, "GET", "/v2/runtime-groups", nil), "name"); !slices.Equal(got, []string{"payments"}) {
		t.Fatalf("the user's groups: %v, want [payments]", got)
	}
	s.user.must(200, "GET", routes, nil)
	s.user.must(404, "GET", "/v2/runtime-groups/"+s.other, nil)
	// Creating a route is refused in Kong's shape, naming the permission, CSRF token or not.
	denied := s.user.do("POST", routes, map[string]any{"name": "r0", "paths": []string{"/x"}})
	if denied.status != 403 || !strings.Contains(denied.body["message"].(string), "write routes") {
		t.Fatalf("the viewer creates a route: %d %s, want 403 naming write routes", denied.status, denied.raw)
	}
	noCSRF := &client{t: t, base: s.user.base, jar: s.user.jar}
	if a := noCSRF.do("POST", routes, map[string]any{"name": "r0", "paths": []string{"/x"}}); a.status != 403 || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("a cookie request without CSRF token: %d %s, want a 403 problem", a.status, a.raw)
	}
	s.user.must(403, "GET", "/v2/audit-logs", nil)

	// The system account creates a route but no service, and sees no other group.
	s.robot.must(201, "POST", routes, map[string]any{"name": "checkout", "paths": []string{"/checkout"}})
	svc := s.robot.do("POST", "/v2/runtime-groups/"+s.group+"/core-entities/services", map[string]any{"name": "billing", "host": "billing.internal"})
	if svc.status != 403 || !strings.Contains(svc.body["message"].(string), "write services") {
		t.Fatalf("the route admin creates a service: %d %s", svc.status, svc.raw)
	}
	s.robot.must(404, "GET", "/v2/runtime-groups/"+s.other, nil)
	s.robot.must(404, "GET", "/v2/runtime-groups/"+s.other+"/core-entities/routes", nil)
	if got := names(s.robot.must(200, "GET", "/v2/runtime-groups", nil), "name"); !slices.Equal(got, []string{"payments"}) {
		t.Fatalf("the system account's groups: %v, want [payments]", got)
	}
	if got := names(s.admin.must(200, "GET", "/v2/runtime-groups/"+s.group+"/core-entities/services", nil), "name"); len(got) != 0 {
		t.Fatalf("services after the refused creation: %v", got)
	}

	// The audit log holds every write with its actor.
	entries := s.auditLog(t)
	type key struct{ actor, action, entity string }
	seen := map[key]bool{}
	for _, e := range entries {
		seen[key{e["actor_id"].(string), e["action"].(string), e["entity_type"].(string)}] = true
	}
	adminID := s.admin.must(200, "GET", "/v3/users/me", nil)["id"].(string)
	for _, want := range []key{
		{adminID, "create", "runtime_groups"},
		{adminID, "create", "teams"},
		{adminID, "create", "users"},
		{adminID, "create", "system_accounts"},
		{s.userID, "login", "sessions"},
		{s.robotID, "create", "routes"},
	} {
		if !seen[want] {
			t.Errorf("no audit entry %+v among %d entries", want, len(entries))
		}
	}
	for _, e := range entries {
		if e["actor_id"] == s.robotID && e["action"] == "create" && e["entity_type"] == "routes" {
			if e["auth_method"] != "system_token" || e["actor_type"] != "system_account" || e["runtime_group_id"] != s.group || e["entity_name"] != "checkout" || e["after"] == nil {
				t.Errorf("the route's audit entry: %v", e)
			}
		}
	}
	// No secret in any entry.
	all, _ := json.Marshal(entries)
	for name, secret := range map[string]string{"the user's password": s.password, "the system account's token": s.robotTok, "the admin token": s.admin.token, "the CSRF token": s.user.csrf} {
		if strings.Contains(string(all), secret) {
			t.Errorf("the audit log contains %s", name)
		}
	}
}

// auditLog reads the whole audit log, page by page.
func (s *rolesScenario) auditLog(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	next := ""
	for range 100 {
		path := "/v2/audit-logs?page[size]=50"
		if next != "" {
			path += "&page[after]=" + url.QueryEscape(next)
		}
		page := s.admin.must(200, "GET", path, nil)
		for _, e := range page["data"].([]any) {
			out = append(out, e.(map[string]any))
		}
		n, _ := page["meta"].(map[string]any)["page"].(map[string]any)["next"].(string)
		if n == "" {
			return out
		}
		next = n
	}
	t.Fatal("the audit log has more than 100 pages")
	return nil
}

// TestDeckRoles runs stock decK with a Route Admin system account's token: it dumps the group,
// and a sync that would create a service fails cleanly, leaving the group unchanged.
func TestDeckRoles(t *testing.T) {
	bin := os.Getenv(deckEnv)
	if bin == "" {
		t.Skip("needs a decK binary in " + deckEnv + ": run make test-deck, which builds decK and runs this test")
	}
	base := "http://" + freeAddr(t)
	cp := startControlPlaneOn(t, "sqlite", base, freeAddr(t))
	s := newRolesScenario(t, cp)
	s.robot.must(201, "POST", "/v2/runtime-groups/"+s.group+"/core-entities/routes", map[string]any{"name": "checkout", "paths": []string{"/checkout"}})
	dir := t.TempDir()
	d := deckCLI{bin: bin, base: base, token: s.robotTok, home: t.TempDir(), dir: dir}

	dump := filepath.Join(dir, "dump.yaml")
	d.run(t, s.group, "dump", "-o", dump, "--yes").want(t, "dump as Route Admin", 0, "")
	if got := readFile(t, dump); !strings.Contains(got, "name: checkout") {
		t.Fatalf("dump lacks the route:\n%s", got)
	}
	d.run(t, "11111111-1111-4111-8111-111111111111", "dump", "-o", filepath.Join(dir, "x.yaml"), "--yes").want(t, "dump of an unknown group", 1, "")

	file := filepath.Join(dir, "kong.yaml")
	writeFile(t, file, `_format_version: "3.0"
services:
- name: billing
  host: billing.internal
  routes:
  - name: checkout
    paths:
    - /checkout
`)
	r := d.run(t, s.group, "sync", file)
	t.Logf("deck sync as Route Admin exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "403") {
		t.Fatalf("sync creating a service as Route Admin: exit %d, want a failure naming the 403\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := names(s.admin.must(200, "GET", "/v2/runtime-groups/"+s.group+"/core-entities/services", nil), "name"); len(got) != 0 {
		t.Fatalf("services after the refused sync: %v", got)
	}
}

// TestRoleChangesReachEveryProcess revokes a role through one control plane process while
// another serves the identity from its cached grants: the other process refuses the next
// requests within seconds (the database announces the change), well before its 5 minute cache would
// have expired on its own.
func TestRoleChangesReachEveryProcess(t *testing.T) {
	h := newHACluster(t, storetest.NewPostgresDatabase(t), 2)
	a := &client{t: t, base: h.slots[0].cp.base, token: h.token}
	group := a.must(201, "POST", "/v2/runtime-groups", map[string]any{"name": "shared"})["id"].(string)
	robot := a.must(201, "POST", "/v3/system-accounts", map[string]any{"name": "ci"})["id"].(string)
	role := a.must(201, "POST", "/v3/system-accounts/"+robot+"/assigned-roles",
		map[string]any{"role_name": "Viewer", "entity_type_name": "Runtime Groups", "entity_id": group, "entity_region": "*"})["id"].(string)
	tok := a.must(201, "POST", "/v3/system-accounts/"+robot+"/access-tokens", map[string]any{"name": "ci"})["token"].(string)
	b := &client{t: t, base: h.slots[1].cp.base, token: tok}
	b.must(200, "GET", "/v2/runtime-groups/"+group, nil) // process b now caches the grants

	a.must(204, "DELETE", "/v3/system-accounts/"+robot+"/assigned-roles/"+role, nil)
	revoked := time.Now()
	for b.do("GET", "/v2/runtime-groups/"+group, nil).status != 404 {
		if time.Since(revoked) > 10*time.Second {
			t.Fatal("the other process still serves the revoked role after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the other process applied the revocation after %s", time.Since(revoked).Round(time.Millisecond))

	// And the other way round: a role granted through b applies on a.
	a2 := &client{t: t, base: h.slots[0].cp.base, token: tok}
	a2.must(404, "GET", "/v2/runtime-groups/"+group, nil)
	bAdmin := &client{t: t, base: h.slots[1].cp.base, token: h.token}
	bAdmin.must(201, "POST", "/v3/system-accounts/"+robot+"/assigned-roles",
		map[string]any{"role_name": "Viewer", "entity_type_name": "Runtime Groups", "entity_id": group, "entity_region": "*"})
	granted := time.Now()
	for a2.do("GET", "/v2/runtime-groups/"+group, nil).status != 200 {
		if time.Since(granted) > 10*time.Second {
			t.Fatal("the first process does not apply a role granted through the other after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
