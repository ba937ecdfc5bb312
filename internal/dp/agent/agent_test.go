package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gantry-gw/gantry/internal/dp/cache"
	"github.com/gantry-gw/gantry/internal/wire"
)

func TestNewChecksOptions(t *testing.T) {
	full := Options{ControlPlane: "cp:8005", TLSConfig: newPKI(t).clientTLS(), NodeID: "id", Hostname: "h", Version: "3.9.1", Applier: &fakeGateway{}}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"complete", func(*Options) {}, ""},
		{"nothing", func(o *Options) { *o = Options{} }, "ControlPlane, TLSConfig, NodeID, Hostname, Version, Applier"},
		{"no applier", func(o *Options) { o.Applier = nil }, "Applier"},
		{"backoff inverted", func(o *Options) { o.BackoffMin, o.BackoffMax = time.Second, time.Millisecond }, "below BackoffMin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := full
			tt.change(&o)
			_, err := New(o)
			if tt.want == "" && err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("New = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// TestAppliesRevisionAndAcks follows one revision from the control plane
// to the gateway, the ack, the ping, the status and the cache.
func TestAppliesRevisionAndAcks(t *testing.T) {
	p := newPKI(t)
	gw := &fakeGateway{}
	c, _ := cache.New(cache.Options{Dir: t.TempDir()})
	type seen struct {
		query wire.NodeQuery
		info  *wire.BasicInfo
		hash  string
		ack   any
		ack2  any
	}
	got := make(chan seen, 1)
	release := make(chan struct{})
	cp := newFakeCP(t, p, func(l *link) {
		s := seen{query: l.query, info: l.info}
		l.waitPing(wire.EmptyConfigHash) // the first ping: nothing served yet
		l.send(&wire.Hello{ProtocolVersion: 1, Capabilities: []string{wire.CapRevisions}})
		s.hash = l.sendRevision(1, testConfig(1))
		s.ack = l.next()
		l.waitPing(s.hash)
		// The same content under a newer revision number is acked
		// without being built again.
		l.sendRevision(2, testConfig(1))
		s.ack2 = l.next()
		got <- s
		<-release
	})
	a, _ := startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: gw, Cache: c,
		Labels: map[string]string{"zone": "a"}, Plugins: []wire.PluginInfo{{Name: "key-auth", Version: "3.9.1"}}})
	defer close(release)
	var s seen
	select {
	case s = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("control plane script did not finish")
	}
	if s.query.NodeID != "5b6f8e0e-1a2b-4c3d-8e9f-0a1b2c3d4e5f" || s.query.Hostname != "runtime-1" || s.query.Version != "3.9.1" {
		t.Fatalf("connect query %+v", s.query)
	}
	if s.info.Gantry == nil || s.info.Gantry.ProtocolVersion != wire.ProtocolVersion || !slices.Contains(s.info.Gantry.Capabilities, wire.CapRevisions) {
		t.Fatalf("basic_info gantry hello %+v", s.info.Gantry)
	}
	if s.info.Labels["zone"] != "a" || len(s.info.Plugins) != 1 || s.info.Plugins[0].Name != "key-auth" {
		t.Fatalf("basic_info %+v", s.info)
	}
	if ack, ok := s.ack.(*wire.Ack); !ok || ack.Revision != 1 || ack.ConfigHash != s.hash {
		t.Fatalf("answer to revision 1: %#v, want ack of %s", s.ack, s.hash)
	}
	if ack, ok := s.ack2.(*wire.Ack); !ok || ack.Revision != 2 || ack.ConfigHash != s.hash {
		t.Fatalf("answer to revision 2: %#v", s.ack2)
	}
	if n := len(gw.applies()); n != 1 {
		t.Fatalf("gateway built %d times, want 1 (revision 2 has the same hash)", n)
	}
	st := a.Status()
	if !st.Connected || st.ConnectedSince == nil || st.Revision != 2 || st.ConfigurationHash != s.hash ||
		st.ConfigurationSource != "control_plane" || st.ProtocolVersion != 1 || !st.ConfigurationLoaded || st.Orphaned || st.Labels["zone"] != "a" {
		t.Fatalf("status %+v", st)
	}
	eventually(t, "cache of revision 2", func() bool {
		e, err := c.Load(context.Background())
		return err == nil && e.Revision == 2 && e.ConfigHash == s.hash
	})
}

