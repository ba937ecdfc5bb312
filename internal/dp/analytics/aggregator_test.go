package analytics

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// t0 is a minute's start.
var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

const (
	svcA = "0b8a3d1e-0000-4000-8000-00000000000a"
	rtA  = "0b8a3d1e-0000-4000-8000-0000000000a1"
	rtB  = "0b8a3d1e-0000-4000-8000-0000000000a2"
	conA = "0b8a3d1e-0000-4000-8000-00000000c001"
)

func newAgg(t testing.TB, seriesCap int) *Aggregator {
	t.Helper()
	a, err := NewAggregator(AggregatorOptions{SeriesCap: seriesCap})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func findSeries(t *testing.T, m telemetry.Minute, route, consumer string, status int) telemetry.Series {
	t.Helper()
	for _, s := range m.Series {
		if s.Route == route && s.Consumer == consumer && s.Status == status {
			return s
		}
	}
	t.Fatalf("no series %s/%s/%d in %+v", route, consumer, status, m.Series)
	return telemetry.Series{}
}

func TestNewAggregatorChecksOptions(t *testing.T) {
	tests := []struct {
		name string
		opts AggregatorOptions
		ok   bool
	}{
		{"defaults", AggregatorOptions{}, true},
		{"cap 1", AggregatorOptions{SeriesCap: 1}, true},
		{"cap max", AggregatorOptions{SeriesCap: MaxSeriesCap}, true},
		{"cap negative", AggregatorOptions{SeriesCap: -1}, false},
		{"cap too large", AggregatorOptions{SeriesCap: MaxSeriesCap + 1}, false},
		{"shards negative", AggregatorOptions{Shards: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAggregator(tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && tt.opts.SeriesCap == 0 && a.SeriesCap() != DefaultSeriesCap {
				t.Fatalf("default cap %d", a.SeriesCap())
			}
		})
	}
}

// TestRecordAggregates checks every figure of a series.
func TestRecordAggregates(t *testing.T) {
	a := newAgg(t, 0)
	reqs := []Request{
		{End: t0.Add(5 * time.Second), Service: svcA, Route: rtA, Consumer: conA, Status: 200, RequestBytes: 10, ResponseBytes: 1000,
			Latency: 10 * time.Millisecond, Upstream: 8 * time.Millisecond, Upstreamed: true},
		{End: t0.Add(59 * time.Second), Service: svcA, Route: rtA, Consumer: conA, Status: 200, RequestBytes: 30, ResponseBytes: 3000,
			Latency: 20 * time.Millisecond, Upstream: 15 * time.Millisecond, Upstreamed: true},
		// Answered by a plugin: no upstream.
		{End: t0.Add(7 * time.Second), Service: svcA, Route: rtA, Status: 401, ResponseBytes: 50, Latency: 100 * time.Microsecond},
		// No route matched.
		{End: t0.Add(8 * time.Second), Status: 404, ResponseBytes: 48, Latency: 30 * time.Microsecond},
		// A status outside 100..599 counts as 500; negative sizes as 0;
		// an upstream latency above the total is cut to it.
		{End: t0.Add(9 * time.Second), Route: rtB, Status: 0, RequestBytes: -5, Latency: time.Millisecond,
			Upstream: 2 * time.Millisecond, Upstreamed: true},
	}
	for i := range reqs {
		a.Record(&reqs[i])
	}
	if got := a.Collect(t0.Add(59*time.Second), false); len(got) != 0 {
		t.Fatalf("an open minute was collected: %+v", got)
	}
	mins := a.Collect(t0.Add(60*time.Second), false)
	if len(mins) != 1 || mins[0].Start != t0.Unix() || len(mins[0].Series) != 4 {
		t.Fatalf("minutes %+v", mins)
	}
	b := telemetry.Batch{Minutes: mins}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	m := mins[0]
	ok := findSeries(t, m, rtA, conA, 200)
	if ok.Service != svcA || ok.Count != 2 || ok.RequestBytes != 40 || ok.ResponseBytes != 4000 || ok.LatencySum != 30000 {
		t.Fatalf("200 series %+v", ok)
	}
	checkQ := func(name string, h *telemetry.Histogram, q, want float64) {
		t.Helper()
		got := h.Quantile(q)
		if math.Abs(got-want) > want*telemetry.RelativeError+0.5 {
			t.Errorf("%s q%.2f = %v, want %v", name, q, got, want)
		}
	}
	checkQ("latency", &ok.Latency, 0, 10000)
	checkQ("latency", &ok.Latency, 1, 20000)
	checkQ("upstream", &ok.Upstream, 1, 15000)
	checkQ("gateway", &ok.Gateway, 0, 2000)
	checkQ("gateway", &ok.Gateway, 1, 5000)
	checkQ("request size", &ok.RequestSize, 1, 30)
	checkQ("response size", &ok.ResponseSize, 0, 1000)

	denied := findSeries(t, m, rtA, "", 401)
	if denied.Count != 1 || denied.Upstream.Count() != 0 || denied.Gateway.Count() != 1 || denied.Gateway.Quantile(1) != 100 {
		t.Fatalf("401 series %+v", denied)
	}
	noRoute := findSeries(t, m, "", "", 404)
	if noRoute.Service != "" || noRoute.Count != 1 || noRoute.ResponseBytes != 48 {
		t.Fatalf("404 series %+v", noRoute)
	}
	odd := findSeries(t, m, rtB, "", 500)
	if odd.RequestBytes != 0 || odd.Upstream.Quantile(1) != odd.Latency.Quantile(1) || odd.Gateway.Quantile(1) != 0 {
		t.Fatalf("500 series %+v", odd)
	}
	if again := a.Collect(t0.Add(time.Hour), true); len(again) != 0 {
		t.Fatalf("collected twice: %+v", again)
	}
}

// TestCollectMinutes checks which minutes Collect takes, and that a
// minute recorded again after its collection comes out again.
func TestCollectMinutes(t *testing.T) {
	a := newAgg(t, 0)
	rec := func(at time.Time) {
		a.Record(&Request{End: at, Route: rtA, Status: 200, Latency: time.Millisecond})
	}
	rec(t0.Add(10 * time.Second))
	rec(t0.Add(70 * time.Second))
	rec(t0.Add(130 * time.Second))
	tests := []struct {
		name   string
		now    time.Time
		all    bool
		starts []int64
	}{
		{"none closed", t0.Add(59 * time.Second), false, nil},
		{"first closed", t0.Add(100 * time.Second), false, []int64{t0.Unix()}},
		{"late record of a collected minute", t0.Add(121 * time.Second), false, []int64{t0.Unix(), t0.Unix() + 60}},
		{"open minute at shutdown", t0.Add(131 * time.Second), true, []int64{t0.Unix() + 120}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.name, "late") {
				rec(t0.Add(59 * time.Second))
			}
			var starts []int64
			for _, m := range a.Collect(tt.now, tt.all) {
				starts = append(starts, m.Start)
				if len(m.Series) != 1 || m.Series[0].Count != 1 {
					t.Errorf("minute %d: %+v", m.Start, m.Series)
				}
			}
			if fmt.Sprint(starts) != fmt.Sprint(tt.starts) {
				t.Fatalf("collected %v, want %v", starts, tt.starts)
			}
		})
	}
}

