package health

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/balancer"
)

// lockedBuffer is a log sink safe for the checkers' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	reg  *Registry
	logs *lockedBuffer

	mu      sync.Mutex
	changes []Change
}

func (h *harness) changeList() []Change {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Change(nil), h.changes...)
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{logs: &lockedBuffer{}}
	opts.Logger = slog.New(slog.NewJSONHandler(h.logs, nil))
	opts.OnChange = func(c Change) {
		h.mu.Lock()
		h.changes = append(h.changes, c)
		h.mu.Unlock()
	}
	reg, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.reg = reg
	t.Cleanup(func() { reg.Close() })
	return h
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statusServer is a real HTTP upstream whose health endpoint answers a
// status the test sets, and that records what probes send.
type statusServer struct {
	*httptest.Server
	status atomic.Int32
	hits   atomic.Int64

	mu       sync.Mutex
	lastPath string
	lastHost string
	lastHdr  string
}

func newStatusServer(t *testing.T, tlsServer bool) *statusServer {
	s := &statusServer{}
	s.status.Store(200)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.lastPath, s.lastHost, s.lastHdr = r.URL.Path, r.Host, r.Header.Get("X-Probe")
		s.mu.Unlock()
		w.WriteHeader(int(s.status.Load()))
	})
	s.Server = httptest.NewUnstartedServer(h)
	// Failed handshakes are expected in the certificate tests.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsServer {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *statusServer) addr() string { return s.Listener.Addr().String() }

func activeConfig(typ string, interval time.Duration) Config {
	c := DefaultConfig()
	c.Active.Type = typ
	c.Active.Timeout = 500 * time.Millisecond
	c.Active.Healthy.Interval = interval
	c.Active.Healthy.Successes = 2
	c.Active.Unhealthy.Interval = interval
	c.Active.Unhealthy.HTTPFailures = 2
	c.Active.Unhealthy.TCPFailures = 2
	c.Active.Unhealthy.Timeouts = 2
	return c
}

