package agent

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// newOutbox returns an outbox holding n batches of one closed minute each.
func newOutbox(t *testing.T, n int) *analytics.Outbox {
	t.Helper()
	agg, err := analytics.NewAggregator(analytics.AggregatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	now := start.Add(time.Hour)
	out, err := analytics.NewOutbox(context.Background(), analytics.OutboxOptions{Aggregator: agg,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		agg.Record(&analytics.Request{End: start.Add(time.Duration(i) * time.Minute), Route: "r1", Status: 200 + i, Latency: time.Millisecond})
		if out.Flush(false) != 1 {
			t.Fatal("no batch")
		}
	}
	return out
}

// nextTelemetry returns the next telemetry frame, skipping other frames.
func (l *link) nextTelemetry() *wire.Telemetry {
	l.t.Helper()
	for {
		if m, ok := l.next().(*wire.Telemetry); ok {
			return m
		}
	}
}

// telemetryWithin counts the telemetry frames arriving within d.
func (l *link) telemetryWithin(d time.Duration) int {
	n := 0
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-l.in:
			if !ok {
				return n
			}
			if _, tel := m.(*wire.Telemetry); tel {
				n++
			}
		case <-deadline:
			return n
		}
	}
}

func seqs(bs []*analytics.Batch) []int64 {
	var out []int64
	for _, b := range bs {
		out = append(out, b.Seq)
	}
	return out
}

// TestAnalyticsSentAfterHello: the runtime announces the capability,
// sends its batches once the hello has it, at most MaxTelemetryInFlight
// ahead of their acks, and forgets each acknowledged one.
func TestAnalyticsSentAfterHello(t *testing.T) {
	p := newPKI(t)
	out := newOutbox(t, MaxTelemetryInFlight+2)
	want := seqs(out.Pending())
	type seen struct {
		info   *wire.BasicInfo
		frames []*wire.Telemetry
		early  []any
		// beyondWindow counts telemetry frames sent past the in-flight
		// window.
		beyondWindow int
	}
	got := make(chan seen, 1)
	release := make(chan struct{})
	cp := newFakeCP(t, p, func(l *link) {
		var s seen
		s.info = l.info
		// Nothing is sent before the hello.
		s.early = l.waitPing(wire.EmptyConfigHash)
		l.send(&wire.Hello{ProtocolVersion: wire.ProtocolVersion, Capabilities: []string{wire.CapAnalytics, wire.CapRevisions}})
		for range MaxTelemetryInFlight {
			s.frames = append(s.frames, l.nextTelemetry())
		}
		// The window is full: nothing more comes until an ack;
		// acknowledging an unknown seq opens nothing, acknowledging the
		// first sends the next.
		s.beyondWindow = l.telemetryWithin(200 * time.Millisecond)
		l.send(&wire.TelemetryAck{Seq: 1})
		s.beyondWindow += l.telemetryWithin(200 * time.Millisecond)
		l.send(&wire.TelemetryAck{Seq: s.frames[0].Seq})
		s.frames = append(s.frames, l.nextTelemetry())
		for _, f := range s.frames[1:] {
			l.send(&wire.TelemetryAck{Seq: f.Seq})
		}
		s.frames = append(s.frames, l.nextTelemetry())
		got <- s
		<-release
		l.hold()
	})
	startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: &fakeGateway{}, Analytics: out})
	var s seen
	select {
	case s = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the control plane saw no batches")
	}
	defer close(release)
	if s.info.Gantry == nil || s.info.Gantry.ProtocolVersion != 2 || !slices.Contains(s.info.Gantry.Capabilities, wire.CapAnalytics) {
		t.Fatalf("basic_info gantry %+v", s.info.Gantry)
	}
	if s.beyondWindow != 0 {
		t.Fatalf("%d batches sent beyond the window of %d", s.beyondWindow, MaxTelemetryInFlight)
	}
	if len(s.early) != 0 {
		t.Fatalf("frames before the hello: %+v", s.early)
	}
	var sent []int64
	for _, f := range s.frames {
		sent = append(sent, f.Seq)
		if f.Schema != telemetry.Schema {
			t.Fatalf("schema %q", f.Schema)
		}
		b, err := telemetry.Decode(f.Payload)
		if err != nil || len(b.Minutes) != 1 || b.Minutes[0].Series[0].Count != 1 {
			t.Fatalf("payload %s: %v", f.Payload, err)
		}
	}
	if !slices.Equal(sent, want) {
		t.Fatalf("sent %v, want %v (oldest first, each once)", sent, want)
	}
	// Everything acknowledged but the last.
	eventually(t, "acknowledged batches removed", func() bool { return slices.Equal(seqs(out.Pending()), want[len(want)-1:]) })
	// The agent counts a frame as sent once its write returns, which may be after the control
	// plane has read it.
	eventually(t, "the counters", func() bool {
		st := out.Stats()
		return st.Sent == int64(len(want)) && st.Acked == int64(len(want)-1)
	})
}

