package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// auditClient drives a running control plane over HTTP with the admin token.
type auditClient struct {
	t     *testing.T
	base  string
	token string
	n     int
}

// do sends one request with a fresh request id and returns the status, the decoded body and
// the request id it sent.
func (c *auditClient) do(method, path string, body any) (int, map[string]any, string) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	c.n++
	rid := fmt.Sprintf("audit-test-%d", c.n)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-Request-Id", rid)
	req.Header.Set("User-Agent", "audit-test/1.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out, rid
}

// must sends a request that must answer want.
func (c *auditClient) must(want int, method, path string, body any) (map[string]any, string) {
	c.t.Helper()
	status, out, rid := c.do(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s = %d %v, want %d", method, path, status, out, want)
	}
	return out, rid
}

func startAuditServer(t *testing.T, dialect, token string) string {
	t.Helper()
	so := storetest.Options(t, dialect)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Listen: "127.0.0.1:0", DataDir: so.DataDir, DatabaseURL: so.DatabaseURL, Region: "us",
			AdminToken: token, ShutdownTimeout: 5 * time.Second, Ready: func(a net.Addr) { addrc <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case a := <-addrc:
		return "http://" + a.String()
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return ""
}

// selfSigned returns a certificate and its private key, PEM encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audit.example"}, DNSNames: []string{"audit.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}

// want is one expected audit entry.
type want struct {
	rid        string
	action     string
	entityType string
	entityID   string
	group      string
	status     int
	// before and after: "" for absent (null), otherwise a substring the side must contain.
	before, after string
	// actorID and actorType, when set, replace the administrator as the expected actor of an
	// event outside a write (a login); such events have no token.
	actorID, actorType string
	// hasToken says that such an actor authenticated with a token.
	hasToken bool
}

// TestAuditLogRecordsEveryWrite makes one write of every kind through the HTTP API of a real
// control plane, and some that fail, then reads the audit log: each write has exactly one entry
// with the right actor, request, entity and before/after, failed writes have none, and no entry
// holds any secret the test created.
func TestAuditLogRecordsEveryWrite(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			const adminToken = "gpat_auditlogtestadmintoken0123456789"
			c := &auditClient{t: t, base: startAuditServer(t, dialect, adminToken), token: adminToken}
			me, _ := c.must(200, "GET", "/v2/users/me", nil)
			var wants []want
			expect := func(w want) { wants = append(wants, w) }
			secrets := []string{adminToken}

			g, rid := c.must(201, "POST", "/v2/runtime-groups", map[string]any{"name": "audited", "labels": map[string]string{"env": "test"}})
			gid := g["id"].(string)
			expect(want{rid: rid, action: "create", entityType: "runtime_groups", entityID: gid, group: gid, status: 201, after: `"name":"audited"`})
			_, rid = c.must(200, "PATCH", "/v2/runtime-groups/"+gid, map[string]any{"description": "changed"})
			expect(want{rid: rid, action: "update", entityType: "runtime_groups", entityID: gid, group: gid, status: 200, before: `"description":""`, after: `"description":"changed"`})

			ce := "/v2/runtime-groups/" + gid + "/core-entities"
			svc, rid := c.must(201, "POST", ce+"/services", map[string]any{"name": "svc", "url": "http://example.com"})
			expect(want{rid: rid, action: "create", entityType: "services", entityID: svc["id"].(string), group: gid, status: 201, after: `"name":"svc"`})
			route, rid := c.must(201, "POST", ce+"/routes", map[string]any{"name": "r1", "paths": []string{"/a"}, "service": map[string]any{"id": svc["id"]}})
			rtID := route["id"].(string)
			expect(want{rid: rid, action: "create", entityType: "routes", entityID: rtID, group: gid, status: 201, after: `"/a"`})
			_, rid = c.must(200, "PATCH", ce+"/routes/"+rtID, map[string]any{"paths": []string{"/b"}})
			expect(want{rid: rid, action: "update", entityType: "routes", entityID: rtID, group: gid, status: 200, before: `"/a"`, after: `"/b"`})
			cons, rid := c.must(201, "POST", ce+"/consumers", map[string]any{"username": "alice"})
			cid := cons["id"].(string)
			expect(want{rid: rid, action: "create", entityType: "consumers", entityID: cid, group: gid, status: 201, after: `"username":"alice"`})
			const kaKey = "ka-SECRET-key-auth-0123456789"
			ka, rid := c.must(201, "POST", ce+"/consumers/"+cid+"/key-auth", map[string]any{"key": kaKey})
			expect(want{rid: rid, action: "create", entityType: "keyauth_credentials", entityID: ka["id"].(string), group: gid, status: 201, after: `"consumer"`})
			// Addressed by its key, which the path then holds.
			_, rid = c.must(200, "PATCH", ce+"/consumers/"+cid+"/key-auth/"+kaKey, map[string]any{"tags": []string{"rotated"}})
			expect(want{rid: rid, action: "update", entityType: "keyauth_credentials", entityID: ka["id"].(string), group: gid, status: 200, before: `"key":"[redacted]"`, after: `"rotated"`})
			const baPassword = "ba-SECRET-password-0123456789"
			ba, rid := c.must(201, "POST", ce+"/consumers/"+cid+"/basic-auth", map[string]any{"username": "alice-basic", "password": baPassword})
			expect(want{rid: rid, action: "create", entityType: "basicauth_credentials", entityID: ba["id"].(string), group: gid, status: 201, after: `"alice-basic"`})
			certPEM, keyPEM := selfSigned(t)
			cert, rid := c.must(201, "POST", ce+"/certificates", map[string]any{"cert": certPEM, "key": keyPEM})
			expect(want{rid: rid, action: "create", entityType: "certificates", entityID: cert["id"].(string), group: gid, status: 201, after: "BEGIN CERTIFICATE"})
			_, rid = c.must(204, "DELETE", ce+"/routes/"+rtID, nil)
			expect(want{rid: rid, action: "delete", entityType: "routes", entityID: rtID, group: gid, status: 204, before: `"/b"`})
			secrets = append(secrets, kaKey, baPassword, pemBody(keyPEM))

			// Failed writes change nothing and record nothing.
			c.must(409, "POST", ce+"/services", map[string]any{"name": "svc", "url": "http://example.com"})
			c.must(400, "POST", ce+"/routes", map[string]any{"paths": 5})
			c.must(400, "POST", "/v2/runtime-groups", map[string]any{})
			c.must(404, "DELETE", "/v2/runtime-groups/00000000-0000-0000-0000-000000000000", nil)

			pat, rid := c.must(201, "POST", "/v2/users/me/personal-access-tokens", map[string]any{"name": "ci"})
			patID := pat["id"].(string)
			secrets = append(secrets, pat["token"].(string))
			expect(want{rid: rid, action: "token_create", entityType: "personal_access_tokens", entityID: patID, status: 201, after: `"name":"ci"`})
			_, rid = c.must(204, "DELETE", "/v2/users/me/personal-access-tokens/"+patID, nil)
			expect(want{rid: rid, action: "token_revoke", entityType: "personal_access_tokens", entityID: patID, status: 204, before: `"revoked_at":null`, after: `"revoked_at":"`})

			gen, rid := c.must(201, "POST", "/v2/runtime-groups/"+gid+"/dp-client-certificates/generate", map[string]any{"title": "gen"})
			genItem, _ := gen["item"].(map[string]any)
			if genItem == nil {
				genItem = gen
			}
			genID, _ := genItem["id"].(string)
			if k, _ := gen["key"].(string); k != "" {
				secrets = append(secrets, pemBody(k))
			}
			expect(want{rid: rid, action: "create", entityType: "dp_client_certificates", entityID: genID, group: gid, status: 201, after: "BEGIN CERTIFICATE"})
			_, rid = c.must(204, "DELETE", "/v2/runtime-groups/"+gid+"/dp-client-certificates/"+genID, nil)
			expect(want{rid: rid, action: "delete", entityType: "dp_client_certificates", entityID: genID, group: gid, status: 204, before: "BEGIN CERTIFICATE"})

			et, rid := c.must(201, "POST", "/v2/runtime-groups/"+gid+"/enrollment-tokens", map[string]any{})
			etItem, _ := et["item"].(map[string]any)
			etID, _ := etItem["id"].(string)
			etSecret, _ := et["token"].(string)
			if etID == "" || etSecret == "" {
				t.Fatalf("enrollment token answer %v", et)
			}
			secrets = append(secrets, etSecret, strings.SplitN(etSecret, ".", 2)[0])
			expect(want{rid: rid, action: "token_create", entityType: "enrollment_tokens", entityID: etID, group: gid, status: 201, after: `"status":"active"`})
			_, rid = c.must(204, "DELETE", "/v2/runtime-groups/"+gid+"/enrollment-tokens/"+etID, nil)
			expect(want{rid: rid, action: "token_revoke", entityType: "enrollment_tokens", entityID: etID, group: gid, status: 204, before: `"status":"active"`, after: `"status":"revoked"`})

			_, rid = c.must(201, "POST", "/v2/runtime-groups/"+gid+"/revisions/1/rollback", nil)
			expect(want{rid: rid, action: "rollback", entityType: "configuration", entityID: gid, group: gid, status: 201, after: `"changes"`})
			const importedKey = "imp-SECRET-key-auth-0123456789"
			decl := map[string]any{"_format_version": "3.0", "services": []any{map[string]any{"name": "imported", "url": "http://example.org"}},
				"consumers": []any{map[string]any{"username": "bob", "keyauth_credentials": []any{map[string]any{"key": importedKey}}}}}
			status, _, rid := c.do("POST", "/v2/runtime-groups/"+gid+"/declarative-config", decl)
			if status != 200 && status != 201 {
				t.Fatalf("import answered %d", status)
			}
			secrets = append(secrets, importedKey)
			expect(want{rid: rid, action: "import", entityType: "configuration", entityID: gid, group: gid, status: status, after: `"keyauth_credentials"`})

			const webhookSecret = "wh-SECRET-0123456789abcdef"
			_, rid = c.must(200, "PATCH", "/v2/audit-log-webhook", map[string]any{"endpoint": "http://127.0.0.1:9/hook", "secret": webhookSecret})
			secrets = append(secrets, webhookSecret)
			expect(want{rid: rid, action: "update", entityType: "audit_log_webhooks", status: 200, before: `"endpoint":""`, after: `"endpoint":"http://127.0.0.1:9/hook"`})

			g2, rid := c.must(201, "POST", "/v2/runtime-groups", map[string]any{"name": "doomed"})
			g2id := g2["id"].(string)
			expect(want{rid: rid, action: "create", entityType: "runtime_groups", entityID: g2id, group: g2id, status: 201, after: `"doomed"`})
			_, rid = c.must(204, "DELETE", "/v2/runtime-groups/"+g2id, nil)
			expect(want{rid: rid, action: "delete", entityType: "runtime_groups", entityID: g2id, group: g2id, status: 204, before: `"doomed"`})

			// Identities, teams, memberships, roles, system accounts and their tokens, logins.
			const userPassword, newPassword = "Viewer-SECRET-pw-123", "Changed-SECRET-pw-456"
			secrets = append(secrets, userPassword, newPassword)
			user, rid := c.must(201, "POST", "/v3/users", map[string]any{"email": "Viewer@example.com", "full_name": "Vi Ewer", "password": userPassword})
			uid := user["id"].(string)
			expect(want{rid: rid, action: "create", entityType: "users", entityID: uid, status: 201, after: `"email":"viewer@example.com"`})
			team, rid := c.must(201, "POST", "/v3/teams", map[string]any{"name": "viewers"})
			tid := team["id"].(string)
			expect(want{rid: rid, action: "create", entityType: "teams", entityID: tid, status: 201, after: `"name":"viewers"`})
			_, rid = c.must(201, "POST", "/v3/teams/"+tid+"/users", map[string]any{"id": uid})
			expect(want{rid: rid, action: "member_add", entityType: "team_members", entityID: tid + ":" + uid, status: 201, after: uid})
			ra, rid := c.must(201, "POST", "/v3/teams/"+tid+"/assigned-roles", map[string]any{"role_name": "Viewer", "entity_type_name": "Runtime Groups", "entity_id": gid, "entity_region": "us"})
			raID := ra["id"].(string)
			expect(want{rid: rid, action: "role_assign", entityType: "role_assignments", entityID: raID, group: gid, status: 201, after: `"role_name":"Viewer"`})
			sa, rid := c.must(201, "POST", "/v3/system-accounts", map[string]any{"name": "ci-bot"})
			said := sa["id"].(string)
			expect(want{rid: rid, action: "create", entityType: "system_accounts", entityID: said, status: 201, after: `"name":"ci-bot"`})
			sat, rid := c.must(201, "POST", "/v3/system-accounts/"+said+"/access-tokens", map[string]any{"name": "deploy"})
			secrets = append(secrets, sat["token"].(string))
			expect(want{rid: rid, action: "token_create", entityType: "system_account_tokens", entityID: sat["id"].(string), status: 201, after: `"name":"deploy"`})
			// A refused request changes nothing and is recorded as a denial of its actor.
			bot := &auditClient{t: t, base: c.base, token: sat["token"].(string), n: 1000}
			_, rid = bot.must(403, "POST", "/v2/runtime-groups", map[string]any{"name": "not-allowed"})
			expect(want{rid: rid, action: "denied", status: 403, actorID: said, actorType: "system_account", hasToken: true})
			_, rid = c.must(204, "DELETE", "/v3/teams/"+tid+"/assigned-roles/"+raID, nil)
			expect(want{rid: rid, action: "role_remove", entityType: "role_assignments", entityID: raID, group: gid, status: 204, before: `"role_name":"Viewer"`})
			_, rid = c.must(200, "PATCH", "/v3/users/"+uid, map[string]any{"password": newPassword})
			expect(want{rid: rid, action: "update", entityType: "users", entityID: uid, status: 200, before: `"password_set":true`, after: `"password_set":true`})
			_, rid = c.must(401, "POST", "/v3/authenticate", map[string]any{"username": "viewer@example.com", "password": userPassword})
			expect(want{rid: rid, action: "login_failed", entityType: "sessions", status: 401, actorType: "anonymous"})
			_, rid = c.must(200, "POST", "/v3/authenticate", map[string]any{"username": "viewer@example.com", "password": newPassword})
			expect(want{rid: rid, action: "login", entityType: "sessions", status: 200, actorID: uid, actorType: "user"})
			_, rid = c.must(204, "DELETE", "/v3/teams/"+tid+"/users/"+uid, nil)
			expect(want{rid: rid, action: "member_remove", entityType: "team_members", entityID: tid + ":" + uid, status: 204, before: uid})

			// Read the whole log, a few entries per page.
			var entries []map[string]any
			path := "/v2/audit-logs?page[size]=4"
			for pages := 0; ; pages++ {
				if pages > 50 {
					t.Fatal("paging does not end")
				}
				page, _ := c.must(200, "GET", path, nil)
				for _, d := range page["data"].([]any) {
					entries = append(entries, d.(map[string]any))
				}
				next, _ := page["meta"].(map[string]any)["page"].(map[string]any)["next"].(string)
				if next == "" {
					break
				}
				path = "/v2/audit-logs?page[size]=4&page[after]=" + next
			}
			if len(entries) != len(wants) {
				for _, e := range entries {
					t.Logf("entry: %v %v %v %v", e["action"], e["entity_type"], e["request_id"], e["status"])
				}
				t.Fatalf("%d entries, want %d (one per write)", len(entries), len(wants))
			}
			for i, w := range wants {
				e := entries[len(entries)-1-i] // newest first
				t.Run(fmt.Sprintf("%02d-%s-%s", i, w.action, w.entityType), func(t *testing.T) {
					checkEntry(t, e, w, me["id"].(string))
				})
			}
			all, _ := json.Marshal(entries)
			for _, s := range secrets {
				if s != "" && bytes.Contains(all, []byte(s)) {
					t.Errorf("secret %.12s… appears in the audit log", s)
				}
			}

			// Filters.
			count := func(q string) int {
				page, _ := c.must(200, "GET", "/v2/audit-logs?page[size]=1000&"+q, nil)
				return len(page["data"].([]any))
			}
			for q, n := range map[string]int{
				"filter[entity_type]=routes":                  3,
				"filter[entity_type][eq]=routes":              3,
				"filter[runtime_group_id]=" + g2id:            2,
				"filter[action]=delete":                       3,
				"filter[actor_id]=" + me["id"].(string):       len(wants) - 3,
				"filter[actor_id]=nobody":                     0,
				"filter[timestamp][gte]=2000-01-01T00:00:00Z": len(wants),
				"filter[timestamp][lte]=2000-01-01T00:00:00Z": 0,
			} {
				if got := count(q); got != n {
					t.Errorf("%s: %d entries, want %d", q, got, n)
				}
			}
			for _, q := range []string{"filter[nope]=x", "filter[timestamp][gte]=yesterday", "page[size]=0", "page[after]=xyz", "filter[action][contains]=x"} {
				status, body, _ := c.do("GET", "/v2/audit-logs?"+q, nil)
				if status != 400 || body["invalid_parameters"] == nil {
					t.Errorf("%s: %d %v, want a 400 problem naming the parameter", q, status, body)
				}
			}
		})
	}
}