// TestRejectedRevisionIsNotRebuilt sends a bad revision repeatedly, on
// one link and after a reconnect: it is built once, nacked every time
// with its entity errors, and the good configuration keeps serving.
func TestRejectedRevisionIsNotRebuilt(t *testing.T) {
	p := newPKI(t)
	gw := &fakeGateway{}
	type answers struct{ good, bad1, bad2, bad3, good2 any }
	got := make(chan answers, 1)
	var a answers
	var goodHash, badHash string
	cp := newFakeCP(t, p, func(l *link) {
		l.send(&wire.Hello{ProtocolVersion: 1, Capabilities: []string{wire.CapRevisions}})
		if a.good == nil {
			goodHash = l.sendRevision(1, testConfig(1))
			a.good = l.next()
			badHash = l.sendRevision(2, badConfig("r1", "r2"))
			a.bad1 = l.next()
			l.sendRevision(2, badConfig("r1", "r2"))
			a.bad2 = l.next()
			return // close: the runtime reconnects
		}
		l.sendRevision(3, badConfig("r1", "r2"))
		a.bad3 = l.next()
		l.sendRevision(4, testConfig(4))
		a.good2 = l.next()
		got <- a
		l.hold()
	})
	ag, _ := startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: gw})
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("control plane script did not finish")
	}
	if ack, ok := a.good.(*wire.Ack); !ok || ack.ConfigHash != goodHash {
		t.Fatalf("revision 1: %#v", a.good)
	}
	for i, ans := range []any{a.bad1, a.bad2, a.bad3} {
		n, ok := ans.(*wire.Nack)
		if !ok {
			t.Fatalf("bad answer %d: %#v, want nack", i, ans)
		}
		if n.ConfigHash != badHash || len(n.Errors) != 2 || n.Errors[0].EntityID != "r1" || n.Errors[1].Message != "invalid regex" ||
			!strings.Contains(n.Message, "invalid entities") || !strings.Contains(n.Message, "previous configuration keeps serving") {
			t.Fatalf("nack %d: %+v", i, n)
		}
	}
	if n := a.bad3.(*wire.Nack); n.Revision != 3 {
		t.Fatalf("nack after reconnect names revision %d, want 3", n.Revision)
	}
	if ack, ok := a.good2.(*wire.Ack); !ok || ack.Revision != 4 {
		t.Fatalf("revision 4: %#v", a.good2)
	}
	builds := 0
	for _, h := range gw.applies() {
		if h == badHash {
			builds++
		}
	}
	if builds != 1 {
		t.Fatalf("bad configuration built %d times, want once", builds)
	}
	st := ag.Status()
	if st.LastRejected == nil || st.LastRejected.ConfigHash != badHash || st.LastRejected.Revision != 2 || len(st.LastRejected.Errors) != 2 {
		t.Fatalf("status last_rejected %+v", st.LastRejected)
	}
	if st.Revision != 4 {
		t.Fatalf("status revision %d, want 4", st.Revision)
	}
}

// TestBadRevisionKeepsPreviousServing checks the gateway's hash does not
// move when a revision is rejected.
func TestBadRevisionKeepsPreviousServing(t *testing.T) {
	p := newPKI(t)
	gw := &fakeGateway{}
	done := make(chan string, 1)
	cp := newFakeCP(t, p, func(l *link) {
		h := l.sendRevision(1, testConfig(1))
		l.next()
		l.sendRevision(2, badConfig("x"))
		l.next()
		done <- h
		l.hold()
	})
	ag, _ := startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: gw})
	h := <-done
	if cur, _ := gw.Current(); cur != h {
		t.Fatalf("serving %s after a rejected revision, want %s", cur, h)
	}
	if st := ag.Status(); st.Revision != 1 || st.ConfigurationHash != h {
		t.Fatalf("status %+v", st)
	}
}

// TestKongReconfigureIsAppliedWithoutAck: without a hello the control plane
// speaks Kong's protocol, and the runtime answers with pings only.
func TestKongReconfigureIsAppliedWithoutAck(t *testing.T) {
	p := newPKI(t)
	gw := &fakeGateway{}
	got := make(chan []any, 1)
	cp := newFakeCP(t, p, func(l *link) {
		r, _ := wire.NewReconfigure(testConfig(7), time.Now())
		l.send(r)
		got <- l.waitPing(r.ConfigHash)
		l.hold()
	})
	ag, _ := startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: gw})
	if before := <-got; len(before) != 0 {
		t.Fatalf("runtime answered a Kong reconfigure with %#v", before)
	}
	if st := ag.Status(); st.ProtocolVersion != 0 || st.Revision != 0 || !st.ConfigurationLoaded {
		t.Fatalf("status %+v", st)
	}
}