func TestActiveHTTPTargetLeavesAndReturns(t *testing.T) {
	h := newHarness(t, Options{})
	flaky, steady := newStatusServer(t, false), newStatusServer(t, false)
	cfg := activeConfig("http", 20*time.Millisecond)
	cfg.Active.HTTPPath = "/status/ready"
	cfg.Active.Headers = map[string][]string{"x-probe": {"gantry"}}
	up := Upstream{ID: "u1", Name: "api", HostHeader: "api.internal", Checks: cfg,
		Targets: []TargetSpec{{Address: flaky.addr(), Weight: 100}, {Address: steady.addr(), Weight: 100}}}
	if err := h.reg.Update([]Upstream{up}); err != nil {
		t.Fatal(err)
	}
	b, err := balancer.New(balancer.Options{Name: "api", Targets: []balancer.TargetConfig{
		{Address: flaky.addr(), Weight: 100, Health: h.reg.Target("u1", flaky.addr())},
		{Address: steady.addr(), Weight: 100, Health: h.reg.Target("u1", steady.addr())},
	}})
	if err != nil {
		t.Fatal(err)
	}
	target := h.reg.Target("u1", flaky.addr())

	waitFor(t, "a probe", func() bool { return flaky.hits.Load() > 0 })
	flaky.mu.Lock()
	path, host, hdr := flaky.lastPath, flaky.lastHost, flaky.lastHdr
	flaky.mu.Unlock()
	if path != "/status/ready" || host != "api.internal" || hdr != "gantry" {
		t.Errorf("probe sent path %q host %q x-probe %q; want /status/ready, api.internal, gantry", path, host, hdr)
	}

	flaky.status.Store(500)
	waitFor(t, "target to turn unhealthy", func() bool { return !target.Healthy() })
	for range 20 {
		tg, err := b.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Address == flaky.addr() {
			t.Fatal("balancer picked the unhealthy target")
		}
	}
	if st, _ := h.reg.Status("u1"); st.Targets[0].Health != Unhealthy || st.Health != Healthy {
		t.Errorf("status = %+v; want first target UNHEALTHY, upstream HEALTHY", st)
	}

	flaky.status.Store(200)
	waitFor(t, "target to return", target.Healthy)
	seen := map[string]bool{}
	for range 4 {
		tg, _ := b.Pick(nil)
		seen[tg.Address] = true
	}
	if !seen[flaky.addr()] {
		t.Error("recovered target is not back in rotation")
	}

	changes := h.changeList()
	if len(changes) != 2 || changes[0].Healthy || changes[0].Reason != "active http_failures" ||
		!changes[1].Healthy || changes[1].Reason != "active successes" || changes[0].Upstream != "api" {
		t.Errorf("changes = %+v; want unhealthy by active http_failures then healthy by active successes", changes)
	}
	logs := h.logs.String()
	for _, want := range []string{`"msg":"target health changed"`, `"health":"UNHEALTHY"`, `"health":"HEALTHY"`, `"target":"` + flaky.addr() + `"`, `"component":"health"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// tcpTarget is a raw TCP listener that accepts and closes connections and
// can be stopped and restarted on the same address.
type tcpTarget struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	ln   net.Listener
	done chan struct{}
}

func newTCPTarget(t *testing.T) *tcpTarget {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tt := &tcpTarget{t: t, addr: ln.Addr().String()}
	tt.serve(ln)
	t.Cleanup(tt.stop)
	return tt
}

func (tt *tcpTarget) serve(ln net.Listener) {
	tt.mu.Lock()
	tt.ln, tt.done = ln, make(chan struct{})
	done := tt.done
	tt.mu.Unlock()
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (tt *tcpTarget) stop() {
	tt.mu.Lock()
	ln, done := tt.ln, tt.done
	tt.ln = nil
	tt.mu.Unlock()
	if ln != nil {
		ln.Close()
		<-done
	}
}

func (tt *tcpTarget) restart() {
	ln, err := net.Listen("tcp", tt.addr)
	if err != nil {
		tt.t.Fatalf("relisten on %s: %v", tt.addr, err)
	}
	tt.serve(ln)
}

func TestActiveTCP(t *testing.T) {
	h := newHarness(t, Options{})
	tt := newTCPTarget(t)
	cfg := activeConfig("tcp", 20*time.Millisecond)
	cfg.Active.Healthy.Successes = 1
	if err := h.reg.Update([]Upstream{{ID: "u", Name: "tcp", Checks: cfg, Targets: []TargetSpec{{Address: tt.addr, Weight: 1}}}}); err != nil {
		t.Fatal(err)
	}
	target := h.reg.Target("u", tt.addr)
	tt.stop()
	waitFor(t, "refused connections to mark the target down", func() bool { return !target.Healthy() })
	if c := h.changeList(); len(c) == 0 || c[0].Reason != "active tcp_failures" {
		t.Fatalf("changes = %+v; want a tcp_failures transition", c)
	}
	tt.restart()
	waitFor(t, "the target to come back", target.Healthy)
}

func TestActiveTimeouts(t *testing.T) {
	// A listener that accepts but never answers: http probes time out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	var connsMu sync.Mutex
	var conns []net.Conn
	held.Add(1)
	go func() {
		defer held.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		held.Wait()
		for _, c := range conns {
			c.Close()
		}
	})

	h := newHarness(t, Options{})
	cfg := activeConfig("http", 20*time.Millisecond)
	cfg.Active.Timeout = 30 * time.Millisecond
	addr := ln.Addr().String()
	if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: []TargetSpec{{Address: addr, Weight: 1}}}}); err != nil {
		t.Fatal(err)
	}
	target := h.reg.Target("u", addr)
	waitFor(t, "timeouts to mark the target down", func() bool { return !target.Healthy() })
	if c := h.changeList(); len(c) != 1 || c[0].Reason != "active timeouts" {
		t.Fatalf("changes = %+v; want one timeouts transition", c)
	}
}

func TestActiveHTTPS(t *testing.T) {
	srv := newStatusServer(t, true)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	t.Run("verified", func(t *testing.T) {
		h := newHarness(t, Options{RootCAs: pool})
		cfg := activeConfig("https", 20*time.Millisecond)
		cfg.Active.HTTPSSNI = "example.com" // httptest's certificate names example.com.
		srv.status.Store(200)
		if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: []TargetSpec{{Address: srv.addr(), Weight: 1}}}}); err != nil {
			t.Fatal(err)
		}
		before := srv.hits.Load()
		waitFor(t, "https probes", func() bool { return srv.hits.Load() >= before+3 })
		target := h.reg.Target("u", srv.addr())
		if !target.Healthy() {
			t.Fatal("target unhealthy though https probes succeed")
		}
		srv.status.Store(503)
		waitFor(t, "503s to mark the target down", func() bool { return !target.Healthy() })
		srv.status.Store(200)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		h := newHarness(t, Options{})
		cfg := activeConfig("https", 20*time.Millisecond)
		if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: []TargetSpec{{Address: srv.addr(), Weight: 1}}}}); err != nil {
			t.Fatal(err)
		}
		target := h.reg.Target("u", srv.addr())
		waitFor(t, "handshake failures to mark the target down", func() bool { return !target.Healthy() })
		if c := h.changeList(); len(c) != 1 || c[0].Reason != "active tcp_failures" {
			t.Fatalf("changes = %+v; want tcp_failures", c)
		}
	})
	t.Run("verification off", func(t *testing.T) {
		h := newHarness(t, Options{})
		cfg := activeConfig("https", 20*time.Millisecond)
		cfg.Active.HTTPSVerifyCertificate = false
		if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: []TargetSpec{{Address: srv.addr(), Weight: 1}}}}); err != nil {
			t.Fatal(err)
		}
		before := srv.hits.Load()
		waitFor(t, "https probes", func() bool { return srv.hits.Load() >= before+3 })
		if !h.reg.Target("u", srv.addr()).Healthy() {
			t.Fatal("target unhealthy with verification off")
		}
	})
}

func TestIntervalZeroDisablesThatSide(t *testing.T) {
	t.Run("healthy interval 0 never probes healthy targets", func(t *testing.T) {
		h := newHarness(t, Options{})
		srv := newStatusServer(t, false)
		srv.status.Store(500)
		cfg := activeConfig("http", 20*time.Millisecond)
		cfg.Active.Healthy.Interval = 0
		cfg.Active.Healthy.Successes = 1
		if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: []TargetSpec{{Address: srv.addr(), Weight: 1}}}}); err != nil {
			t.Fatal(err)
		}
		target := h.reg.Target("u", srv.addr())
		time.Sleep(120 * time.Millisecond)
		if n := srv.hits.Load(); n != 0 || !target.Healthy() {
			t.Fatalf("healthy target probed %d times (healthy=%v); want no probes", n, target.Healthy())
		}
		// Once unhealthy, the unhealthy side probes it back to health.
		if err := target.SetHealthy(false); err != nil {
			t.Fatal(err)
		}
		srv.status.Store(200)
		waitFor(t, "unhealthy-side probes to restore the target", target.Healthy)
	})
	t.Run("unhealthy interval 0 never probes unhealthy targets", func(t *testing.T) {
		h := newHarness(t, Options{})
		srv := newStatusServer(t, false)
		srv.status.Store(500)
		cfg := activeConfig("http", 20*time.Millisecond)
		cfg.Active.Unhealthy.Interval = 0
		if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: []TargetSpec{{Address: srv.addr(), Weight: 1}}}}); err != nil {
			t.Fatal(err)
		}
		target := h.reg.Target("u", srv.addr())
		waitFor(t, "target down", func() bool { return !target.Healthy() })
		srv.status.Store(200)
		time.Sleep(30 * time.Millisecond) // Let an in-flight round finish.
		hits := srv.hits.Load()
		time.Sleep(120 * time.Millisecond)
		if srv.hits.Load() != hits || target.Healthy() {
			t.Fatalf("unhealthy target probed (%d -> %d) or recovered; want neither", hits, srv.hits.Load())
		}
	})
}

func TestWeightZeroTargetsAreNotProbed(t *testing.T) {
	h := newHarness(t, Options{})
	srv := newStatusServer(t, false)
	if err := h.reg.Update([]Upstream{{ID: "u", Checks: activeConfig("http", 10*time.Millisecond),
		Targets: []TargetSpec{{Address: srv.addr(), Weight: 0}}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("weight-0 target probed %d times", n)
	}
}

func passiveConfig() Config {
	c := DefaultConfig()
	c.Passive.Healthy.Successes = 2
	c.Passive.Unhealthy.HTTPFailures = 3
	c.Passive.Unhealthy.TCPFailures = 2
	c.Passive.Unhealthy.Timeouts = 2
	return c
}

func TestPassiveChecks(t *testing.T) {
	const (
		tcp     = -1
		timeout = -2
	)
	tests := []struct {
		name    string
		cfg     func() Config
		reports []int // HTTP statuses, or tcp / timeout.
		healthy bool
		reason  string
	}{
		{"http failures reach threshold", passiveConfig, []int{500, 503, 429}, false, "passive http_failures"},
		{"below threshold", passiveConfig, []int{500, 500}, true, ""},
		{"success clears failures", passiveConfig, []int{500, 500, 200, 500, 500}, true, ""},
		{"statuses in neither list are ignored", passiveConfig, []int{500, 500, 404, 418, 500}, false, "passive http_failures"},
		{"tcp failures", passiveConfig, []int{tcp, tcp}, false, "passive tcp_failures"},
		{"timeouts", passiveConfig, []int{timeout, 200, timeout, timeout}, false, "passive timeouts"},
		{"successes restore", passiveConfig, []int{500, 500, 500, 200, 201}, true, "passive successes"},
		{"zero threshold never trips", func() Config {
			c := passiveConfig()
			c.Passive.Unhealthy.HTTPFailures = 0
			return c
		}, []int{500, 500, 500, 500, 500, 500}, true, ""},
		{"checks off ignores reports", DefaultConfig, []int{tcp, tcp, tcp, 500, 500, 500, timeout, timeout}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			if err := h.reg.Update([]Upstream{{ID: "u", Checks: tc.cfg(), Targets: []TargetSpec{{Address: "10.0.0.1:80", Weight: 1}}}}); err != nil {
				t.Fatal(err)
			}
			target := h.reg.Target("u", "10.0.0.1:80")
			for _, r := range tc.reports {
				switch r {
				case tcp:
					target.ReportTCPFailure()
				case timeout:
					target.ReportTimeout()
				default:
					target.ReportStatus(r)
				}
			}
			if target.Healthy() != tc.healthy {
				t.Fatalf("Healthy() = %v, want %v (status %+v)", target.Healthy(), tc.healthy, target.Status())
			}
			changes := h.changeList()
			if tc.reason == "" {
				if len(changes) != 0 {
					t.Fatalf("changes = %+v, want none", changes)
				}
				return
			}
			if last := changes[len(changes)-1]; last.Reason != tc.reason {
				t.Fatalf("last change = %+v, want reason %q", last, tc.reason)
			}
		})
	}
}

func TestPassiveFailuresTakeTargetOutOfRotation(t *testing.T) {
	h := newHarness(t, Options{})
	up := Upstream{ID: "u", Checks: passiveConfig(), Targets: []TargetSpec{{Address: "10.0.0.1:80", Weight: 1}, {Address: "10.0.0.2:80", Weight: 1}}}
	if err := h.reg.Update([]Upstream{up}); err != nil {
		t.Fatal(err)
	}
	b, err := balancer.New(balancer.Options{Targets: []balancer.TargetConfig{
		{Address: "10.0.0.1:80", Weight: 1, Health: h.reg.Target("u", "10.0.0.1:80")},
		{Address: "10.0.0.2:80", Weight: 1, Health: h.reg.Target("u", "10.0.0.2:80")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The proxy reports each response of the first target as a 502 ... not
	// in the passive list; then connection failures, which are.
	for range 10 {
		tg, err := b.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Address == "10.0.0.1:80" {
			h.reg.Target("u", tg.Address).ReportTCPFailure()
		}
	}
	for range 10 {
		tg, err := b.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Address == "10.0.0.1:80" {
			t.Fatal("target with passive failures still picked")
		}
	}
	h.reg.Target("u", "10.0.0.2:80").ReportTimeout()
	h.reg.Target("u", "10.0.0.2:80").ReportTimeout()
	if _, err := b.Pick(nil); !errors.Is(err, balancer.ErrNoHealthyTarget) {
		t.Fatalf("Pick with every target down = %v, want ErrNoHealthyTarget", err)
	}
	if st, _ := h.reg.Status("u"); st.Health != Unhealthy {
		t.Fatalf("upstream health = %s, want UNHEALTHY", st.Health)
	}
}

func TestUpdateKeepsStateAcrossSwaps(t *testing.T) {
	h := newHarness(t, Options{})
	spec := func(addrs ...string) Upstream {
		u := Upstream{ID: "u1", Name: "svc", Checks: passiveConfig()}
		for _, a := range addrs {
			u.Targets = append(u.Targets, TargetSpec{Address: a, Weight: 10})
		}
		return u
	}
	const a, b, c = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"
	if err := h.reg.Update([]Upstream{spec(a, b)}); err != nil {
		t.Fatal(err)
	}
	tb := h.reg.Target("u1", b)
	tb.ReportTCPFailure()
	tb.ReportTCPFailure()
	ta := h.reg.Target("u1", a)
	ta.ReportStatus(500) // One failure counted, below threshold.

	// A new configuration adds a target and changes thresholds.
	next := spec(a, b, c)
	next.Checks.Passive.Unhealthy.HTTPFailures = 2
	if err := h.reg.Update([]Upstream{next}); err != nil {
		t.Fatal(err)
	}
	if h.reg.Target("u1", b) != tb || tb.Healthy() {
		t.Fatal("unchanged unhealthy target lost its state across the swap")
	}
	if h.reg.Target("u1", a) != ta || ta.Status().Counters.HTTPFailures != 1 {
		t.Fatalf("unchanged target lost its counters: %+v", ta.Status())
	}
	ta.ReportStatus(500) // The new threshold (2) applies to the kept counter.
	if ta.Healthy() {
		t.Fatal("new threshold not applied to kept state")
	}
	if tc := h.reg.Target("u1", c); tc == nil || !tc.Healthy() {
		t.Fatal("added target missing or not healthy")
	}

	// Removing b drops its state; adding it back starts fresh.
	if err := h.reg.Update([]Upstream{spec(a, c)}); err != nil {
		t.Fatal(err)
	}
	if h.reg.Target("u1", b) != nil {
		t.Fatal("removed target still known")
	}
	if err := h.reg.Update([]Upstream{spec(a, b, c)}); err != nil {
		t.Fatal(err)
	}
	if nb := h.reg.Target("u1", b); nb == tb || !nb.Healthy() {
		t.Fatal("re-added target did not start fresh and healthy")
	}

	// Turning checks off makes every target healthy, as in Kong.
	off := spec(a, b, c)
	off.Checks = DefaultConfig()
	if err := h.reg.Update([]Upstream{off}); err != nil {
		t.Fatal(err)
	}
	if !ta.Healthy() || ta.Status().Health != HealthChecksOff {
		t.Fatalf("checks off: %+v, want healthy and HEALTHCHECKS_OFF", ta.Status())
	}
	if last := h.changeList()[len(h.changeList())-1]; last.Target != a || !last.Healthy || last.Reason != "health checks off" {
		t.Fatalf("last change = %+v", last)
	}

	// Removing the upstream drops everything.
	if err := h.reg.Update(nil); err != nil {
		t.Fatal(err)
	}
	if h.reg.Target("u1", a) != nil {
		t.Fatal("target of removed upstream still known")
	}
	if _, ok := h.reg.Status("u1"); ok {
		t.Fatal("removed upstream still has a status")
	}
}

func TestUpdateErrorsAreIsolated(t *testing.T) {
	h := newHarness(t, Options{})
	good := Upstream{ID: "good", Checks: passiveConfig(), Targets: []TargetSpec{{Address: "10.0.0.1:80", Weight: 1}}}
	kept := Upstream{ID: "kept", Checks: passiveConfig(), Targets: []TargetSpec{{Address: "10.0.0.2:80", Weight: 1}}}
	if err := h.reg.Update([]Upstream{kept}); err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Target("kept", "10.0.0.2:80").SetHealthy(false); err != nil {
		t.Fatal(err)
	}

	badType := kept
	badType.Checks.Active.Type = "udp"
	tests := []struct {
		name string
		up   Upstream
		want string
	}{
		{"missing id", Upstream{Name: "x"}, "id is required"},
		{"bad target", Upstream{ID: "x", Targets: []TargetSpec{{Address: "nohost"}}}, "missing port"},
		{"duplicate target", Upstream{ID: "x", Targets: []TargetSpec{{Address: "a:1"}, {Address: "a:1"}}}, "duplicate target"},
		{"bad status", Upstream{ID: "x", Checks: Config{Passive: PassiveConfig{Unhealthy: PassiveUnhealthy{HTTPStatuses: []int{1000}}}}}, "invalid HTTP status 1000"},
		{"bad path", Upstream{ID: "x", Checks: Config{Active: ActiveConfig{HTTPPath: "health"}}}, "must start with /"},
		{"negative threshold", Upstream{ID: "x", Checks: Config{Passive: PassiveConfig{Unhealthy: PassiveUnhealthy{Timeouts: -1}}}}, "negative threshold"},
		{"unknown type keeps old state", badType, "unknown active type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.reg.Update([]Upstream{good, tc.up, kept})
			if tc.up.ID == "kept" {
				err = h.reg.Update([]Upstream{good, tc.up})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Update error = %v, want %q", err, tc.want)
			}
			if h.reg.Target("good", "10.0.0.1:80") == nil {
				t.Fatal("valid upstream not applied next to an invalid one")
			}
			if kt := h.reg.Target("kept", "10.0.0.2:80"); kt == nil || kt.Healthy() {
				t.Fatal("existing upstream lost its state")
			}
		})
	}
	if err := h.reg.Update([]Upstream{good, good}); err == nil || !strings.Contains(err.Error(), "duplicate id") {
		t.Fatalf("duplicate ids: err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t, Options{})
	cfg := passiveConfig()
	cfg.Threshold = 60
	ups := []Upstream{
		{ID: "2", Name: "b", Checks: cfg, Targets: []TargetSpec{{Address: "10.0.0.1:80", Weight: 50}, {Address: "10.0.0.2:80", Weight: 50}}},
		{ID: "1", Name: "a", Checks: DefaultConfig(), Targets: []TargetSpec{{Address: "10.0.0.3:80", Weight: 1}}},
	}
	if err := h.reg.Update(ups); err != nil {
		t.Fatal(err)
	}
	all := h.reg.StatusAll()
	if len(all) != 2 || all[0].Name != "a" || all[0].Health != HealthChecksOff || all[0].Targets[0].Health != HealthChecksOff {
		t.Fatalf("StatusAll = %+v", all)
	}
	if all[1].Health != Healthy {
		t.Fatalf("b health = %s, want HEALTHY", all[1].Health)
	}
	if err := h.reg.Target("1", "10.0.0.3:80").SetHealthy(false); !errors.Is(err, ErrChecksOff) {
		t.Fatalf("SetHealthy with checks off = %v, want ErrChecksOff", err)
	}
	if err := h.reg.Target("2", "10.0.0.1:80").SetHealthy(false); err != nil {
		t.Fatal(err)
	}
	st, _ := h.reg.Status("2")
	// 50% healthy is below the 60% threshold.
	if st.Health != Unhealthy || st.Targets[0].Health != Unhealthy || st.Targets[1].Health != Healthy || st.Targets[0].Weight != 50 {
		t.Fatalf("status = %+v", st)
	}
	if c := h.changeList(); len(c) != 1 || c[0].Reason != "manual" || c[0].Upstream != "b" {
		t.Fatalf("changes = %+v", c)
	}
}

func TestNilTarget(t *testing.T) {
	var tg *Target
	if !tg.Healthy() {
		t.Error("nil target unhealthy")
	}
	tg.ReportStatus(500)
	tg.ReportTCPFailure()
	tg.ReportTimeout()
	if err := tg.SetHealthy(false); !errors.Is(err, ErrChecksOff) {
		t.Errorf("nil SetHealthy = %v, want ErrChecksOff", err)
	}
	h := newHarness(t, Options{})
	if h.reg.Target("none", "a:1") != nil {
		t.Error("unknown target not nil")
	}
}

func TestNewValidation(t *testing.T) {
	if _, err := New(t.Context(), Options{}); err == nil {
		t.Error("New without a logger succeeded")
	}
	//nolint:staticcheck // Checking the nil-context guard on purpose.
	if _, err := New(nil, Options{Logger: slog.Default()}); err == nil {
		t.Error("New with a nil context succeeded")
	}
}

// goroutinesSettle waits until the goroutine count is at most want.
func goroutinesSettle(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("%s: %d goroutines, want <= %d\n%s", what, runtime.NumGoroutine(), want, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheckersStopWithoutLeaks(t *testing.T) {
	servers := []*statusServer{newStatusServer(t, false), newStatusServer(t, false), newStatusServer(t, false)}
	spec := func(ids ...int) []Upstream {
		var ups []Upstream
		for _, i := range ids {
			ups = append(ups, Upstream{ID: fmt.Sprint("u", i), Checks: activeConfig("http", 10*time.Millisecond),
				Targets: []TargetSpec{{Address: servers[i].addr(), Weight: 1}}})
		}
		return ups
	}
	for _, stopBy := range []string{"close", "context"} {
		t.Run(stopBy, func(t *testing.T) {
			base := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			reg, err := New(ctx, Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.Update(spec(0, 1, 2)); err != nil {
				t.Fatal(err)
			}
			before := servers[2].hits.Load()
			waitFor(t, "probes", func() bool { return servers[2].hits.Load() > before+2 })
			// Re-applying the same specs must not start more checkers.
			for range 5 {
				if err := reg.Update(spec(0, 1, 2)); err != nil {
					t.Fatal(err)
				}
			}
			goroutinesSettle(t, base+6, "after identical updates")
			// Dropping an upstream stops its checkers, and probes stop.
			if err := reg.Update(spec(0, 1)); err != nil {
				t.Fatal(err)
			}
			goroutinesSettle(t, base+4, "after removing an upstream")
			time.Sleep(20 * time.Millisecond)
			hits := servers[2].hits.Load()
			time.Sleep(60 * time.Millisecond)
			if servers[2].hits.Load() != hits {
				t.Fatal("removed upstream still probed")
			}
			if stopBy == "context" {
				cancel()
				goroutinesSettle(t, base, "after context cancellation")
			}
			reg.Close()
			goroutinesSettle(t, base, "after Close")
			if err := reg.Update(spec(0)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Update after Close = %v, want ErrClosed", err)
			}
			reg.Close() // Idempotent.
		})
	}
}

func TestReportAllocs(t *testing.T) {
	h := newHarness(t, Options{})
	cfg := passiveConfig()
	cfg.Passive.Unhealthy.HTTPFailures = 0 // Count without tripping.
	if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: []TargetSpec{{Address: "10.0.0.1:80", Weight: 1}}}}); err != nil {
		t.Fatal(err)
	}
	tg := h.reg.Target("u", "10.0.0.1:80")
	n := testing.AllocsPerRun(1000, func() {
		tg.ReportStatus(200)
		tg.ReportStatus(500)
		_ = tg.Healthy()
	})
	if n != 0 {
		t.Fatalf("passive reports allocate %v times, want 0", n)
	}
}

func BenchmarkReportStatus(b *testing.B) {
	reg, err := New(b.Context(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	if err := reg.Update([]Upstream{{ID: "u", Checks: passiveConfig(), Targets: []TargetSpec{{Address: "10.0.0.1:80", Weight: 1}}}}); err != nil {
		b.Fatal(err)
	}
	tg := reg.Target("u", "10.0.0.1:80")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tg.ReportStatus(200)
		}
	})
}

func TestActiveConcurrency(t *testing.T) {
	var inflight, peak atomic.Int32
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(15 * time.Millisecond)
		inflight.Add(-1)
	})
	var specs []TargetSpec
	for range 4 {
		srv := httptest.NewServer(slow)
		t.Cleanup(srv.Close)
		specs = append(specs, TargetSpec{Address: srv.Listener.Addr().String(), Weight: 1})
	}
	for _, conc := range []int{1, 4} {
		t.Run(fmt.Sprint("concurrency=", conc), func(t *testing.T) {
			// Probes cut short by the previous Close may still be in a handler.
			waitFor(t, "idle servers", func() bool { return inflight.Load() == 0 })
			peak.Store(0)
			h := newHarness(t, Options{})
			cfg := activeConfig("http", 10*time.Millisecond)
			cfg.Active.Concurrency = conc
			if err := h.reg.Update([]Upstream{{ID: "u", Checks: cfg, Targets: specs}}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a full round", func() bool { return peak.Load() >= int32(conc) })
			time.Sleep(60 * time.Millisecond)
			h.reg.Close()
			if p := peak.Load(); p != int32(conc) {
				t.Fatalf("peak probes in flight = %d, want %d", p, conc)
			}
		})
	}
}