// TestSeriesCapOverflow checks that requests past the cap go to the
// overflow series of their status and are counted.
func TestSeriesCapOverflow(t *testing.T) {
	a := newAgg(t, 3)
	for i := range 6 {
		for range 2 {
			a.Record(&Request{End: t0, Service: svcA, Route: fmt.Sprintf("route-%d", i), Status: 200 + i%2, Latency: time.Millisecond})
		}
	}
	mins := a.Collect(t0.Add(time.Minute), false)
	if len(mins) != 1 {
		t.Fatalf("%+v", mins)
	}
	m := mins[0]
	var total, other, named int64
	for _, s := range m.Series {
		total += s.Count
		if s.Route == telemetry.OtherID {
			if s.Service != telemetry.OtherID || s.Consumer != telemetry.OtherID {
				t.Fatalf("overflow series %+v", s)
			}
			other += s.Count
		} else {
			named++
		}
	}
	if total != 12 || named != 3 || other != 6 || m.OverflowRequests != 6 || a.Overflowed() != 6 {
		t.Fatalf("total %d, named series %d, other %d, overflow %d, counter %d", total, named, other, m.OverflowRequests, a.Overflowed())
	}
	// Statuses are kept: routes 3, 4, 5 answered 201, 200, 201.
	if s := findSeries(t, m, telemetry.OtherID, telemetry.OtherID, 201); s.Count != 4 {
		t.Fatalf("overflow 201: %+v", s)
	}
	if err := (&telemetry.Batch{Minutes: mins}).Validate(); err != nil {
		t.Fatal(err)
	}
	// The next minute has its own cap.
	a.Record(&Request{End: t0.Add(time.Minute), Route: "route-9", Status: 200})
	if m := a.Collect(t0.Add(2*time.Minute), false); len(m) != 1 || m[0].OverflowRequests != 0 || m[0].Series[0].Route != "route-9" {
		t.Fatalf("%+v", m)
	}
}