// TestFragmentedAndLargeFrames: the runtime reads frames with a 64-bit
// length and messages split in fragments.
func TestFragmentedAndLargeFrames(t *testing.T) {
	p := newPKI(t)
	gw := &fakeGateway{}
	big := testConfig(1)
	// Incompressible-ish content so the gzip'd frame exceeds 64 KiB and
	// uses the 8-byte length form.
	raw := make([]byte, 100<<10)
	rand.Read(raw)
	big["services"].([]any)[0].(map[string]any)["tags"] = []any{hex.EncodeToString(raw)}
	type res struct{ a1, a2 any }
	got := make(chan res, 1)
	cp := newFakeCP(t, p, func(l *link) {
		r, _ := wire.NewRevision(1, big, time.Now())
		b, _ := wire.EncodeCPFrame(r)
		if len(b) <= 0xFFFF {
			t.Errorf("frame of %d bytes does not exercise the 64-bit length", len(b))
		}
		l.sendRaw(b)
		var x res
		x.a1 = l.next()
		// A message in three fragments.
		r2, _ := wire.NewRevision(2, testConfig(2), time.Now())
		b2, _ := wire.EncodeCPFrame(r2)
		w, err := l.conn.Writer(context.Background(), websocket.MessageBinary)
		if err != nil {
			t.Error(err)
			return
		}
		third := len(b2) / 3
		for _, part := range [][]byte{b2[:third], b2[third : 2*third], b2[2*third:]} {
			if _, err := w.Write(part); err != nil {
				t.Error(err)
				return
			}
		}
		if err := w.Close(); err != nil {
			t.Error(err)
			return
		}
		x.a2 = l.next()
		got <- x
		l.hold()
	})
	startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: gw})
	x := <-got
	if ack, ok := x.a1.(*wire.Ack); !ok || ack.Revision != 1 {
		t.Fatalf("large frame: %#v", x.a1)
	}
	if ack, ok := x.a2.(*wire.Ack); !ok || ack.Revision != 2 {
		t.Fatalf("fragmented frame: %#v", x.a2)
	}
}

// TestReconnectsWithBackoff has the control plane drop every link at once:
// the runtime keeps reconnecting, waiting longer each time.
func TestReconnectsWithBackoff(t *testing.T) {
	p := newPKI(t)
	cp := newFakeCP(t, p, func(l *link) {}) // close right after basic_info
	const minB = 40 * time.Millisecond
	ag, _ := startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: &fakeGateway{},
		BackoffMin: minB, BackoffMax: 10 * minB})
	eventually(t, "5 connections", func() bool { return len(cp.connectTimes()) >= 5 })
	times := cp.connectTimes()
	for i := 1; i < 5; i++ {
		gap := times[i].Sub(times[i-1])
		// Attempt i-1's delay is drawn from [d/2, d) with d = min·2^(i-1).
		if lower := (minB << (i - 1)) / 2; gap < lower {
			t.Errorf("reconnect %d came after %s, want at least %s", i, gap, lower)
		}
	}
	st := ag.Status()
	if st.LastError == "" || st.LastErrorAt == nil || !strings.Contains(st.LastError, "closed the connection") {
		t.Fatalf("status last_error %q", st.LastError)
	}
}

func TestBackoffBounds(t *testing.T) {
	a, err := New(Options{ControlPlane: "x:1", TLSConfig: newPKI(t).clientTLS(), NodeID: "n", Hostname: "h", Version: "v",
		Applier: &fakeGateway{}, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		attempt int
		max     time.Duration
	}{
		{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {3, 800 * time.Millisecond},
		{4, time.Second}, {40, time.Second}, {1000, time.Second},
	}
	for _, tt := range tests {
		t.Run(time.Duration(tt.attempt).String(), func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := a.backoff(tt.attempt)
				if d < tt.max/2 || d > tt.max {
					t.Fatalf("backoff(%d) = %s, want in [%s, %s]", tt.attempt, d, tt.max/2, tt.max)
				}
				seen[d] = true
			}
			if len(seen) < 10 {
				t.Fatalf("backoff(%d) took only %d distinct values: no jitter", tt.attempt, len(seen))
			}
		})
	}
}

