package analytics

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/auth"
	"github.com/gantry-gw/gantry/internal/cp/store"
	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
	"github.com/google/uuid"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// fixture is an analytics store on a real database with one group and a controlled clock.
type fixture struct {
	t     testing.TB
	st    *sqlstore.Store
	an    *Store
	clock *clock
	group string
	org   string
}

// t0 is a Monday, 00:00 UTC.
var t0 = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

func newFixture(t testing.TB, st *sqlstore.Store, mod func(*Options)) *fixture {
	t.Helper()
	tok := auth.NewToken()
	res, err := st.Bootstrap(context.Background(), store.BootstrapParams{OrgName: "Acme", Region: "us", AdminName: "admin",
		AdminToken: store.Token{Name: "admin", Hash: auth.HashToken(tok), Hint: auth.Hint(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: t0.Add(12 * time.Hour)}
	opts := Options{Store: st, Now: c.Now}
	if mod != nil {
		mod(&opts)
	}
	an, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, an: an, clock: c, group: res.Group.ID, org: res.Org.ID}
}

func (f *fixture) newGroup(name string) string {
	f.t.Helper()
	g := store.RuntimeGroup{ID: uuid.NewString(), OrgID: f.org, Region: "us", Name: name, ClusterType: "CLUSTER_TYPE_CONTROL_PLANE",
		AuthType: "pinned_client_certs", CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := f.st.CreateGroup(context.Background(), g); err != nil {
		f.t.Fatal(err)
	}
	return g.ID
}

// sr describes one series of a test batch: n requests of the given status, each with the given
// total latency (µs), upstream latency (µs; 0 for none) and sizes.
type sr struct {
	svc, route, consumer string
	status               int
	n                    int
	latency, upstream    uint64
	reqSize, respSize    uint64
}

func (s sr) series() telemetry.Series {
	out := telemetry.Series{Service: s.svc, Route: s.route, Consumer: s.consumer, Status: s.status, Count: int64(s.n)}
	for range s.n {
		out.LatencySum += int64(s.latency)
		out.RequestBytes += int64(s.reqSize)
		out.ResponseBytes += int64(s.respSize)
		out.Latency.Add(s.latency)
		if s.upstream > 0 {
			out.Upstream.Add(s.upstream)
		}
		out.Gateway.Add(s.latency - s.upstream)
		out.RequestSize.Add(s.reqSize)
		out.ResponseSize.Add(s.respSize)
	}
	return out
}

func batch(minute time.Time, series ...sr) *telemetry.Batch {
	m := telemetry.Minute{Start: minute.Unix()}
	for _, s := range series {
		m.Series = append(m.Series, s.series())
	}
	return &telemetry.Batch{Minutes: []telemetry.Minute{m}}
}

func (f *fixture) ingest(group, node string, seq int64, b *telemetry.Batch) IngestResult {
	f.t.Helper()
	if err := b.Validate(); err != nil {
		f.t.Fatal(err)
	}
	res, err := f.an.Ingest(context.Background(), group, node, seq, b)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fixture) query(q Query) []Row {
	f.t.Helper()
	if q.GroupIDs == nil {
		q.GroupIDs = []string{f.group}
	}
	rows, err := f.an.Query(context.Background(), q)
	if err != nil {
		f.t.Fatal(err)
	}
	return rows
}

// total sums metric 0 over rows.
func total(rows []Row) float64 {
	n := 0.0
	for _, r := range rows {
		n += r.Values[0]
	}
	return n
}

// near reports whether got is within the histogram's relative error of want (ms or bytes).
func near(got, want float64) bool {
	return math.Abs(got-want) <= want*telemetry.RelativeError+1e-9
}

func TestIngestDedupeAndSplitMinute(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		f := newFixture(t, st, nil)
		m := t0.Add(11 * time.Hour)
		q := Query{Start: m, End: m.Add(time.Minute), Granularity: Minute, Metrics: []Metric{RequestCount, ResponseLatencyP50, ResponseLatencyP99, ResponseLatencyAvg}}

		if res := f.ingest(f.group, "n1", 1, batch(m, sr{svc: "a", status: 200, n: 10, latency: 1000, reqSize: 10, respSize: 100})); res != Stored {
			t.Fatalf("first batch: %v", res)
		}
		if res := f.ingest(f.group, "n1", 1, batch(m, sr{svc: "a", status: 200, n: 10, latency: 1000, reqSize: 10, respSize: 100})); res != Duplicate {
			t.Fatalf("resent batch: %v, want Duplicate", res)
		}
		rows := f.query(q)
		if len(rows) != 1 || rows[0].Values[0] != 10 {
			t.Fatalf("after a resend: %+v, want 10 requests", rows)
		}
		// The same minute again in a later batch, split across two series of the same key in
		// one batch: everything adds up and the histograms merge (10 at 1 ms, 10 at 9 ms).
		f.ingest(f.group, "n1", 2, batch(m, sr{svc: "a", status: 200, n: 4, latency: 9000}, sr{svc: "a", status: 200, n: 6, latency: 9000}))
		rows = f.query(q)
		if len(rows) != 1 || rows[0].Values[0] != 20 || !near(rows[0].Values[1], 1) || !near(rows[0].Values[2], 9) || rows[0].Values[3] != 5 {
			t.Fatalf("split minute: %+v, want 20 requests, p50 1 ms, p99 9 ms, avg 5 ms", rows)
		}
		var n int
		if err := st.DB().QueryRow(`SELECT COUNT(*) FROM analytics_minutes`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d minute rows (%v), want the split minute merged into 1", n, err)
		}
		// The same seq of another node is another batch.
		f.ingest(f.group, "n2", 1, batch(m, sr{svc: "a", status: 200, n: 1, latency: 1000}))
		if rows := f.query(q); rows[0].Values[0] != 21 {
			t.Fatalf("other node: %v requests", rows[0].Values[0])
		}
		// A deleted group's batch is discarded; so are minutes past retention or far ahead.
		if res := f.ingest(uuid.NewString(), "n1", 9, batch(m, sr{svc: "a", status: 200, n: 1, latency: 1})); res != GroupGone {
			t.Fatalf("unknown group: %v", res)
		}
		old := f.clock.Now().Add(-DefaultMinuteRetention)
		future := f.clock.Now().Add(2 * FutureTolerance).Truncate(time.Minute)
		f.ingest(f.group, "n1", 3, &telemetry.Batch{Minutes: append(batch(old.Truncate(time.Minute), sr{svc: "a", status: 200, n: 1, latency: 1}).Minutes,
			batch(future, sr{svc: "a", status: 200, n: 1, latency: 1}).Minutes...)})
		if err := st.DB().QueryRow(`SELECT COUNT(*) FROM analytics_minutes`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d minute rows (%v), want 2: old and future minutes dropped", n, err)
		}
		if _, err := f.an.Ingest(context.Background(), f.group, "n1", 0, batch(m)); err == nil {
			t.Error("seq 0 accepted")
		}
	})
}

func TestQueryDimensionsFiltersAndZeros(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		f := newFixture(t, st, nil)
		m0 := t0.Add(11 * time.Hour)
		// Minute 0 and minute 2 have traffic, minutes 1, 3 and 4 none.
		f.ingest(f.group, "n1", 1, batch(m0,
			sr{svc: "a", route: "ra", consumer: "c1", status: 200, n: 30, latency: 2000, upstream: 1500, reqSize: 100, respSize: 1000},
			sr{svc: "a", route: "ra", consumer: "c2", status: 404, n: 10, latency: 500, reqSize: 50, respSize: 20},
		))
		f.ingest(f.group, "n2", 1, batch(m0.Add(2*time.Minute),
			sr{svc: "b", route: "rb", consumer: "c1", status: 503, n: 5, latency: 30000, upstream: 29000, reqSize: 10, respSize: 10},
			sr{svc: "b", route: "rb", status: 200, n: 5, latency: 4000, upstream: 3000, reqSize: 10, respSize: 10},
		))
		// Another group's traffic never shows in this group's answers.
		other := f.newGroup("other")
		f.ingest(other, "n9", 1, batch(m0, sr{svc: "a", status: 200, n: 1000, latency: 1}))

		base := Query{Start: m0, End: m0.Add(5 * time.Minute), Granularity: Minute, ByTime: true}

		// Time only: five buckets, zeros included, rates and percentiles undefined when empty.
		rows := f.query(withMetrics(base, RequestCount, RequestsPerMinute, ErrorRate, ServerErrorRate, ResponseLatencyP99, UpstreamLatencyP50))
		if len(rows) != 5 {
			t.Fatalf("%d rows, want 5 buckets", len(rows))
		}
		wantCounts := []float64{40, 0, 10, 0, 0}
		for i, r := range rows {
			if !r.Start.Equal(m0.Add(time.Duration(i)*time.Minute)) || r.Values[0] != wantCounts[i] || r.Values[1] != wantCounts[i] {
				t.Errorf("bucket %d: %+v, want %v requests", i, r, wantCounts[i])
			}
			if wantCounts[i] == 0 && (!math.IsNaN(r.Values[2]) || !math.IsNaN(r.Values[4])) {
				t.Errorf("empty bucket %d has rate or percentile %v", i, r.Values)
			}
		}
		if rows[0].Values[2] != 0.25 || rows[0].Values[3] != 0 || rows[2].Values[2] != 0.5 || rows[2].Values[3] != 0.5 {
			t.Errorf("error rates %v %v", rows[0].Values, rows[2].Values)
		}
		if !near(rows[0].Values[4], 2) || !near(rows[2].Values[4], 30) || !near(rows[2].Values[5], 3) {
			t.Errorf("percentiles: minute 0 %v, minute 2 %v", rows[0].Values, rows[2].Values)
		}
		// Upstream p50 of minute 0: only the 30 requests that reached an upstream (1.5 ms).
		if !near(rows[0].Values[5], 1.5) {
			t.Errorf("upstream p50 %v, want 1.5 ms", rows[0].Values[5])
		}

		// Per dimension, over the whole range.
		sums := func(q Query) map[string]float64 {
			out := map[string]float64{}
			for _, r := range f.query(q) {
				key := ""
				for _, d := range r.Dims {
					key += d + "|"
				}
				out[key] += r.Values[0]
			}
			return out
		}
		byRange := withMetrics(base, RequestCount)
		byRange.ByTime = false
		for _, tt := range []struct {
			dims []Dimension
			want map[string]float64
		}{
			{[]Dimension{DimStatusGrouped}, map[string]float64{"2XX|": 35, "4XX|": 10, "5XX|": 5}},
			{[]Dimension{DimStatusCode}, map[string]float64{"200|": 35, "404|": 10, "503|": 5}},
			{[]Dimension{DimService}, map[string]float64{"a|": 40, "b|": 10}},
			{[]Dimension{DimRoute}, map[string]float64{"ra|": 40, "rb|": 10}},
			{[]Dimension{DimConsumer}, map[string]float64{"c1|": 35, "c2|": 10, "|": 5}},
			{[]Dimension{DimNode}, map[string]float64{"n1|": 40, "n2|": 10}},
			{[]Dimension{DimService, DimStatusGrouped}, map[string]float64{"a|2XX|": 30, "a|4XX|": 10, "b|2XX|": 5, "b|5XX|": 5}},
		} {
			q := byRange
			q.Dimensions = tt.dims
			if got := sums(q); !mapsEqual(got, tt.want) {
				t.Errorf("by %v: %v, want %v", tt.dims, got, tt.want)
			}
		}
		// Filters: eq, in, status classes, codes, and two dimensions at once (AND).
		for _, tt := range []struct {
			filters map[Dimension][]string
			want    float64
		}{
			{map[Dimension][]string{DimService: {"b"}}, 10},
			{map[Dimension][]string{DimConsumer: {"c1", "c2"}}, 45},
			{map[Dimension][]string{DimStatusGrouped: {"4XX", "5XX"}}, 15},
			{map[Dimension][]string{DimStatusCode: {"503"}}, 5},
			{map[Dimension][]string{DimService: {"a"}, DimStatusGrouped: {"2XX"}}, 30},
			{map[Dimension][]string{DimNode: {"n3"}}, 0},
		} {
			q := byRange
			q.Filters = tt.filters
			if got := total(f.query(q)); got != tt.want {
				t.Errorf("filter %v: %v requests, want %v", tt.filters, got, tt.want)
			}
		}
		// Several groups with the control_plane dimension.
		q := byRange
		q.GroupIDs = []string{f.group, other}
		q.Dimensions = []Dimension{DimControlPlane}
		if got := sums(q); got[f.group+"|"] != 50 || got[other+"|"] != 1000 {
			t.Errorf("by group: %v", got)
		}
		// Dimensions with time: every bucket for every combination seen.
		q = withMetrics(base, RequestCount)
		q.Dimensions = []Dimension{DimService}
		if rows := f.query(q); len(rows) != 10 {
			t.Errorf("%d rows for 5 buckets x 2 services", len(rows))
		}
		// Sizes in bytes.
		q = withMetrics(base, RequestSizeP50, ResponseSizeP99)
		if rows := f.query(q); rows[0].Values[0] != 100 || !near(rows[0].Values[1], 1000) {
			t.Errorf("sizes %v", rows[0].Values)
		}
		// Invalid queries.
		for _, bad := range []Query{
			{GroupIDs: []string{f.group}, Start: m0, End: m0, Granularity: Minute, Metrics: []Metric{RequestCount}},
			{GroupIDs: []string{f.group}, Start: m0, End: m0.Add(MaxBuckets*time.Minute + time.Minute), Granularity: Minute, Metrics: []Metric{RequestCount}},
			{GroupIDs: []string{f.group}, Start: m0, End: m0.Add(time.Hour), Granularity: Minute, Metrics: []Metric{RequestCount}, Dimensions: []Dimension{DimNode, DimRoute, DimService}},
			{GroupIDs: []string{f.group}, Start: m0.Add(time.Second), End: m0.Add(time.Hour), Granularity: Minute, Metrics: []Metric{RequestCount}},
			{GroupIDs: []string{f.group}, Start: m0, End: m0.Add(time.Hour), Granularity: Minute, Metrics: []Metric{"bogus"}},
		} {
			if _, err := f.an.Query(context.Background(), bad); err == nil {
				t.Errorf("query %+v accepted", bad)
			}
		}
	})
}

func withMetrics(q Query, ms ...Metric) Query {
	q.Metrics = ms
	return q
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
