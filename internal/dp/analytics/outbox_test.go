package analytics

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/gantry-gw/gantry/internal/dp/cache"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// syncBuffer collects log lines.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type outboxEnv struct {
	agg   *Aggregator
	out   *Outbox
	clock *clock
	cache *cache.Cache
	logs  *syncBuffer
}

func newOutboxEnv(t *testing.T, dir string, buffer int) *outboxEnv {
	t.Helper()
	e := &outboxEnv{agg: newAgg(t, 0), clock: &clock{t: t0}, logs: &syncBuffer{}}
	if dir != "" {
		c, err := cache.New(cache.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		e.cache = c
	}
	out, err := NewOutbox(context.Background(), OutboxOptions{Aggregator: e.agg, Cache: e.cache, Buffer: buffer,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)), Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	e.out = out
	return e
}

// minuteOfTraffic records n requests in the minute starting at start and
// moves the clock past it.
func (e *outboxEnv) minuteOfTraffic(start time.Time, n int) {
	for i := range n {
		e.agg.Record(&Request{End: start.Add(time.Second), Route: fmt.Sprint("r", i%3), Status: 200, Latency: time.Millisecond})
	}
	e.clock.set(start.Add(61 * time.Second))
}

func decodeBatch(t *testing.T, b *Batch) *telemetry.Batch {
	t.Helper()
	p, err := b.Payload()
	if err != nil {
		t.Fatal(err)
	}
	tb, err := telemetry.Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestNewOutboxChecksOptions(t *testing.T) {
	a := newAgg(t, 0)
	tests := []struct {
		name string
		opts OutboxOptions
		ok   bool
	}{
		{"defaults", OutboxOptions{Aggregator: a}, true},
		{"no aggregator", OutboxOptions{}, false},
		{"negative interval", OutboxOptions{Aggregator: a, FlushInterval: -time.Second}, false},
		{"negative buffer", OutboxOptions{Aggregator: a, Buffer: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewOutbox(context.Background(), tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestOutboxBatchesAndAcks follows minutes into numbered batches and out
// by acknowledgement.
func TestOutboxBatchesAndAcks(t *testing.T) {
	e := newOutboxEnv(t, "", 0)
	if e.out.Flush(false) != 0 || len(e.out.Pending()) != 0 {
		t.Fatal("a batch without traffic")
	}
	e.minuteOfTraffic(t0, 10)
	if n := e.out.Flush(false); n != 1 {
		t.Fatalf("Flush added %d batches", n)
	}
	select {
	case <-e.out.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	e.minuteOfTraffic(t0.Add(time.Minute), 5)
	e.out.Flush(false)
	p := e.out.Pending()
	if len(p) != 2 || p[0].Seq <= 0 || p[1].Seq != p[0].Seq+1 {
		t.Fatalf("pending %+v", p)
	}
	if p[0].Seq < t0.UnixMicro() {
		t.Fatalf("first seq %d is below the clock in microseconds", p[0].Seq)
	}
	if tb := decodeBatch(t, p[0]); len(tb.Minutes) != 1 || tb.Minutes[0].Start != t0.Unix() || len(tb.Minutes[0].Series) != 3 {
		t.Fatalf("batch %+v", tb)
	}
	if e.out.Ack(p[1].Seq+100) || len(e.out.Pending()) != 2 {
		t.Fatal("an unknown seq was acknowledged")
	}
	if !e.out.Ack(p[0].Seq) || e.out.Ack(p[0].Seq) {
		t.Fatal("ack of the first batch")
	}
	if left := e.out.Pending(); len(left) != 1 || left[0].Seq != p[1].Seq {
		t.Fatalf("left %+v", left)
	}
	st := e.out.Stats()
	if st.Batches != 1 || st.Minutes != 1 || st.Added != 2 || st.Acked != 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOutboxDropsOldest fills a buffer of 3 minutes with 5.
func TestOutboxDropsOldest(t *testing.T) {
	e := newOutboxEnv(t, "", 3)
	for i := range 5 {
		e.minuteOfTraffic(t0.Add(time.Duration(i)*time.Minute), 2)
		e.out.Flush(false)
	}
	p := e.out.Pending()
	if len(p) != 3 {
		t.Fatalf("%d batches kept, want 3", len(p))
	}
	if first := decodeBatch(t, p[0]); first.Minutes[0].Start != t0.Unix()+120 {
		t.Fatalf("kept from %d, want the newest three minutes", first.Minutes[0].Start)
	}
	if st := e.out.Stats(); st.Dropped != 2 {
		t.Fatalf("dropped %d", st.Dropped)
	}
	if !strings.Contains(e.logs.String(), "dropped the oldest") {
		t.Fatalf("no log line about the drop: %s", e.logs)
	}
	reg := prom.NewRegistry()
	reg.MustRegister(e.out.Collector())
	got := gather(t, reg)
	if len(got) != 7 || got["gantry_analytics_dropped_batches_total"] != 2 || got["gantry_analytics_buffered_batches"] != 3 ||
		got["gantry_analytics_buffered_minutes"] != 3 {
		t.Fatalf("metrics %v", got)
	}
}

// gather returns every unlabelled series of reg by name.
func gather(t *testing.T, reg *prom.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 0 {
				t.Fatalf("%s has labels", mf.GetName())
			}
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestOutboxBufferIsTime: a minute flushed in several parts counts once
// against the buffer, which is a window of minutes.
func TestOutboxBufferIsTime(t *testing.T) {
	e := newOutboxEnv(t, "", 2)
	// Six partial flushes of the first minute, as every 10 s.
	for i := range 6 {
		e.agg.Record(&Request{End: t0.Add(time.Duration(i*10) * time.Second), Route: "r", Status: 200})
		e.clock.set(t0.Add(time.Duration(i*10+1) * time.Second))
		if e.out.Flush(true) != 1 {
			t.Fatalf("partial flush %d added no batch", i)
		}
	}
	e.minuteOfTraffic(t0.Add(time.Minute), 1)
	e.out.Flush(false)
	if st := e.out.Stats(); st.Batches != 7 || st.Dropped != 0 {
		t.Fatalf("two minutes in a buffer of two: %+v", st)
	}
	// A third minute pushes the six parts of the first out.
	e.minuteOfTraffic(t0.Add(2*time.Minute), 1)
	e.out.Flush(false)
	if st := e.out.Stats(); st.Batches != 2 || st.Dropped != 6 {
		t.Fatalf("after a third minute: %+v", st)
	}
	var total int64
	for _, b := range e.out.Pending() {
		for _, m := range decodeBatch(t, b).Minutes {
			if m.Start == t0.Unix() {
				t.Fatal("the oldest minute is still buffered")
			}
			total += m.Series[0].Count
		}
	}
	if total != 2 {
		t.Fatalf("%d requests buffered, want 2", total)
	}
}

func TestSplit(t *testing.T) {
	mk := func(start int64, series int) telemetry.Minute {
		m := telemetry.Minute{Start: start, OverflowRequests: 7}
		for i := range series {
			m.Series = append(m.Series, telemetry.Series{Route: fmt.Sprint(i), Status: 200, Count: 1})
		}
		return m
	}
	tests := []struct {
		name    string
		minutes []telemetry.Minute
		want    []int // minutes per batch
	}{
		{"one", []telemetry.Minute{mk(60, 3)}, []int{1}},
		{"many minutes", func() (ms []telemetry.Minute) {
			for i := range telemetry.MaxMinutesPerBatch + 5 {
				ms = append(ms, mk(int64(60*(i+1)), 1))
			}
			return ms
		}(), []int{telemetry.MaxMinutesPerBatch, 5}},
		{"one large minute", []telemetry.Minute{mk(60, 2*MaxSeriesPerBatch+1)}, []int{1, 1, 1}},
		{"a minute cut at the series bound", []telemetry.Minute{mk(60, MaxSeriesPerBatch-1), mk(120, 2)}, []int{2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches := split(tt.minutes)
			var got []int
			series, overflow := 0, int64(0)
			for _, b := range batches {
				got = append(got, len(b.Minutes))
				n := 0
				for _, m := range b.Minutes {
					n += len(m.Series)
					overflow += m.OverflowRequests
				}
				if n > MaxSeriesPerBatch {
					t.Errorf("a batch of %d series", n)
				}
				series += n
			}
			want := 0
			for _, m := range tt.minutes {
				want += len(m.Series)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || series != want || overflow != 7*int64(len(tt.minutes)) {
				t.Fatalf("minutes per batch %v (want %v), %d series (want %d), overflow %d", got, tt.want, series, want, overflow)
			}
		})
	}
}

// TestOutboxSpill closes an outbox with an open minute and reopens it from
// the same cache directory.
func TestOutboxSpill(t *testing.T) {
	dir := t.TempDir()
	e := newOutboxEnv(t, dir, 0)
	e.minuteOfTraffic(t0, 4)
	e.out.Flush(false)
	// A partial, open minute is flushed by Close.
	e.agg.Record(&Request{End: t0.Add(90 * time.Second), Route: "r", Status: 503})
	if err := e.out.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := e.out.Pending()
	if len(before) != 2 {
		t.Fatalf("%d batches before the restart", len(before))
	}

	// The restart: the clock is behind the spilled counter, which wins.
	e2 := newOutboxEnv(t, dir, 0)
	after := e2.out.Pending()
	if len(after) != 2 {
		t.Fatalf("%d batches after the restart; logs: %s", len(after), e2.logs)
	}
	for i := range after {
		if after[i].Seq != before[i].Seq || after[i].Minutes != before[i].Minutes {
			t.Fatalf("batch %d: %+v, want %+v", i, after[i], before[i])
		}
		b, _ := before[i].Payload()
		a, _ := after[i].Payload()
		if !bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b)) {
			t.Fatalf("batch %d payload changed:\n%s\n%s", i, a, b)
		}
	}
	select {
	case <-e2.out.Ready():
	default:
		t.Fatal("loaded batches not signalled")
	}
	if tb := decodeBatch(t, after[1]); tb.Minutes[0].Start != t0.Unix()+60 || tb.Minutes[0].Series[0].Status != 503 {
		t.Fatalf("open minute %+v", tb)
	}
	e2.minuteOfTraffic(t0.Add(3*time.Minute), 1)
	e2.out.Flush(false)
	if p := e2.out.Pending(); p[2].Seq <= before[1].Seq {
		t.Fatalf("seq %d after the restart does not follow %d", p[2].Seq, before[1].Seq)
	}
}

// TestOutboxCorruptSpill damages the spill file in several ways: each is
// logged and ignored, and the new counter is still ahead of the clock.
func TestOutboxCorruptSpill(t *testing.T) {
	good := func(t *testing.T) []byte {
		dir := t.TempDir()
		e := newOutboxEnv(t, dir, 0)
		e.minuteOfTraffic(t0, 3)
		if err := e.out.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, SpillFile))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }},
		{"appended to", func(b []byte) []byte { return append(b, 'x') }},
		{"bit flipped", func(b []byte) []byte { b[len(b)-20] ^= 1; return b }},
		{"other format", func(b []byte) []byte { return []byte("gantry-config-cache 1 00 0\n") }},
		{"garbage", func([]byte) []byte { return bytes.Repeat([]byte{0xff}, 300) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, SpillFile), tt.damage(good(t)), 0o600); err != nil {
				t.Fatal(err)
			}
			e := newOutboxEnv(t, dir, 0)
			if p := e.out.Pending(); len(p) != 0 {
				t.Fatalf("loaded %d batches from a damaged spill", len(p))
			}
			if !strings.Contains(e.logs.String(), "spill refused") {
				t.Fatalf("not logged: %s", e.logs)
			}
			e.minuteOfTraffic(t0.Add(time.Hour), 1)
			e.out.Flush(false)
			if p := e.out.Pending(); len(p) != 1 || p[0].Seq < t0.UnixMicro() {
				t.Fatalf("after a refused spill: %+v", p)
			}
		})
	}
}

// TestOutboxRun collects on its own every flush interval, the open minute
// too.
func TestOutboxRun(t *testing.T) {
	a := newAgg(t, 0)
	out, err := NewOutbox(context.Background(), OutboxOptions{Aggregator: a, FlushInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { out.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The open minute's requests go out at the next flush, not at the
	// minute's end.
	a.Record(&Request{End: time.Now(), Status: 200})
	select {
	case <-out.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not flush the open minute")
	}
	if p := out.Pending(); len(p) != 1 || decodeBatch(t, p[0]).Minutes[0].Series[0].Count != 1 {
		t.Fatalf("%+v", p)
	}
}
