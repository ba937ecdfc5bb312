package audit_test

import (
	"bufio"
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

	"github.com/gantry-gw/gantry/internal/cp/api"
	"github.com/gantry-gw/gantry/internal/cp/audit"
	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	st    *sqlstore.Store
	svc   *audit.Service
	srv   *httptest.Server
	token string
	org   string
	clk   *clock
}

func newEnv(t *testing.T, st *sqlstore.Store) *env {
	t.Helper()
	token := auth.NewToken()
	res, err := st.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(token), Hint: auth.Hint(token)}})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	svc, err := audit.New(audit.Options{Store: st, Now: clk.now, Webhook: audit.WebhookOptions{MinBackoff: time.Second, MaxBackoff: 4 * time.Second, BatchSize: 3}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Options{Store: st, Region: "us"})
	if err != nil {
		t.Fatal(err)
	}
	svc.Mount(a)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, svc: svc, srv: srv, token: token, org: res.Org.ID, clk: clk}
}

func (e *env) do(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if strings.Contains(string(raw), "0123456789abcdef-webhook") {
		e.t.Errorf("%s %s answered the webhook secret: %s", method, path, raw)
	}
	return res.StatusCode, out
}

// receiver is a webhook endpoint that fails its first failures requests.
type receiver struct {
	mu       sync.Mutex
	failures int
	requests int
	ids      []string
	badSig   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	if !audit.Verify("0123456789abcdef-webhook", body, r.Header.Get(audit.SignatureHeader)) || r.Header.Get("Content-Type") != "application/x-ndjson" {
		rc.badSig++
	}
	if rc.requests <= rc.failures {
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			rc.badSig++
			continue
		}
		rc.ids = append(rc.ids, e["id"].(string))
	}
}

func (rc *receiver) state() (requests int, ids []string, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests, append([]string(nil), rc.ids...), rc.badSig
}

// deliverUntil runs delivery rounds until cond holds: on a PostgreSQL server shared with other
// work, entries become deliverable once every older transaction ended.
func (e *env) deliverUntil(cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := e.svc.DeliverOnce(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal("delivery did not happen")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWebhookRetriesWithBackoffAndDeliversOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		rc := &receiver{failures: 2}
		hook := httptest.NewServer(rc)
		defer hook.Close()

		// Validation.
		for _, body := range []map[string]any{
			{"enabled": true},
			{"endpoint": "ftp://x", "secret": "0123456789abcdef-webhook"},
			{"endpoint": hook.URL, "secret": "short"},
			{"endpoint": hook.URL, "secret": "0123456789abcdef-webhook", "colour": "red"},
		} {
			if status, out := e.do("PATCH", "/v2/audit-log-webhook", body); status != 400 || out["status"] == nil {
				t.Errorf("PATCH %v = %d %v, want a 400 problem", body, status, out)
			}
		}
		status, out := e.do("PATCH", "/v2/audit-log-webhook", map[string]any{"endpoint": hook.URL, "secret": "0123456789abcdef-webhook", "enabled": true})
		if status != 200 || out["enabled"] != true || out["secret_set"] != true || out["endpoint"] != hook.URL {
			t.Fatalf("PATCH = %d %v", status, out)
		}
		// Entries recorded before the webhook was enabled are not sent; these three are, with
		// the webhook's own change.
		for _, action := range []string{"login", "logout", "login_failed"} {
			if err := e.svc.Append(context.Background(), store.AuditEntry{OrgID: e.org, Action: action, ActorName: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
		}
		all, _, err := st.ListAudit(context.Background(), store.AuditQuery{OrgID: e.org, Limit: 100})
		if err != nil || len(all) != 4 {
			t.Fatalf("log = %d entries, %v", len(all), err)
		}

		// First attempt fails: the failure and the next attempt are stored.
		e.deliverUntil(func() bool { n, _, _ := rc.state(); return n == 1 })
		_, out = e.do("GET", "/v2/audit-log-webhook", nil)
		st1 := out["status"].(map[string]any)
		if st1["failures"] != float64(1) || !strings.Contains(st1["last_error"].(string), "500") || st1["next_attempt_at"] != "2026-06-01T12:00:01Z" {
			t.Fatalf("after a failure: %v", out)
		}
		// Not due yet: nothing is sent.
		if err := e.svc.DeliverOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := rc.state(); n != 1 {
			t.Fatalf("sent during the back-off: %d requests", n)
		}
		// Second failure doubles the wait.
		e.clk.add(time.Second)
		e.deliverUntil(func() bool { n, _, _ := rc.state(); return n == 2 })
		_, out = e.do("GET", "/v2/audit-log-webhook", nil)
		if out["status"].(map[string]any)["next_attempt_at"] != "2026-06-01T12:00:03Z" {
			t.Fatalf("after two failures: %v", out)
		}
		e.clk.add(time.Second)
		if err := e.svc.DeliverOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := rc.state(); n != 2 {
			t.Fatalf("sent during the doubled back-off: %d requests", n)
		}
		// Then it succeeds: batches of three, all four entries, oldest first.
		e.clk.add(time.Second)
		e.deliverUntil(func() bool { _, ids, _ := rc.state(); return len(ids) == 4 })
		_, ids, bad := rc.state()
		if bad != 0 {
			t.Fatalf("%d deliveries with a bad signature or body", bad)
		}
		for i, id := range ids {
			if want := all[len(all)-1-i].ID; id != want {
				t.Fatalf("delivered %v, want the log's entries oldest first", ids)
			}
		}
		_, out = e.do("GET", "/v2/audit-log-webhook", nil)
		if st := out["status"].(map[string]any); st["failures"] != float64(0) || st["last_error"] != "" || st["last_delivered_at"] == nil {
			t.Fatalf("after success: %v", out)
		}
		// The cursor moved: a new entry is sent alone.
		if err := e.svc.Append(context.Background(), store.AuditEntry{OrgID: e.org, Action: "login", ActorName: "late"}); err != nil {
			t.Fatal(err)
		}
		e.deliverUntil(func() bool { _, ids, _ := rc.state(); return len(ids) == 5 })
		if err := e.svc.DeliverOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ids, _ := rc.state(); len(ids) != 5 {
			t.Fatalf("re-delivered after success: %d ids", len(ids))
		}
		// Disabled: nothing more is sent (the change itself is recorded, not delivered).
		if status, _ := e.do("PATCH", "/v2/audit-log-webhook", map[string]any{"enabled": false}); status != 200 {
			t.Fatal(status)
		}
		n, _, _ := rc.state()
		time.Sleep(50 * time.Millisecond)
		if err := e.svc.DeliverOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if m, _, _ := rc.state(); m != n {
			t.Fatal("a disabled webhook was sent to")
		}
	})
}

func TestRetention(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		now := e.clk.now()
		for _, age := range []time.Duration{366 * 24 * time.Hour, 365*24*time.Hour + time.Minute, 364 * 24 * time.Hour} {
			if err := e.svc.Append(context.Background(), store.AuditEntry{OrgID: e.org, Action: "login", Timestamp: now.Add(-age)}); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.svc.Prune(context.Background()); n != 2 {
			t.Fatalf("pruned %d, want 2 (default retention 365 days)", n)
		}
		if _, err := audit.New(audit.Options{Store: st, Retention: time.Hour}); err == nil {
			t.Fatal("a retention of one hour was accepted")
		}
	})
}

func TestListAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		e := newEnv(t, st)
		base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		for i := range 5 {
			if err := e.svc.Append(context.Background(), store.AuditEntry{OrgID: e.org, Action: "login", Timestamp: base.Add(time.Duration(i) * time.Hour),
				ActorID: "u", EntityType: "sessions", After: json.RawMessage(`{"csrf_token":"csrf-secret-value"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		status, out := e.do("GET", "/v2/audit-logs?filter[timestamp][gte]=2026-05-01T01:00:00Z&filter[timestamp][lte]=2026-05-01T03:00:00Z&page[size]=2", nil)
		data, _ := out["data"].([]any)
		if status != 200 || len(data) != 2 {
			t.Fatalf("= %d %v", status, out)
		}
		first := data[0].(map[string]any)
		if first["timestamp"] != "2026-05-01T03:00:00Z" || strings.Contains(first["after"].(map[string]any)["csrf_token"].(string), "secret") {
			t.Fatalf("first = %v", first)
		}
		next := out["meta"].(map[string]any)["page"].(map[string]any)["next"].(string)
		status, out = e.do("GET", "/v2/audit-logs?filter[timestamp][gte]=2026-05-01T01:00:00Z&filter[timestamp][lte]=2026-05-01T03:00:00Z&page[size]=2&page[after]="+next, nil)
		data, _ = out["data"].([]any)
		if status != 200 || len(data) != 1 || data[0].(map[string]any)["timestamp"] != "2026-05-01T01:00:00Z" || out["meta"].(map[string]any)["page"].(map[string]any)["next"] != nil {
			t.Fatalf("second page = %d %v", status, out)
		}
		status, out = e.do("GET", "/v2/audit-logs?filter[timestamp][gte]=2026-05-02T00:00:00Z&filter[timestamp][lte]=2026-05-01T00:00:00Z", nil)
		if status != 400 {
			t.Fatalf("inverted window = %d %v", status, out)
		}
	})
}
