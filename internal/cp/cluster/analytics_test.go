package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/analytics"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/kongpeer"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
	"github.com/google/uuid"
)

// flakyIngester stores through a real analytics store, failing while fail is set, and counts
// the calls it got.
type flakyIngester struct {
	an    *analytics.Store
	mu    sync.Mutex
	fail  bool
	calls int
}

func (f *flakyIngester) IngestAnalytics(ctx context.Context, groupID, nodeID string, seq int64, b *telemetry.Batch) error {
	f.mu.Lock()
	f.calls++
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errors.New("database unavailable")
	}
	return f.an.IngestAnalytics(ctx, groupID, nodeID, seq, b)
}

func (f *flakyIngester) set(fail bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
	return f.calls
}

// analyticsFrame is a telemetry frame of one minute with count requests of status 200 and
// errors of status 503 on service svc.
func analyticsFrame(t testing.TB, seq int64, minute time.Time, svc string, count, errs int64) *wire.Telemetry {
	t.Helper()
	series := func(status int, n int64) telemetry.Series {
		s := telemetry.Series{Service: svc, Route: "r-" + svc, Status: status, Count: n, LatencySum: n * 1000}
		for range n {
			s.Latency.Add(1000)
			s.Gateway.Add(100)
			s.Upstream.Add(900)
			s.RequestSize.Add(10)
			s.ResponseSize.Add(200)
		}
		return s
	}
	m := telemetry.Minute{Start: minute.Unix(), Series: []telemetry.Series{series(200, count)}}
	if errs > 0 {
		m.Series = append(m.Series, series(503, errs))
	}
	b := telemetry.Batch{Minutes: []telemetry.Minute{m}}
	payload, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return &wire.Telemetry{Schema: telemetry.Schema, Seq: seq, SentAt: float64(time.Now().Unix()), Payload: payload}
}

// nextAck returns the next telemetry_ack the client receives within d, skipping other frames, or
// 0 if none came; a closed link is returned as its error.
func (g *gantryClient) nextAck(t testing.TB, d time.Duration) (int64, error) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-g.frames:
			if !ok {
				return 0, errors.New("link closed")
			}
			switch m := f.(type) {
			case *wire.TelemetryAck:
				return m.Seq, nil
			case error:
				return 0, m
			}
		case <-deadline:
			return 0, nil
		}
	}
}

// requests returns the stored request count of the group in the hour around minute.
func requests(t testing.TB, an *analytics.Store, groupID string, minute time.Time) float64 {
	t.Helper()
	start := minute.Truncate(time.Hour)
	rows, err := an.Query(context.Background(), analytics.Query{GroupIDs: []string{groupID}, Start: start, End: start.Add(time.Hour),
		Granularity: analytics.Hour, Metrics: []analytics.Metric{analytics.RequestCount}})
	if err != nil {
		t.Fatal(err)
	}
	return rows[0].Values[0]
}

func TestAnalyticsBatchesAckedAfterStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		an, err := analytics.New(analytics.Options{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		ing := &flakyIngester{an: an}
		e := newEnv(t, st, func(o *Options) { o.Analytics = ing })
		cert, roots := e.cert(e.group)
		nodeID := uuid.NewString()
		g, err := dialGantryCaps(t, e.addr, cert, roots, nodeID, []string{wire.CapRevisions, wire.CapAnalytics})
		if err != nil {
			t.Fatal(err)
		}
		defer g.ws.CloseNow()
		hello, ok := g.next(t).(*wire.Hello)
		if !ok || !hello.Has(wire.CapAnalytics) || hello.ProtocolVersion != 2 {
			t.Fatalf("hello %+v, want protocol 2 with %s", hello, wire.CapAnalytics)
		}
		minute := time.Now().Add(-2 * time.Minute).Truncate(time.Minute)

		// Stored, then acknowledged.
		g.send(t, analyticsFrame(t, 1, minute, "svc-a", 30, 5))
		if seq, err := g.nextAck(t, 10*time.Second); seq != 1 || err != nil {
			t.Fatalf("ack %d, %v; want 1", seq, err)
		}
		if n := requests(t, an, e.group, minute); n != 35 {
			t.Fatalf("stored %v requests, want 35", n)
		}
		// A resend (the ack was lost) is acknowledged again but not counted twice; the same
		// minute in a new batch is added.
		g.send(t, analyticsFrame(t, 1, minute, "svc-a", 30, 5))
		if seq, err := g.nextAck(t, 10*time.Second); seq != 1 || err != nil {
			t.Fatalf("ack of the resend %d, %v; want 1", seq, err)
		}
		g.send(t, analyticsFrame(t, 2, minute, "svc-a", 10, 0))
		if seq, err := g.nextAck(t, 10*time.Second); seq != 2 || err != nil {
			t.Fatalf("ack %d, %v; want 2", seq, err)
		}
		if n := requests(t, an, e.group, minute); n != 45 {
			t.Fatalf("after a duplicate and a split minute: %v requests, want 45", n)
		}

		// A batch that fails to store gets no ack, and the link closes so that it is resent.
		before := ing.set(true)
		g.send(t, analyticsFrame(t, 3, minute, "svc-a", 7, 0))
		seq, err := g.nextAck(t, 10*time.Second)
		if seq != 0 || err == nil || closeReason(err) != reasonAnalyticsFailed {
			t.Fatalf("after a failed store: ack %d, link error %v; want no ack and close reason %q", seq, err, reasonAnalyticsFailed)
		}
		if calls := ing.set(false); calls != before+1 {
			t.Errorf("ingester called %d times for the failed batch", calls-before)
		}
		if n := requests(t, an, e.group, minute); n != 45 {
			t.Fatalf("a failed batch changed the count to %v", n)
		}
		// The runtime reconnects and resends: now stored once.
		g2, err := dialGantryCaps(t, e.addr, cert, roots, nodeID, []string{wire.CapRevisions, wire.CapAnalytics})
		if err != nil {
			t.Fatal(err)
		}
		defer g2.ws.CloseNow()
		g2.send(t, analyticsFrame(t, 3, minute, "svc-a", 7, 0))
		if seq, err := g2.nextAck(t, 10*time.Second); seq != 3 || err != nil {
			t.Fatalf("ack after reconnecting %d, %v; want 3", seq, err)
		}
		if n := requests(t, an, e.group, minute); n != 52 {
			t.Fatalf("after the resend: %v requests, want 52", n)
		}
	})
}