// TestSilentControlPlaneIsDropped: a link on which nothing arrives for 1.5
// ping intervals (not even pongs) is dropped and redialled.
func TestSilentControlPlaneIsDropped(t *testing.T) {
	p := newPKI(t)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	cp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		// Never read: no pongs, no frames.
		select {
		case <-hold:
		case <-r.Context().Done():
		}
		c.CloseNow()
	}))
	cp.TLS = p.serverTLS()
	cp.StartTLS()
	t.Cleanup(cp.Close)
	ag, _ := startAgent(t, Options{ControlPlane: strings.TrimPrefix(cp.URL, "https://"), TLSConfig: p.clientTLS(),
		Applier: &fakeGateway{}, PingInterval: 50 * time.Millisecond})
	eventually(t, "the silent link dropped", func() bool {
		return strings.Contains(ag.Status().LastError, "no frame from the control plane for 75ms")
	})
}

// TestOrphaned covers the three ways a control plane says the group is
// gone; each time the instance keeps its configuration and says so.
func TestOrphaned(t *testing.T) {
	tests := []struct {
		name string
		tell func(l *link)
		want string
	}{
		{"orphaned frame", func(l *link) {
			b, _ := wire.EncodeGzipJSON(map[string]any{"type": "orphaned", "message": "runtime group edge was deleted"})
			l.sendRaw(b)
			l.hold()
		}, "runtime group edge was deleted"},
		{"close reason", func(l *link) {
			l.conn.Close(websocket.StatusPolicyViolation, "runtime group deleted")
		}, "runtime group deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPKI(t)
			gw := &fakeGateway{}
			served := make(chan string, 1)
			var links atomic.Int32
			cp := newFakeCP(t, p, func(l *link) {
				if links.Add(1) > 1 {
					l.hold()
					return
				}
				served <- l.sendRevision(1, testConfig(1))
				l.next()
				tt.tell(l)
			})
			ag, logs := startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: gw})
			h := <-served
			eventually(t, "orphaned status", func() bool { return ag.Status().Orphaned })
			st := ag.Status()
			if st.OrphanReason != tt.want || st.ConfigurationHash != h || !st.ConfigurationLoaded {
				t.Fatalf("status %+v", st)
			}
			eventually(t, "the orphan log line", func() bool { return strings.Contains(logs.String(), "orphaned and keeps serving") })
		})
	}
	t.Run("refused at the handshake", func(t *testing.T) {
		p := newPKI(t)
		var attempts atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			attempts.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"message":"certificate belongs to runtime group 1234, which was deleted"}`)
		}))
		srv.TLS = p.serverTLS()
		srv.StartTLS()
		t.Cleanup(srv.Close)
		ag, logs := startAgent(t, Options{ControlPlane: strings.TrimPrefix(srv.URL, "https://"), TLSConfig: p.clientTLS(), Applier: &fakeGateway{},
			OrphanRetry: 40 * time.Millisecond})
		eventually(t, "orphaned status", func() bool { return ag.Status().Orphaned })
		if st := ag.Status(); !strings.HasSuffix(st.LastError, "HTTP 403: certificate belongs to runtime group 1234, which was deleted") ||
			st.OrphanReason != "certificate belongs to runtime group 1234, which was deleted" {
			t.Fatalf("last_error %q", st.LastError)
		}
		// It keeps trying, at the orphan pace, and says so at warn level once.
		eventually(t, "several quiet retries", func() bool { return attempts.Load() >= 4 })
		out := logs.String()
		if n := strings.Count(out, "level=WARN msg=\"orphaned: retrying"); n != 1 {
			t.Fatalf("%d warnings about the quiet retry, want 1:\n%s", n, out)
		}
		if n := strings.Count(out, "level=WARN msg=\"control plane connection failed\""); n > 1 {
			t.Fatalf("%d connection-failure warnings once orphaned, want at most the first:\n%s", n, out)
		}
	})
}

// TestConnectionFailuresAreExplained checks the reason a link fails is
// stated in terms of what to fix.
func TestConnectionFailuresAreExplained(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	cp := newFakeCP(t, p, func(l *link) { l.hold() })
	// A plain HTTP server, as the control plane's API port is.
	plainHTTP := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plainHTTP.Close)
	closed := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		return addr
	}()
	tests := []struct {
		name string
		addr string
		tls  *tls.Config
		want string
	}{
		{"nothing listens", closed, p.clientTLS(), "nothing accepts connections"},
		{"untrusted server", cp.addr(), &tls.Config{RootCAs: other.pool, Certificates: []tls.Certificate{p.client}, ServerName: "127.0.0.1"}, "not signed by a trusted CA"},
		{"wrong name", cp.addr(), &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, ServerName: "cp.example"}, "does not name the address"},
		{"client certificate of another CA", cp.addr(), other.clientTLSTo(p.pool), "refused this instance's client certificate"},
		{"the API port", plainHTTP.Listener.Addr().String(), p.clientTLS(), "is --control-plane the API port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ag, logs := startAgent(t, Options{ControlPlane: tt.addr, TLSConfig: tt.tls, Applier: &fakeGateway{}})
			eventually(t, "a connection error", func() bool { return ag.Status().LastError != "" })
			if st := ag.Status(); !strings.Contains(st.LastError, tt.want) || st.Connected {
				t.Fatalf("status %+v, want last_error about %q", st, tt.want)
			}
			if !strings.Contains(logs.String(), "address="+tt.addr) {
				t.Fatalf("logs do not say what was dialled:\n%s", logs)
			}
		})
	}
}

// TestStartsFromCache: with no control plane, a runtime with a good cache
// serves it and is ready; with a damaged one it loads nothing.
func TestStartsFromCache(t *testing.T) {
	cfg := testConfig(5)
	hash, _, _ := wire.ConfigHash(cfg)
	nowhere := "127.0.0.1:1"
	t.Run("good cache", func(t *testing.T) {
		c, _ := cache.New(cache.Options{Dir: t.TempDir()})
		if err := c.Save(context.Background(), &cache.Entry{Revision: 9, ConfigHash: hash, Config: cfg}); err != nil {
			t.Fatal(err)
		}
		gw := &fakeGateway{}
		ag, _ := startAgent(t, Options{ControlPlane: nowhere, TLSConfig: newPKI(t).clientTLS(), Applier: gw, Cache: c})
		eventually(t, "cache loaded", func() bool { _, ok := gw.Current(); return ok })
		st := ag.Status()
		if st.ConfigurationHash != hash || st.Revision != 9 || st.ConfigurationSource != "cache" || st.Connected {
			t.Fatalf("status %+v", st)
		}
		code, body := get(t, ag.Handler(), "/status/ready")
		if code != 200 || body["message"] != "ready" {
			t.Fatalf("ready: %d %v", code, body)
		}
	})
	t.Run("truncated cache", func(t *testing.T) {
		dir := t.TempDir()
		c, _ := cache.New(cache.Options{Dir: dir})
		if err := c.Save(context.Background(), &cache.Entry{Revision: 9, ConfigHash: hash, Config: cfg}); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, cache.ConfigFile)
		b, _ := os.ReadFile(path)
		if err := os.WriteFile(path, b[:len(b)-7], 0o600); err != nil {
			t.Fatal(err)
		}
		gw := &fakeGateway{}
		ag, logs := startAgent(t, Options{ControlPlane: nowhere, TLSConfig: newPKI(t).clientTLS(), Applier: gw, Cache: c})
		eventually(t, "a connection error", func() bool { return ag.Status().LastError != "" })
		if len(gw.applies()) != 0 {
			t.Fatal("a truncated cache was applied")
		}
		if !strings.Contains(logs.String(), "cached configuration refused") {
			t.Fatalf("no log line about the refused cache:\n%s", logs)
		}
		code, body := get(t, ag.Handler(), "/status/ready")
		if code != 503 || !strings.HasPrefix(body["message"].(string), "no configuration available (control plane unreachable") {
			t.Fatalf("ready: %d %v", code, body)
		}
	})
}

func TestStatusHandler(t *testing.T) {
	gw := &fakeGateway{}
	a, err := New(Options{ControlPlane: "cp:8005", TLSConfig: newPKI(t).clientTLS(), NodeID: "n1", Hostname: "h1", Version: "3.9.1", Applier: gw})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	code, body := get(t, h, "/status/ready")
	if code != 503 || body["message"] != "no configuration available (none received from the control plane yet and no usable cache)" {
		t.Fatalf("ready before: %d %v", code, body)
	}
	code, body = get(t, h, "/status")
	if code != 200 || body["configuration_hash"] != wire.EmptyConfigHash || body["configuration_loaded"] != false ||
		body["connected"] != false || body["connected_since"] != nil || body["node_id"] != "n1" || body["orphaned"] != false {
		t.Fatalf("status before: %d %v", code, body)
	}
	if _, err := gw.Apply(context.Background(), testConfig(1), "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	code, body = get(t, h, "/status/ready")
	if code != 200 || body["message"] != "ready" {
		t.Fatalf("ready after: %d %v", code, body)
	}
	code, body = get(t, h, "/status")
	if code != 200 || body["configuration_hash"] != "0123456789abcdef0123456789abcdef" || body["configuration_loaded"] != true {
		t.Fatalf("status after: %d %v", code, body)
	}
	if code, _ := get(t, h, "/nope"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
}

func get(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if res.StatusCode != 404 {
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s: content type %q", path, ct)
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
	}
	return res.StatusCode, m
}