func checkEntry(t *testing.T, e map[string]any, w want, actorID string) {
	t.Helper()
	str := func(k string) string { s, _ := e[k].(string); return s }
	if str("request_id") != w.rid {
		t.Fatalf("request_id %q, want %q (entries out of order?): %v", str("request_id"), w.rid, e)
	}
	if str("action") != w.action || str("entity_type") != w.entityType || (w.entityID != "" && str("entity_id") != w.entityID) || str("runtime_group_id") != w.group {
		t.Errorf("entry %v %v %v group %v, want %+v", e["action"], e["entity_type"], e["entity_id"], e["runtime_group_id"], w)
	}
	if int(e["status"].(float64)) != w.status {
		t.Errorf("status %v, want %d", e["status"], w.status)
	}
	wantActor, wantType, wantToken := actorID, "user", true
	if w.actorType != "" {
		wantActor, wantType, wantToken = w.actorID, w.actorType, w.hasToken
	}
	if (wantActor != "" && str("actor_id") != wantActor) || str("actor_type") != wantType || (str("token_id") != "") != wantToken ||
		str("source_address") != "127.0.0.1" || str("user_agent") != "audit-test/1.0" || str("http_method") == "" || !strings.HasPrefix(str("path"), "/v") || str("id") == "" {
		t.Errorf("request fields: %v", e)
	}
	for _, side := range []struct{ name, want string }{{"before", w.before}, {"after", w.after}} {
		raw, _ := json.Marshal(e[side.name])
		switch {
		case side.want == "" && e[side.name] != nil:
			t.Errorf("%s = %s, want null", side.name, raw)
		case side.want != "" && !strings.Contains(string(raw), side.want):
			t.Errorf("%s = %s, want it to contain %s", side.name, raw, side.want)
		}
	}
}

// pemBody returns the base64 of a PEM block's first line of data: a piece of the key that
// cannot appear by chance.
func pemBody(p string) string {
	lines := strings.Split(p, "\n")
	if len(lines) > 1 {
		return lines[1]
	}
	return p
}
