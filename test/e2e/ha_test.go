package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
)

// haCluster is several gantry serve processes on one PostgreSQL database, each with fixed API
// and cluster addresses so that it can be restarted in place.
type haCluster struct {
	t     *testing.T
	dbURL string
	token string
	slots []haSlot
}

type haSlot struct {
	base, cluster string
	cp            *controlPlane // nil while stopped
}

func newHACluster(t *testing.T, dbURL string, n int) *haCluster {
	h := &haCluster{t: t, dbURL: dbURL, token: auth.NewToken()}
	for range n {
		h.slots = append(h.slots, haSlot{base: "http://" + freeAddr(t), cluster: freeAddr(t)})
	}
	for i := range h.slots {
		h.start(i)
	}
	return h
}

// start runs process i on its addresses, with the shared admin token.
func (h *haCluster) start(i int) {
	h.t.Helper()
	s := &h.slots[i]
	args := []string{"serve", "--listen", strings.TrimPrefix(s.base, "http://"), "--database-url", h.dbURL,
		"--cluster-listen", s.cluster, "--cluster-endpoint", "https://" + s.cluster}
	p := start(h.t, []string{"GANTRY_ADMIN_TOKEN=" + h.token}, args...)
	waitReady(h.t, s.base+"/readyz")
	s.cp = &controlPlane{proc: p, base: s.base, cluster: s.cluster, token: h.token}
}

// up returns the indexes of the running processes.
func (h *haCluster) up() []int {
	var out []int
	for i, s := range h.slots {
		if s.cp != nil {
			out = append(out, i)
		}
	}
	return out
}

// any returns a running process chosen at random.
func (h *haCluster) any() (int, *controlPlane) {
	up := h.up()
	i := up[rand.N(len(up))]
	return i, h.slots[i].cp
}

// clusterList is the --control-plane value of runtime k: every cluster address, starting at a
// different one for each runtime so that the fleet spreads over the processes.
func (h *haCluster) clusterList(k int) string {
	var out []string
	for j := range h.slots {
		out = append(out, h.slots[(k+j)%len(h.slots)].cluster)
	}
	return strings.Join(out, ",")
}

// traffic sends requests through every runtime until stopped and counts the failures.
type traffic struct {
	ok, failed atomic.Int64
	mu         sync.Mutex // guards failures
	failures   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startTraffic(rts []*runtime, path string) *traffic {
	tr := &traffic{stop: make(chan struct{})}
	for _, rt := range rts {
		tr.wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-tr.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				res, err := client.Get("http://" + rt.proxy + path)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				if err != nil {
					tr.failed.Add(1)
					tr.mu.Lock()
					tr.failures = append(tr.failures, fmt.Sprintf("%s %s: %v", time.Now().Format(time.StampMilli), rt.proxy, err))
					tr.mu.Unlock()
					continue
				}
				tr.ok.Add(1)
			}
		})
	}
	return tr
}

func (tr *traffic) finish() (ok, failed int64, failures []string) {
	close(tr.stop)
	tr.wg.Wait()
	return tr.ok.Load(), tr.failed.Load(), tr.failures
}