// TestAnalyticsResentAfterReconnect: batches not acknowledged on one link
// are sent again, oldest first, on the next; new batches follow.
func TestAnalyticsResentAfterReconnect(t *testing.T) {
	p := newPKI(t)
	out := newOutbox(t, 2)
	want := seqs(out.Pending())
	links := make(chan []int64, 2)
	release := make(chan struct{})
	var n atomic.Int32
	cp := newFakeCP(t, p, func(l *link) {
		first := n.Add(1) == 1
		l.send(&wire.Hello{ProtocolVersion: 2, Capabilities: []string{wire.CapAnalytics, wire.CapRevisions}})
		var got []int64
		for range 2 {
			got = append(got, l.nextTelemetry().Seq)
		}
		if first {
			// Drop the link without acknowledging anything.
			links <- got
			return
		}
		for _, s := range got {
			l.send(&wire.TelemetryAck{Seq: s})
		}
		links <- got
		<-release
		l.hold()
	})
	startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: &fakeGateway{}, Analytics: out})
	defer close(release)
	for i := range 2 {
		select {
		case got := <-links:
			if !slices.Equal(got, want) {
				t.Fatalf("link %d got %v, want %v", i+1, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("link %d: no batches", i+1)
		}
	}
	eventually(t, "outbox emptied", func() bool { return len(out.Pending()) == 0 })
}

// TestAnalyticsNotSentWithoutCapability: a control plane whose hello lacks
// the capability gets no telemetry, and the batches stay buffered.
func TestAnalyticsNotSentWithoutCapability(t *testing.T) {
	tests := []struct {
		name  string
		hello *wire.Hello // nil: a control plane without the extension
	}{
		{"protocol 1", &wire.Hello{ProtocolVersion: 1, Capabilities: []string{wire.CapRevisions}}},
		{"kong", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPKI(t)
			out := newOutbox(t, 2)
			frames := make(chan []any, 1)
			release := make(chan struct{})
			cp := newFakeCP(t, p, func(l *link) {
				l.waitPing(wire.EmptyConfigHash)
				var hash string
				if tt.hello != nil {
					l.send(tt.hello)
					hash = l.sendRevision(1, testConfig(1))
				} else {
					r, err := wire.NewReconfigure(testConfig(1), time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					l.send(r)
					hash = r.ConfigHash
				}
				// Everything up to the ping after the apply, and a while
				// after it.
				got := l.waitPing(hash)
				deadline := time.After(300 * time.Millisecond)
			wait:
				for {
					select {
					case m, ok := <-l.in:
						if !ok {
							break wait
						}
						if _, ping := m.(string); !ping {
							got = append(got, m)
						}
					case <-deadline:
						break wait
					}
				}
				frames <- got
				<-release
				l.hold()
			})
			startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: &fakeGateway{}, Analytics: out})
			defer close(release)
			select {
			case got := <-frames:
				for _, m := range got {
					if _, ok := m.(*wire.Telemetry); ok {
						t.Fatalf("telemetry sent to a control plane without the capability: %+v", got)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatal("script did not finish")
			}
			if len(out.Pending()) != 2 || out.Stats().Sent != 0 {
				t.Fatalf("outbox %+v", out.Stats())
			}
		})
	}
}

// TestNoAnalyticsNoCapability: without an outbox the capability is not
// announced.
func TestNoAnalyticsNoCapability(t *testing.T) {
	p := newPKI(t)
	infos := make(chan *wire.BasicInfo, 1)
	cp := newFakeCP(t, p, func(l *link) {
		select {
		case infos <- l.info:
		default:
		}
		l.hold()
	})
	startAgent(t, Options{ControlPlane: cp.addr(), TLSConfig: p.clientTLS(), Applier: &fakeGateway{}})
	select {
	case info := <-infos:
		if info.Gantry == nil || slices.Contains(info.Gantry.Capabilities, wire.CapAnalytics) {
			t.Fatalf("gantry %+v", info.Gantry)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no basic_info")
	}
}
