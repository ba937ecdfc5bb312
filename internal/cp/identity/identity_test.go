package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/identity"
	"github.com/gantry-gw/gantry/internal/cp/password"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

const adminPassword = "Admin password 1"

// clock is a settable time source shared by the API and the identity service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t         *testing.T
	srv       *httptest.Server
	store     *sqlstore.Store
	token     string
	adminUser store.User
	clock     *clock
	mu        sync.Mutex
	audits    []store.AuditEntry
}

type envOpts struct {
	tls    bool
	limits identity.LoginLimits
}

func newEnv(t *testing.T, s *sqlstore.Store, o envOpts) *env {
	t.Helper()
	token := auth.NewToken()
	h, err := password.Hash(adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminEmail: "admin@example.com", AdminPasswordHash: h,
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: s, token: token, adminUser: res.Admin, clock: &clock{t: time.Now().UTC()}}
	a, err := api.New(api.Options{Store: s, Region: "us", Now: e.clock.Now, SessionIdleTimeout: 30 * time.Minute, SessionMaxAge: 12 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := identity.New(identity.Options{Store: s, LoginLimits: o.limits, Audit: func(_ context.Context, ae store.AuditEntry) {
		e.mu.Lock()
		e.audits = append(e.audits, ae)
		e.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	svc.Mount(a)
	// whoami shows the principal; without a policy rule only organization admins reach it.
	a.Mount("GET /test/whoami", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := api.PrincipalFrom(r.Context())
		api.WriteJSON(w, 200, p)
	}))
	if o.tls {
		e.srv = httptest.NewTLSServer(a.Handler())
	} else {
		e.srv = httptest.NewServer(a.Handler())
	}
	t.Cleanup(e.srv.Close)
	return e
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// req sends a request; auth is a bearer token, or a session cookie when it starts with
// "cookie:" (then csrf, if not empty, goes in X-CSRF-Token).
func (e *env) req(method, path, authn, csrf string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c, ok := strings.CutPrefix(authn, "cookie:"); ok {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: c})
	} else if authn != "" {
		req.Header.Set("Authorization", "Bearer "+authn)
	}
	if csrf != "" {
		req.Header.Set(api.CSRFHeader, csrf)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: body is not JSON: %s", method, path, raw)
		}
	}
	return r
}

func (e *env) admin(method, path string, body any) resp {
	e.t.Helper()
	return e.req(method, path, e.token, "", body)
}

// login logs in and returns the session cookie and the response.
func (e *env) login(user, pw string) (*http.Cookie, resp) {
	e.t.Helper()
	r := e.req("POST", "/v3/authenticate", "", "", map[string]any{"username": user, "password": pw})
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == api.SessionCookie && c.Value != "" {
			return c, r
		}
	}
	return nil, r
}

func wantStatus(t *testing.T, r resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if status >= 400 && (r.header.Get("Content-Type") != "application/problem+json" || r.body["detail"] == "") {
		t.Fatalf("error answer is not problem+json: %s %s", r.header.Get("Content-Type"), r.raw)
	}
}

// wantField checks a 400 names field among its invalid parameters.
func wantField(t *testing.T, r resp, field string) {
	t.Helper()
	wantStatus(t, r, 400)
	params, _ := r.body["invalid_parameters"].([]any)
	for _, p := range params {
		if p.(map[string]any)["field"] == field {
			return
		}
	}
	t.Fatalf("400 does not name %q: %s", field, r.raw)
}

func TestSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s, envOpts{})
		cookie, r := e.login("ADMIN@example.com", adminPassword)
		wantStatus(t, r, 200)
		if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.Secure {
			t.Fatalf("session cookie over plain HTTP = %+v", cookie)
		}
		csrf, _ := r.body["csrf_token"].(string)
		if csrf == "" || r.body["email"] != "admin@example.com" || r.body["id"] != e.adminUser.ID {
			t.Fatalf("login answer: %s", r.raw)
		}
		if strings.Contains(r.raw, "argon2") {
			t.Fatal("login answer shows the password hash")
		}
		var stored int
		if err := s.DB().QueryRow(s.Rebind(`SELECT COUNT(*) FROM sessions WHERE id = ?`), cookie.Value).Scan(&stored); err != nil || stored != 0 {
			t.Fatalf("the cookie's secret is stored in clear (%d, %v)", stored, err)
		}
		ck := "cookie:" + cookie.Value

		me := e.req("GET", "/v3/users/me", ck, "", nil)
		wantStatus(t, me, 200)
		if me.body["csrf_token"] != csrf {
			t.Fatalf("users/me with the session: %s", me.raw)
		}
		if tokMe := e.admin("GET", "/v3/users/me", nil); tokMe.body["csrf_token"] != nil {
			t.Fatalf("users/me with a token shows a csrf token: %s", tokMe.raw)
		}
		who := e.req("GET", "/test/whoami", ck, "", nil)
		wantStatus(t, who, 200)
		if who.body["Method"] != store.AuthSession || who.body["Kind"] != store.KindUser || who.body["Name"] != "admin@example.com" ||
			who.body["SessionID"] == "" || who.body["TokenID"] != "" || who.body["UserID"] != e.adminUser.ID || who.body["OrgID"] != e.adminUser.OrgID {
			t.Fatalf("session principal: %s", who.raw)
		}

		t.Run("csrf", func(t *testing.T) {
			body := map[string]any{"full_name": "Ada Admin"}
			wantStatus(t, e.req("PATCH", "/v3/users/me", ck, "", body), 403)
			wantStatus(t, e.req("PATCH", "/v3/users/me", ck, "wrong", body), 403)
			wantStatus(t, e.req("POST", "/v3/logout", ck, "", nil), 403)
			ok := e.req("PATCH", "/v3/users/me", ck, csrf, body)
			wantStatus(t, ok, 200)
			if ok.body["full_name"] != "Ada Admin" {
				t.Fatalf("patch: %s", ok.raw)
			}
			// Tokens need no CSRF token.
			wantStatus(t, e.admin("PATCH", "/v3/users/me", map[string]any{"full_name": "Admin"}), 200)
		})

		t.Run("idle expiry", func(t *testing.T) {
			c, _ := e.login("admin@example.com", adminPassword)
			// Used every 20 minutes, the session lives on past the 30 minute idle limit.
			for range 3 {
				e.clock.Add(20 * time.Minute)
				wantStatus(t, e.req("GET", "/v3/users/me", "cookie:"+c.Value, "", nil), 200)
			}
			e.clock.Add(31 * time.Minute)
			r := e.req("GET", "/v3/users/me", "cookie:"+c.Value, "", nil)
			wantStatus(t, r, 401)
			if !strings.Contains(r.header.Get("Set-Cookie"), api.SessionCookie+"=;") {
				t.Fatalf("ended session's cookie not cleared: %q", r.header.Get("Set-Cookie"))
			}
		})

		t.Run("absolute expiry", func(t *testing.T) {
			c, _ := e.login("admin@example.com", adminPassword)
			for elapsed := time.Duration(0); elapsed < 12*time.Hour-25*time.Minute; elapsed += 25 * time.Minute {
				e.clock.Add(25 * time.Minute)
				wantStatus(t, e.req("GET", "/v3/users/me", "cookie:"+c.Value, "", nil), 200)
			}
			e.clock.Add(25 * time.Minute)
			wantStatus(t, e.req("GET", "/v3/users/me", "cookie:"+c.Value, "", nil), 401)
		})

		t.Run("logout", func(t *testing.T) {
			c, r := e.login("admin@example.com", adminPassword)
			out := e.req("POST", "/v3/logout", "cookie:"+c.Value, r.body["csrf_token"].(string), nil)
			wantStatus(t, out, 204)
			if !strings.Contains(out.header.Get("Set-Cookie"), "Max-Age=0") {
				t.Fatalf("logout does not clear the cookie: %q", out.header.Get("Set-Cookie"))
			}
			wantStatus(t, e.req("GET", "/v3/users/me", "cookie:"+c.Value, "", nil), 401)
		})

		t.Run("inactive user", func(t *testing.T) {
			wantStatus(t, e.admin("POST", "/v3/users", map[string]any{"email": "bob@example.com", "password": "Bob password 1"}), 201)
			c, r := e.login("bob@example.com", "Bob password 1")
			wantStatus(t, r, 200)
			if _, err := s.DB().Exec(s.Rebind(`UPDATE users SET active = ? WHERE email = ?`), false, "bob@example.com"); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, e.req("GET", "/v3/users/me", "cookie:"+c.Value, "", nil), 401)
			_, again := e.login("bob@example.com", "Bob password 1")
			wantStatus(t, again, 401)
		})

		e.mu.Lock()
		defer e.mu.Unlock()
		actions := map[string]int{}
		for _, a := range e.audits {
			actions[a.Action]++
			if a.Action == "login" && a.ActorName == "admin@example.com" && (a.ActorID != e.adminUser.ID || a.AuthMethod != store.AuthSession || a.Path != "/v3/authenticate" || a.RequestID == "") {
				t.Fatalf("login audit entry = %+v", a)
			}
		}
		if actions["login"] < 4 || actions["logout"] != 1 || actions["login_failed"] != 1 {
			t.Fatalf("audit actions = %v", actions)
		}
	})
}