// TestPartialCollect collects an open minute twice: each part holds the
// requests since the last, and the series cap keeps counting per minute.
func TestPartialCollect(t *testing.T) {
	a := newAgg(t, 2)
	rec := func(route string, sec int) {
		a.Record(&Request{End: t0.Add(time.Duration(sec) * time.Second), Route: route, Status: 200, Latency: time.Millisecond})
	}
	rec("r1", 1)
	rec("r2", 2)
	rec("r1", 3)
	first := a.Collect(t0.Add(10*time.Second), true)
	if len(first) != 1 || len(first[0].Series) != 2 || first[0].Series[0].Count != 2 || first[0].Series[1].Count != 1 {
		t.Fatalf("first part %+v", first)
	}
	if again := a.Collect(t0.Add(11*time.Second), true); len(again) != 0 {
		t.Fatalf("an empty part was collected: %+v", again)
	}
	rec("r3", 20) // the minute already has two series: overflow
	rec("r2", 21)
	second := a.Collect(t0.Add(70*time.Second), false)
	if len(second) != 1 || second[0].OverflowRequests != 1 {
		t.Fatalf("second part %+v", second)
	}
	m := second[0]
	if len(m.Series) != 2 || findSeries(t, m, "r2", "", 200).Count != 1 || findSeries(t, m, telemetry.OtherID, telemetry.OtherID, 200).Count != 1 {
		t.Fatalf("second part series %+v", m.Series)
	}
	for _, p := range [][]telemetry.Minute{first, second} {
		if err := (&telemetry.Batch{Minutes: p}).Validate(); err != nil {
			t.Fatal(err)
		}
	}
	// The minute is gone; a new minute has a cap of its own.
	rec("r3", 61)
	rec("r4", 62)
	if m := a.Collect(t0.Add(2*time.Minute), false); len(m) != 1 || len(m[0].Series) != 2 || m[0].OverflowRequests != 0 {
		t.Fatalf("next minute %+v", m)
	}
}