// converge waits until every runtime reports want, failing after limit; it returns how long the
// slowest took.
func converge(t *testing.T, rts []*runtime, want string, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	var wg sync.WaitGroup
	took := make([]time.Duration, len(rts))
	for i, rt := range rts {
		wg.Go(func() {
			client := &http.Client{Timeout: time.Second}
			for time.Since(since) < limit+5*time.Second {
				res, err := client.Get("http://" + rt.status + "/status")
				if err == nil {
					var st struct {
						Hash string `json:"configuration_hash"`
					}
					_ = decodeJSON(res.Body, &st) // an unreadable answer is retried
					res.Body.Close()
					if st.Hash == want {
						took[i] = time.Since(since)
						return
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			took[i] = -1
		})
	}
	wg.Wait()
	slowest := time.Duration(0)
	for i, d := range took {
		if d < 0 || d > limit {
			t.Errorf("runtime %d (%s) reached hash %s after %v, limit %s", i, rts[i].status, want, d, limit)
		}
		slowest = max(slowest, d)
	}
	return slowest
}

// nodesSeenBy returns the group's nodes as process cp lists them: id -> status.
func nodesSeenBy(t *testing.T, cp *controlPlane, group string) map[string]string {
	t.Helper()
	code, out := cp.call(t, "GET", "/v2/runtime-groups/"+group+"/nodes", nil)
	if code != http.StatusOK {
		t.Fatalf("nodes through %s: %d %v", cp.base, code, out)
	}
	seen := map[string]string{}
	items, _ := out["items"].([]any)
	for _, it := range items {
		n := it.(map[string]any)
		seen[n["id"].(string)] = n["status"].(string)
	}
	return seen
}

// TestHAControlPlanes runs three control plane processes on one PostgreSQL database and six
// runtimes spread over them, with steady traffic through every runtime and a stream of
// configuration changes made through a random process. One process is SIGKILLed and restarted,
// then all three are rolled one by one. Throughout, no proxied request fails, every runtime
// converges to each change within 1 s while its process is up and within 5 s of its process
// going away, and every process's node catalogue agrees.
func TestHAControlPlanes(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	}))
	defer upstream.Close()

	h := newHACluster(t, storetest.NewPostgresDatabase(t), 3)
	first := h.slots[0].cp
	group := first.createGroup(t, "ha")
	certs := first.generateCert(t, group)
	first.entity(t, group, "services", map[string]any{"name": "web", "url": upstream.URL})
	first.entity(t, group, "services/web/routes", map[string]any{"name": "stable", "paths": []string{"/stable"}})

	var rts []*runtime
	for k := range 6 {
		rts = append(rts, startRuntime(t, h.clusterList(k), certs, t.TempDir()))
	}
	converge(t, rts, first.expectedHash(t, group), time.Now(), 30*time.Second)
	// The fleet is spread: every process holds some instances.
	waitFor(t, "instances spread over the three processes", func() bool {
		code, out := first.call(t, "GET", "/v2/control-plane-nodes", nil)
		procs, _ := out["data"].([]any)
		if code != http.StatusOK || len(procs) != 3 {
			return false
		}
		for _, p := range procs {
			if p.(map[string]any)["instances"].(float64) < 1 || p.(map[string]any)["status"] != "running" {
				return false
			}
		}
		return true
	})
	tr := startTraffic(rts, "/stable")

	n := 0
	var slowestUp, slowestFailover time.Duration
	// change makes one configuration change through a random running process and returns the
	// hash it leads to and when it was accepted.
	change := func() (string, time.Time) {
		t.Helper()
		n++
		_, cp := h.any()
		cp.entity(t, group, "services/web/routes", map[string]any{"name": fmt.Sprintf("r%d", n), "paths": []string{fmt.Sprintf("/r%d", n)}})
		return cp.expectedHash(t, group), time.Now()
	}
	steady := func(what string, count int) {
		t.Helper()
		for range count {
			want, at := change()
			slowestUp = max(slowestUp, converge(t, rts, want, at, time.Second))
		}
		t.Logf("%s: converged within %v", what, slowestUp)
	}
	agree := func(what string) {
		t.Helper()
		waitFor(t, "every process's catalogue agrees "+what, func() bool {
			var ref map[string]string
			for _, i := range h.up() {
				seen := nodesSeenBy(t, h.slots[i].cp, group)
				if len(seen) != len(rts) {
					return false
				}
				for _, st := range seen {
					if st != "in_sync" {
						return false
					}
				}
				if ref == nil {
					ref = seen
				} else if fmt.Sprint(ref) != fmt.Sprint(seen) {
					return false
				}
			}
			return true
		})
	}
	// goneAway makes a change right after process i went away: its instances fail over, and
	// every runtime has the change within 5 s.
	goneAway := func(i int) {
		t.Helper()
		want, at := change()
		d := converge(t, rts, want, at, 5*time.Second)
		slowestFailover = max(slowestFailover, d)
		t.Logf("process %d gone: every runtime converged within %v", i, d)
	}

	steady("three processes", 5)
	agree("with three processes")

	// A crash: SIGKILL, no goodbye to its instances or the database.
	h.slots[0].cp.kill()
	h.slots[0].cp = nil
	goneAway(0)
	steady("two processes after the crash", 3)
	agree("after the crash")
	h.start(0)
	steady("after the restart", 3)

	// A rolling restart, one process at a time.
	for i := range h.slots {
		h.slots[i].cp.stop()
		h.slots[i].cp = nil
		goneAway(i)
		steady(fmt.Sprintf("while process %d is down", i), 2)
		h.start(i)
		steady(fmt.Sprintf("after process %d is back", i), 2)
	}
	agree("after the rolling restart")

	ok, failed, failures := tr.finish()
	t.Logf("proxied requests: %d ok, %d failed; slowest convergence %v with its process up, %v after a process went away",
		ok, failed, slowestUp, slowestFailover)
	if failed != 0 {
		t.Errorf("%d proxied requests failed, want 0; first ones: %v", failed, failures[:min(len(failures), 5)])
	}
	if ok < 1000 {
		t.Errorf("only %d proxied requests succeeded: the traffic did not run", ok)
	}
	// Each process lists the three that run; the crashed one shows as unreachable once it missed
	// three heartbeats (15 s).
	waitFor(t, "the crashed process listed as unreachable", func() bool {
		code, out := h.slots[1].cp.call(t, "GET", "/v2/control-plane-nodes", nil)
		procs, _ := out["data"].([]any)
		var running, unreachable, instances int
		for _, p := range procs {
			pm := p.(map[string]any)
			switch pm["status"] {
			case "running":
				running++
				instances += int(pm["instances"].(float64))
			case "unreachable":
				unreachable++
			}
		}
		return code == http.StatusOK && running == 3 && unreachable == 1 && instances == len(rts)
	})
}