func TestSessionCookieOverTLS(t *testing.T) {
	e := newEnv(t, storetest.Open(t, "sqlite"), envOpts{tls: true})
	c, r := e.login("admin@example.com", adminPassword)
	wantStatus(t, r, 200)
	if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie over TLS = %+v", c)
	}
}

func TestLoginFailuresAndRateLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s, envOpts{limits: identity.LoginLimits{PerAccount: 3, PerAddress: 5, Window: time.Minute}})
		_, unknown := e.login("nobody@example.com", adminPassword)
		_, wrong := e.login("admin@example.com", "Wrong password 1")
		wantStatus(t, unknown, 401)
		wantStatus(t, wrong, 401)
		if unknown.body["detail"] != wrong.body["detail"] || unknown.header.Get("Set-Cookie") != "" {
			t.Fatalf("unknown user and wrong password answered differently: %s / %s", unknown.raw, wrong.raw)
		}
		wantField(t, e.req("POST", "/v3/authenticate", "", "", map[string]any{"username": "admin@example.com"}), "password")
		wantField(t, e.req("POST", "/v3/authenticate", "", "", map[string]any{"username": "a", "password": "b", "extra": 1}), "extra")

		// Two more failures block the account, even for the right password.
		e.login("admin@example.com", "Wrong password 2")
		e.login("admin@example.com", "Wrong password 3")
		_, blocked := e.login("admin@example.com", adminPassword)
		wantStatus(t, blocked, 429)
		if ra := blocked.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After = %q", ra)
		}
		// The address has failed four times; one more failure for another account blocks it.
		e.login("carol@example.com", "Wrong password 4")
		_, addrBlocked := e.login("dave@example.com", "Wrong password 5")
		wantStatus(t, addrBlocked, 429)

		e.clock.Add(61 * time.Second)
		c, ok := e.login("admin@example.com", adminPassword)
		wantStatus(t, ok, 200)
		if c == nil {
			t.Fatal("no cookie after the window passed")
		}
	})
}

func TestIdentityAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s, envOpts{})
		// Users.
		ann := e.admin("POST", "/v3/users", map[string]any{"email": "Ann@Example.com", "full_name": "Ann", "password": "Ann password 1"})
		wantStatus(t, ann, 201)
		annID := ann.body["id"].(string)
		if ann.body["email"] != "ann@example.com" || ann.body["active"] != true || strings.Contains(ann.raw, "password") {
			t.Fatalf("created user: %s", ann.raw)
		}
		wantStatus(t, e.admin("POST", "/v3/users", map[string]any{"email": "ANN@example.com"}), 409)
		wantField(t, e.admin("POST", "/v3/users", map[string]any{"email": "not an email"}), "email")
		wantField(t, e.admin("POST", "/v3/users", map[string]any{"email": "x@example.com", "password": "short"}), "password")
		wantField(t, e.admin("POST", "/v3/users", map[string]any{}), "email")
		list := e.admin("GET", "/v3/users?filter[email][contains]=ANN&page[size]=5", nil)
		wantStatus(t, list, 200)
		if data := list.body["data"].([]any); len(data) != 1 || data[0].(map[string]any)["id"] != annID {
			t.Fatalf("filtered users: %s", list.raw)
		}
		wantField(t, e.admin("GET", "/v3/users?filter[password][eq]=x", nil), "filter[password][eq]")
		wantField(t, e.admin("GET", "/v3/users?page[size]=1000", nil), "page[size]")
		wantStatus(t, e.admin("GET", "/v3/users/"+annID, nil), 200)
		wantStatus(t, e.admin("GET", "/v3/users/not-a-uuid", nil), 404)
		p := e.admin("PATCH", "/v3/users/"+annID, map[string]any{"full_name": "Ann B", "email": "ann.b@example.com"})
		wantStatus(t, p, 200)
		if p.body["full_name"] != "Ann B" || p.body["email"] != "ann.b@example.com" {
			t.Fatalf("patched user: %s", p.raw)
		}
		wantField(t, e.admin("PATCH", "/v3/users/"+e.adminUser.ID, map[string]any{"active": false}), "active")
		wantStatus(t, e.admin("DELETE", "/v3/users/"+e.adminUser.ID, nil), 400)
		// Not even another organization admin deletes the first administrator.
		annAdmin := e.admin("POST", "/v3/users", map[string]any{"email": "second@example.com", "password": "Second password 1"})
		wantStatus(t, annAdmin, 201)
		oa := e.admin("GET", "/v3/teams?filter[name]=Organization%20Admin", nil).body["data"].([]any)[0].(map[string]any)["id"].(string)
		// The organization keeps at least one active user among its Organization Admins.
		last := e.admin("DELETE", "/v3/teams/"+oa+"/users/"+e.adminUser.ID, nil)
		wantStatus(t, last, 409)
		if !strings.Contains(last.body["detail"].(string), "at least one active user in the Organization Admin team") {
			t.Fatalf("removing the last organization admin: %s", last.raw)
		}
		if r := e.admin("GET", "/v3/teams/"+oa+"/users", nil); !strings.Contains(r.raw, e.adminUser.ID) {
			t.Fatalf("the refused removal removed the member: %s", r.raw)
		}
		wantStatus(t, e.admin("POST", "/v3/teams/"+oa+"/users", map[string]any{"id": annAdmin.body["id"]}), 201)
		// With another admin left, a member may leave the team.
		wantStatus(t, e.admin("DELETE", "/v3/teams/"+oa+"/users/"+annAdmin.body["id"].(string), nil), 204)
		wantStatus(t, e.admin("POST", "/v3/teams/"+oa+"/users", map[string]any{"id": annAdmin.body["id"]}), 201)
		secondCookie, secondLogin := e.login("second@example.com", "Second password 1")
		wantStatus(t, secondLogin, 200)
		refused := e.req("DELETE", "/v3/users/"+e.adminUser.ID, "cookie:"+secondCookie.Value, secondLogin.body["csrf_token"].(string), nil)
		wantStatus(t, refused, 400)
		if !strings.Contains(refused.body["detail"].(string), "first administrator") {
			t.Fatalf("refusal: %s", refused.raw)
		}

		// Changing one's own password needs the current one.
		annCookie, annLogin := e.login("ann.b@example.com", "Ann password 1")
		wantStatus(t, annLogin, 200)
		annCK, annCSRF := "cookie:"+annCookie.Value, annLogin.body["csrf_token"].(string)
		wantField(t, e.req("PATCH", "/v3/users/me", annCK, annCSRF, map[string]any{"password": "Ann password 2"}), "current_password")
		wantField(t, e.req("PATCH", "/v3/users/me", annCK, annCSRF, map[string]any{"password": "Ann password 2", "current_password": "nope"}), "current_password")
		annOther, _ := e.login("ann.b@example.com", "Ann password 1")
		wantStatus(t, e.req("PATCH", "/v3/users/me", annCK, annCSRF, map[string]any{"password": "Ann password 2", "current_password": "Ann password 1"}), 200)
		_, old := e.login("ann.b@example.com", "Ann password 1")
		wantStatus(t, old, 401)
		// The changing session lives on; the user's other session ended.
		wantStatus(t, e.req("GET", "/v3/users/me", annCK, "", nil), 200)
		wantStatus(t, e.req("GET", "/v3/users/me", "cookie:"+annOther.Value, "", nil), 401)
		// An administrator setting the password ends every session of the user.
		wantStatus(t, e.admin("PATCH", "/v3/users/"+annID, map[string]any{"password": "Ann password 3"}), 200)
		wantStatus(t, e.req("GET", "/v3/users/me", annCK, "", nil), 401)
		annCookie, annLogin = e.login("ann.b@example.com", "Ann password 3")
		wantStatus(t, annLogin, 200)
		annCK = "cookie:" + annCookie.Value

		// Teams and predefined teams.
		teams := e.admin("GET", "/v3/teams?filter[name]=Organization%20Admin", nil)
		wantStatus(t, teams, 200)
		orgAdmin := teams.body["data"].([]any)[0].(map[string]any)
		if orgAdmin["system_team"] != true {
			t.Fatalf("predefined team: %s", teams.raw)
		}
		oaID := orgAdmin["id"].(string)
		wantStatus(t, e.admin("DELETE", "/v3/teams/"+oaID, nil), 400)
		wantStatus(t, e.admin("PATCH", "/v3/teams/"+oaID, map[string]any{"name": "Admins"}), 400)
		team := e.admin("POST", "/v3/teams", map[string]any{"name": "sre", "description": "on call"})
		wantStatus(t, team, 201)
		teamID := team.body["id"].(string)
		if team.body["system_team"] != false {
			t.Fatalf("team: %s", team.raw)
		}
		wantStatus(t, e.admin("POST", "/v3/teams", map[string]any{"name": "sre"}), 409)
		wantField(t, e.admin("POST", "/v3/teams", map[string]any{"name": ""}), "name")
		wantStatus(t, e.admin("POST", "/v3/teams/"+teamID+"/users", map[string]any{"id": annID}), 201)
		wantStatus(t, e.admin("POST", "/v3/teams/"+teamID+"/users", map[string]any{"id": annID}), 409)
		members := e.admin("GET", "/v3/teams/"+teamID+"/users", nil)
		if members.body["meta"].(map[string]any)["page"].(map[string]any)["total"] != float64(1) {
			t.Fatalf("members: %s", members.raw)
		}

		// System accounts and their tokens.
		ci := e.admin("POST", "/v3/system-accounts", map[string]any{"name": "ci", "description": "pipelines"})
		wantStatus(t, ci, 201)
		ciID := ci.body["id"].(string)
		if ci.body["konnect_managed"] != false {
			t.Fatalf("system account: %s", ci.raw)
		}
		wantStatus(t, e.admin("POST", "/v3/system-accounts", map[string]any{"name": "ci"}), 409)
		wantField(t, e.admin("POST", "/v3/teams/"+teamID+"/users", map[string]any{"id": ciID}), "id")
		wantStatus(t, e.admin("POST", "/v3/teams/"+oaID+"/system-accounts", map[string]any{"id": ciID}), 201)
		tok := e.admin("POST", "/v3/system-accounts/"+ciID+"/access-tokens", map[string]any{"name": "deploy"})
		wantStatus(t, tok, 201)
		secret, _ := tok.body["token"].(string)
		if !strings.HasPrefix(secret, auth.SystemTokenPrefix) {
			t.Fatalf("system account token: %s", tok.raw)
		}
		if l := e.admin("GET", "/v3/system-accounts/"+ciID+"/access-tokens", nil); strings.Contains(l.raw, secret) || len(l.body["data"].([]any)) != 1 {
			t.Fatalf("token list: %s", l.raw)
		}
		who := e.req("GET", "/test/whoami", secret, "", nil)
		wantStatus(t, who, 200)
		if who.body["Method"] != store.AuthSystemToken || who.body["Kind"] != store.KindSystemAccount || who.body["Name"] != "ci" || who.body["TokenID"] != tok.body["id"] {
			t.Fatalf("system account principal: %s", who.raw)
		}
		wantStatus(t, e.req("GET", "/v3/users/me", secret, "", nil), 404)
		// A deactivated account's token is refused; reactivated, it works again.
		wantStatus(t, e.admin("PATCH", "/v3/system-accounts/"+ciID, map[string]any{"active": false}), 200)
		wantStatus(t, e.req("GET", "/test/whoami", secret, "", nil), 401)
		wantStatus(t, e.admin("PATCH", "/v3/system-accounts/"+ciID, map[string]any{"active": true}), 200)
		wantStatus(t, e.req("GET", "/test/whoami", secret, "", nil), 200)
		wantStatus(t, e.admin("DELETE", "/v3/system-accounts/"+ciID+"/access-tokens/"+tok.body["id"].(string), nil), 204)
		wantStatus(t, e.req("GET", "/test/whoami", secret, "", nil), 401)

		// Personal access tokens act as their user, and die with it.
		who = e.admin("GET", "/test/whoami", nil)
		if who.body["Method"] != store.AuthPersonalToken || who.body["Name"] != "admin@example.com" || who.body["Kind"] != store.KindUser {
			t.Fatalf("admin token principal: %s", who.raw)
		}
		wantStatus(t, e.admin("DELETE", "/v3/teams/"+teamID+"/users/"+annID, nil), 204)
		wantStatus(t, e.admin("DELETE", "/v3/teams/"+teamID+"/users/"+annID, nil), 404)
		wantStatus(t, e.admin("DELETE", "/v3/teams/"+teamID, nil), 204)
		wantStatus(t, e.admin("DELETE", "/v3/users/"+annID, nil), 204)
		wantStatus(t, e.req("GET", "/v3/users/me", annCK, "", nil), 401)
		wantStatus(t, e.admin("DELETE", "/v3/system-accounts/"+ciID, nil), 204)
		wantStatus(t, e.admin("GET", "/v3/system-accounts/"+ciID, nil), 404)
	})
}