func TestAnalyticsFramesDroppedWithoutAck(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	an, err := analytics.New(analytics.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ing := &flakyIngester{an: an}
	e := newEnv(t, st, func(o *Options) { o.Analytics = ing })
	cert, roots := e.cert(e.group)
	minute := time.Now().Add(-2 * time.Minute).Truncate(time.Minute)

	// Without the capability: the hello does not list it and batches are dropped.
	plain, err := dialGantryCaps(t, e.addr, cert, roots, uuid.NewString(), []string{wire.CapRevisions})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.ws.CloseNow()
	if hello, _ := plain.next(t).(*wire.Hello); hello == nil || hello.Has(wire.CapAnalytics) {
		t.Fatalf("hello %+v", hello)
	}
	plain.send(t, analyticsFrame(t, 1, minute, "svc-a", 3, 0))
	if seq, err := plain.nextAck(t, time.Second); seq != 0 || err != nil {
		t.Fatalf("link without the capability: ack %d, %v", seq, err)
	}

	// With it: another schema, a batch that fails validation and a batch without seq are dropped;
	// the link stays up and the next good batch is stored and acknowledged.
	g, err := dialGantryCaps(t, e.addr, cert, roots, uuid.NewString(), []string{wire.CapRevisions, wire.CapAnalytics})
	if err != nil {
		t.Fatal(err)
	}
	defer g.ws.CloseNow()
	other := analyticsFrame(t, 1, minute, "svc-a", 3, 0)
	other.Schema = "gantry.metrics.v1"
	g.send(t, other)
	invalid := analyticsFrame(t, 2, minute, "svc-a", 3, 0)
	invalid.Payload = json.RawMessage(`{"minutes":[{"start":61,"series":[]}]}`)
	g.send(t, invalid)
	g.send(t, analyticsFrame(t, 0, minute, "svc-a", 3, 0))
	g.send(t, analyticsFrame(t, 4, minute, "svc-a", 3, 0))
	if seq, err := g.nextAck(t, 10*time.Second); seq != 4 || err != nil {
		t.Fatalf("first ack %d, %v; want 4 (the dropped frames get none)", seq, err)
	}
	if n := requests(t, an, e.group, minute); n != 3 {
		t.Fatalf("stored %v requests, want 3", n)
	}
	if calls := ing.set(false); calls != 1 {
		t.Errorf("ingester called %d times, want once", calls)
	}
}

// TestNodesSayWhetherAnalyticsArrive checks the node catalogue tells a
// runtime that sends analytics from a Kong data plane and from a runtime
// without the capability, each with the reason.
func TestNodesSayWhetherAnalyticsArrive(t *testing.T) {
	st := storetest.Open(t, "sqlite")
	an, err := analytics.New(analytics.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, st, func(o *Options) { o.Analytics = &flakyIngester{an: an} })
	cert, roots := e.cert(e.group)
	withID, withoutID := uuid.NewString(), uuid.NewString()
	with, err := dialGantryCaps(t, e.addr, cert, roots, withID, []string{wire.CapRevisions, wire.CapAnalytics})
	if err != nil {
		t.Fatal(err)
	}
	defer with.ws.CloseNow()
	without, err := dialGantryCaps(t, e.addr, cert, roots, withoutID, []string{wire.CapRevisions})
	if err != nil {
		t.Fatal(err)
	}
	defer without.ws.CloseNow()
	kongID := uuid.NewString()
	e.peer(e.group, func(o *kongpeer.Options) { o.NodeID = kongID })
	tests := []struct {
		name, id   string
		available  bool
		reasonPart string
	}{
		{"runtime with analytics", withID, true, ""},
		{"runtime without the capability", withoutID, false, "--analytics=false"},
		{"kong data plane", kongID, false, "Kong data planes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a map[string]any
			waitFor(t, "the node in the catalogue", func() bool {
				n := e.node(e.group, tt.id)
				a, _ = n["analytics"].(map[string]any)
				return a != nil
			})
			reason, _ := a["reason"].(string)
			if a["available"] != tt.available || !strings.Contains(reason, tt.reasonPart) || tt.available && reason != "" {
				t.Errorf("analytics %v, want available=%v with a reason containing %q", a, tt.available, tt.reasonPart)
			}
		})
	}
}