// tcpGate forwards connections to a target until it is closed, which drops every connection and
// refuses new ones until it is opened again on the same address: a database that goes away.
type tcpGate struct {
	addr, target string
	mu           sync.Mutex // guards ln and conns
	ln           net.Listener
	conns        []net.Conn
}

func newTCPGate(t *testing.T, target string) *tcpGate {
	g := &tcpGate{addr: freeAddr(t), target: target}
	g.open(t)
	t.Cleanup(g.close)
	return g
}

func (g *tcpGate) open(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, up)
			g.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

func (g *tcpGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// TestDatabaseOutage: with the database unreachable for 30 s, runtimes keep serving, the API
// answers 503 (problem+json, and Kong's shape in the Admin API) and /readyz fails; writes resume
// afterwards and reach the runtimes.
func TestDatabaseOutage(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	db, err := url.Parse(storetest.NewPostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	gate := newTCPGate(t, db.Host)
	db.Host = gate.addr
	h := &haCluster{t: t, dbURL: db.String(), token: auth.NewToken(), slots: []haSlot{{base: "http://" + freeAddr(t), cluster: freeAddr(t)}}}
	h.start(0)
	cp := h.slots[0].cp
	group := cp.createGroup(t, "outage")
	certs := cp.generateCert(t, group)
	cp.entity(t, group, "services", map[string]any{"name": "web", "url": upstream.URL})
	cp.entity(t, group, "services/web/routes", map[string]any{"name": "stable", "paths": []string{"/stable"}})
	rt := startRuntime(t, cp.cluster, certs, t.TempDir())
	converge(t, []*runtime{rt}, cp.expectedHash(t, group), time.Now(), 30*time.Second)
	tr := startTraffic([]*runtime{rt}, "/stable")

	gate.close()
	outageStart := time.Now()
	for time.Since(outageStart) < 30*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, body, ctype := rawCall(t, ctx, "GET", cp.base+"/v2/runtime-groups", h.token)
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(ctype, "application/problem+json") || !strings.Contains(body, "database is unreachable") {
			t.Errorf("GET /v2/runtime-groups during the outage: %d %s %s", code, ctype, body)
		}
		code, body, _ = rawCall(t, ctx, "POST", cp.base+"/v2/runtime-groups/"+group+"/core-entities/services", h.token)
		// Authentication reads the database first, so a write is refused before the Admin API
		// sees it: the management API's 503.
		if code != http.StatusServiceUnavailable {
			t.Errorf("Admin API write during the outage: %d %s", code, body)
		}
		code, body, _ = rawCall(t, ctx, "GET", cp.base+"/readyz", "")
		if code != http.StatusServiceUnavailable {
			t.Errorf("/readyz during the outage: %d %s", code, body)
		}
		cancel()
		if t.Failed() {
			break
		}
		time.Sleep(2 * time.Second)
	}
	gate.open(t)
	waitReady(t, cp.base+"/readyz")
	cp.entity(t, group, "services/web/routes", map[string]any{"name": "after", "paths": []string{"/after"}})
	// The pool may still hold connections the outage broke; each fails once and is replaced.
	converge(t, []*runtime{rt}, cp.expectedHash(t, group), time.Now(), 10*time.Second)
	if code, body := rt.get(t, "/after"); code != http.StatusOK {
		t.Errorf("route written after the outage: %d %s", code, body)
	}
	ok, failed, failures := tr.finish()
	if failed != 0 || ok < 100 {
		t.Errorf("proxied requests through the outage: %d ok, %d failed %v", ok, failed, failures[:min(len(failures), 5)])
	}
}

// rawCall sends an empty-bodied request and returns the status, body and content type.
func rawCall(t *testing.T, ctx context.Context, method, url, token string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header.Get("Content-Type")
}

// decodeJSON decodes one JSON value from r into v.
func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