// TestLoginWithHostileText logs in with a user agent that is long, multi-byte and holds an invalid
// UTF-8 byte, and fails a login with such a username: the session is stored (PostgreSQL refuses
// invalid UTF-8 text) and what the audit log gets is valid UTF-8 within its bounds.
func TestLoginWithHostileText(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *sqlstore.Store) {
		e := newEnv(t, s, envOpts{})
		send := func(user string) int {
			body, _ := json.Marshal(map[string]string{"username": user, "password": adminPassword})
			req, _ := http.NewRequest("POST", e.srv.URL+"/v3/authenticate", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "\xff"+strings.Repeat("é", 400))
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode
		}
		if code := send("admin@example.com"); code != 200 {
			t.Fatalf("login with a hostile user agent: %d", code)
		}
		if code := send(strings.Repeat("é", 200)); code != 401 {
			t.Fatalf("login as an unknown multi-byte name: %d", code)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.audits) != 2 {
			t.Fatalf("%d audit entries, want 2", len(e.audits))
		}
		for _, a := range e.audits {
			if !utf8.ValidString(a.UserAgent) || len(a.UserAgent) > 512 || !utf8.ValidString(a.ActorName) || len(a.ActorName) > 254 {
				t.Errorf("entry %s: user agent of %d bytes (valid %v), actor name %q", a.Action, len(a.UserAgent), utf8.ValidString(a.UserAgent), a.ActorName)
			}
		}
	})
}