// TestKeysOwnTheirIDs records with ids in a buffer that is then
// overwritten, as pooled request memory is: the series keep their ids.
func TestKeysOwnTheirIDs(t *testing.T) {
	a := newAgg(t, 0)
	buf := []byte(rtA)
	id := unsafeString(buf)
	a.Record(&Request{End: t0, Route: id, Consumer: id, Status: 200})
	copy(buf, rtB)
	a.Record(&Request{End: t0, Route: id, Consumer: id, Status: 200})
	copy(buf, rtA)
	a.Record(&Request{End: t0, Route: id, Consumer: id, Status: 200})
	copy(buf, strings.Repeat("x", len(buf)))
	m := a.Collect(t0.Add(time.Minute), false)[0]
	if len(m.Series) != 2 {
		t.Fatalf("%+v", m.Series)
	}
	if s := findSeries(t, m, rtA, rtA, 200); s.Count != 2 {
		t.Fatalf("%+v", s)
	}
	if s := findSeries(t, m, rtB, rtB, 200); s.Count != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestLongIDsAreCut(t *testing.T) {
	a := newAgg(t, 0)
	long := strings.Repeat("r", 100)
	a.Record(&Request{End: t0, Route: long, Status: 200})
	a.Record(&Request{End: t0, Route: long, Status: 200})
	m := a.Collect(t0.Add(time.Minute), false)[0]
	if len(m.Series) != 1 || m.Series[0].Route != long[:telemetry.MaxIDLen] || m.Series[0].Count != 2 {
		t.Fatalf("%+v", m.Series)
	}
	if err := (&telemetry.Batch{Minutes: []telemetry.Minute{m}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentRecord records from many goroutines across a minute's
// boundary while collecting, and checks nothing is lost.
func TestConcurrentRecord(t *testing.T) {
	a := newAgg(t, 0)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				a.Record(&Request{End: t0.Add(time.Duration(i*60/each) * time.Second * 2), Route: fmt.Sprint("r", (w+i)%5),
					Status: 200, Latency: time.Duration(i) * time.Microsecond, Upstream: time.Microsecond, Upstreamed: true})
			}
		})
	}
	var collected []telemetry.Minute
	for range 20 {
		collected = append(collected, a.Collect(t0.Add(time.Minute), false)...)
	}
	wg.Wait()
	collected = append(collected, a.Collect(t0.Add(time.Hour), true)...)
	var total int64
	for _, m := range collected {
		for _, s := range m.Series {
			total += s.Count
		}
		if err := (&telemetry.Batch{Minutes: []telemetry.Minute{m}}).Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if total != workers*each {
		t.Fatalf("counted %d requests, want %d", total, workers*each)
	}
}

// benchRequests are realistic requests: 50 routes, a few consumers and
// statuses.
func benchRequests(n int) []Request {
	out := make([]Request, n)
	for i := range out {
		st := 200
		switch i % 20 {
		case 7:
			st = 404
		case 13:
			st = 503
		}
		out[i] = Request{End: t0.Add(time.Duration(i%50) * time.Second), Service: fmt.Sprintf("svc-%02d", i%10),
			Route: fmt.Sprintf("%08d-0000-4000-8000-000000000000", i%50), Consumer: fmt.Sprintf("%08d-0000-4000-8000-00000000c000", i%3),
			Status: st, RequestBytes: int64(i % 300), ResponseBytes: int64(500 + i%4000),
			Latency: time.Duration(800+i%5000) * time.Microsecond, Upstream: time.Duration(600+i%4500) * time.Microsecond, Upstreamed: true}
	}
	return out
}

func TestRecordAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	a := newAgg(t, 0)
	reqs := benchRequests(1000)
	// Warm up: one minute in, collected (its memory recycled), and the
	// next minute seen.
	for i := range reqs {
		a.Record(&reqs[i])
	}
	a.Collect(t0.Add(time.Hour), true)
	// And one partial collection of an open minute.
	for i := range reqs {
		a.Record(&reqs[i])
	}
	a.Collect(t0.Add(30*time.Second), true)
	i := 0
	allocs := testing.AllocsPerRun(20000, func() {
		a.Record(&reqs[i%len(reqs)])
		i++
	})
	if allocs != 0 {
		t.Fatalf("Record allocates %v times per request in steady state, want 0", allocs)
	}
}

// TestSeriesMemory measures the heap a full minute of realistic series
// takes, per series.
func TestSeriesMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("measures memory")
	}
	const series = 5000
	a := newAgg(t, series)
	reqs := make([]Request, 0, series*20)
	for i := range series * 20 {
		s := i % series
		// Latencies spread over about three octaves, sizes over one or
		// two: as a route and status typically do.
		reqs = append(reqs, Request{End: t0, Service: fmt.Sprintf("svc-%032d", s/10), Route: fmt.Sprintf("rt-%033d", s),
			Status: 200, RequestBytes: int64(100 + i%200), ResponseBytes: int64(2000 + (i*37)%3000),
			Latency: time.Duration(2000+(i*7919)%14000) * time.Microsecond, Upstream: time.Duration(1500+(i*7919)%13000) * time.Microsecond, Upstreamed: true})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range reqs {
		a.Record(&reqs[i])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / series
	t.Logf("%.0f bytes per series (%d series, 20 requests each)", per, series)
	if per > 6<<10 {
		t.Fatalf("%.0f bytes per series, documented as 2.5-4.5 KiB typical", per)
	}
	runtime.KeepAlive(reqs)
	runtime.KeepAlive(a)
}

func BenchmarkRecord(b *testing.B) {
	a := newAgg(b, 0)
	reqs := benchRequests(1024)
	for i := range reqs {
		a.Record(&reqs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a.Record(&reqs[i&1023])
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	for _, routes := range []int{1, 50} {
		b.Run(fmt.Sprintf("routes=%d", routes), func(b *testing.B) {
			a := newAgg(b, 0)
			reqs := benchRequests(1024)
			for i := range reqs {
				reqs[i].Route = reqs[i%routes].Route
				reqs[i].Consumer, reqs[i].Status = "", 200
				a.Record(&reqs[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					a.Record(&reqs[i&1023])
					i++
				}
			})
		})
	}
}
