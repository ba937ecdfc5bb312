package analytics

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// Granularity is the width of a query's time buckets.
type Granularity string

// Granularities.
const (
	Minute Granularity = "minute"
	Hour   Granularity = "hour"
	Day    Granularity = "day"
)

// Granularities lists the valid granularities, finest first.
var Granularities = []Granularity{Minute, Hour, Day}

// Seconds is the bucket width in seconds (0 for an unknown granularity).
func (g Granularity) Seconds() int64 {
	switch g {
	case Minute:
		return minuteSecs
	case Hour:
		return hourSecs
	case Day:
		return daySecs
	}
	return 0
}

// Dimension is what query rows are grouped and filtered by.
type Dimension string

// Dimensions. Values are ids ("" for none, telemetry.OtherID for a runtime's overflow series)
// except StatusCode (the code as a decimal string) and StatusCodeGrouped ("1XX" … "5XX").
const (
	// DimTime groups by time bucket; it has no value of its own (rows carry their bucket).
	DimTime           Dimension = "time"
	DimService        Dimension = "gateway_service"
	DimRoute          Dimension = "route"
	DimConsumer       Dimension = "consumer"
	DimStatusCode     Dimension = "status_code"
	DimStatusGrouped  Dimension = "status_code_grouped"
	DimNode           Dimension = "node"
	DimControlPlane   Dimension = "control_plane"
	maxDimensionCount           = 2
)

// AllDimensions lists every dimension, DimTime first.
var AllDimensions = []Dimension{DimTime, DimService, DimRoute, DimConsumer, DimStatusCode, DimStatusGrouped, DimNode, DimControlPlane}

// MaxDimensions is how many dimensions besides DimTime a query may group by.
const MaxDimensions = maxDimensionCount

// StatusClasses are the values of DimStatusGrouped.
var StatusClasses = []string{"1XX", "2XX", "3XX", "4XX", "5XX"}

// column is the table column holding the dimension's value.
func (d Dimension) column() string {
	switch d {
	case DimService:
		return "service_id"
	case DimRoute:
		return "route_id"
	case DimConsumer:
		return "consumer_id"
	case DimStatusCode, DimStatusGrouped:
		return "status"
	case DimNode:
		return "node_id"
	case DimControlPlane:
		return "group_id"
	}
	return ""
}

// Metric is a figure computed per query row.
type Metric string

// Metrics. Counts are requests; rates are shares from 0 to 1; latencies are milliseconds; sizes
// are bytes. Rates, averages and percentiles of a row without requests (or, for upstream latency,
// without upstream responses) are NaN.
const (
	RequestCount       Metric = "request_count"
	RequestsPerMinute  Metric = "requests_per_minute"
	ErrorRate          Metric = "error_rate"        // 4XX and 5XX responses / requests
	ServerErrorRate    Metric = "server_error_rate" // 5XX responses / requests
	ResponseLatencyAvg Metric = "response_latency_avg"
	ResponseLatencyP50 Metric = "response_latency_p50"
	ResponseLatencyP95 Metric = "response_latency_p95"
	ResponseLatencyP99 Metric = "response_latency_p99"
	UpstreamLatencyP50 Metric = "upstream_latency_p50"
	UpstreamLatencyP95 Metric = "upstream_latency_p95"
	UpstreamLatencyP99 Metric = "upstream_latency_p99"
	GatewayLatencyP50  Metric = "gateway_latency_p50"
	GatewayLatencyP95  Metric = "gateway_latency_p95"
	GatewayLatencyP99  Metric = "gateway_latency_p99"
	RequestSizeP50     Metric = "request_size_p50"
	RequestSizeP95     Metric = "request_size_p95"
	RequestSizeP99     Metric = "request_size_p99"
	ResponseSizeP50    Metric = "response_size_p50"
	ResponseSizeP95    Metric = "response_size_p95"
	ResponseSizeP99    Metric = "response_size_p99"
)

// AllMetrics lists every metric.
var AllMetrics = []Metric{RequestCount, RequestsPerMinute, ErrorRate, ServerErrorRate, ResponseLatencyAvg,
	ResponseLatencyP50, ResponseLatencyP95, ResponseLatencyP99, UpstreamLatencyP50, UpstreamLatencyP95, UpstreamLatencyP99,
	GatewayLatencyP50, GatewayLatencyP95, GatewayLatencyP99, RequestSizeP50, RequestSizeP95, RequestSizeP99,
	ResponseSizeP50, ResponseSizeP95, ResponseSizeP99}

// percentile returns the histogram and quantile of a percentile metric, and the divisor that
// turns the histogram's unit into the metric's (1000: microseconds to milliseconds).
func (m Metric) percentile() (hist int, q, div float64, ok bool) {
	s := string(m)
	i := strings.LastIndex(s, "_p")
	if i < 0 {
		return 0, 0, 0, false
	}
	switch s[i+2:] {
	case "50":
		q = 0.50
	case "95":
		q = 0.95
	case "99":
		q = 0.99
	default:
		return 0, 0, 0, false
	}
	switch s[:i] {
	case "response_latency":
		return histLatency, q, 1000, true
	case "upstream_latency":
		return histUpstream, q, 1000, true
	case "gateway_latency":
		return histGateway, q, 1000, true
	case "request_size":
		return histRequestSize, q, 1, true
	case "response_size":
		return histResponseSize, q, 1, true
	}
	return 0, 0, 0, false
}

// MaxBuckets bounds the time buckets of one query: a longer range needs a coarser granularity.
const MaxBuckets = 1500

// Query selects analytics of some groups.
type Query struct {
	// GroupIDs are the groups whose data is read; at least one.
	GroupIDs []string
	// Start and End bound the range [Start, End); both multiples of Granularity, Start before
	// End, at most MaxBuckets buckets apart.
	Start, End  time.Time
	Granularity Granularity
	// ByTime splits rows per time bucket (the "time" dimension); otherwise each row covers the
	// whole range.
	ByTime bool
	// Dimensions group rows besides time; at most MaxDimensions, no DimTime, no repeats.
	Dimensions []Dimension
	// Metrics are computed per row; at least one.
	Metrics []Metric
	// Filters keep only requests whose dimension has one of the listed values.
	Filters map[Dimension][]string
}

// Row is one answer row.
type Row struct {
	// Start is the row's bucket (Query.Start when not ByTime).
	Start time.Time
	// Dims are the values of Query.Dimensions, in order.
	Dims []string
	// Values are the values of Query.Metrics, in order; NaN where the metric is undefined.
	Values []float64
}

// Check validates q; errors wrap ErrInvalid.
func (q *Query) Check() error {
	g := q.Granularity.Seconds()
	switch {
	case g == 0:
		return fmt.Errorf("%w: unknown granularity %q", ErrInvalid, q.Granularity)
	case len(q.GroupIDs) == 0:
		return fmt.Errorf("%w: no group", ErrInvalid)
	case !q.Start.Before(q.End):
		return fmt.Errorf("%w: start %s is not before end %s", ErrInvalid, q.Start, q.End)
	case q.Start.Unix()%g != 0 || q.End.Unix()%g != 0:
		return fmt.Errorf("%w: start and end must be multiples of a %s", ErrInvalid, q.Granularity)
	case (q.End.Unix()-q.Start.Unix())/g > MaxBuckets:
		return fmt.Errorf("%w: %d %s buckets, at most %d", ErrInvalid, (q.End.Unix()-q.Start.Unix())/g, q.Granularity, MaxBuckets)
	case len(q.Dimensions) > MaxDimensions:
		return fmt.Errorf("%w: %d dimensions besides time, at most %d", ErrInvalid, len(q.Dimensions), MaxDimensions)
	case len(q.Metrics) == 0:
		return fmt.Errorf("%w: no metric", ErrInvalid)
	}
	for i, d := range q.Dimensions {
		if d == DimTime || d.column() == "" || slices.Contains(q.Dimensions[:i], d) {
			return fmt.Errorf("%w: dimension %q", ErrInvalid, d)
		}
	}
	for d := range q.Filters {
		if d.column() == "" {
			return fmt.Errorf("%w: filter on %q", ErrInvalid, d)
		}
	}
	for _, m := range q.Metrics {
		if !slices.Contains(AllMetrics, m) {
			return fmt.Errorf("%w: metric %q", ErrInvalid, m)
		}
	}
	return nil
}

// acc accumulates one answer row.
type acc struct {
	count, err4, err5, latencySum int64
	hists                         [numHists]telemetry.Histogram
	// combo is the row's dimension values joined by NUL (its key without the bucket), dims
	// the same split.
	combo string
	dims  []string
}

// dirtySet holds a group's dirty marks.
type dirtySet struct {
	hours, days map[int64]bool
}

func (d *dirtySet) hour(h int64) bool { return d != nil && d.hours[h] }

// day: the day is marked, or one of its hours is (it was never rolled, or is being re-rolled).
func (d *dirtySet) day(day int64) bool {
	if d == nil {
		return false
	}
	if d.days[day] {
		return true
	}
	for h := range d.hours {
		if floor(h, daySecs) == day {
			return true
		}
	}
	return false
}

// Query answers q. Each level is read where it is current: for hour and day buckets still marked
// dirty the finer level is read instead, so fresh data shows at every granularity before the
// rollup job has run.
func (s *Store) Query(ctx context.Context, q Query) ([]Row, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	groups := q.GroupIDs
	if f, ok := q.Filters[DimControlPlane]; ok {
		groups = slices.DeleteFunc(slices.Clone(groups), func(g string) bool { return !slices.Contains(f, g) })
	}
	start, end := q.Start.Unix(), q.End.Unix()
	r := &reader{s: s, q: &q, accs: map[string]*acc{}}
	for _, m := range q.Metrics {
		if h, _, _, ok := m.percentile(); ok {
			r.needHist[h] = true
			r.raw = true
		}
	}
	if len(groups) > 0 {
		dirty, err := s.loadDirty(ctx, groups)
		if err != nil {
			return nil, err
		}
		// span is one range of one level, with the test a row of it must pass to be counted.
		type span struct {
			table    string
			from, to int64
			accept   func(group string, bucket int64) bool
		}
		var spans []span
		dirtyHourSpans := func(from, to int64) {
			hours := map[int64]bool{}
			for _, d := range dirty {
				for h := range d.hours {
					if h >= from && h < to {
						hours[h] = true
					}
				}
			}
			for _, h := range mergeRuns(hours, hourSecs) {
				spans = append(spans, span{"analytics_minutes", h[0], h[1], func(grp string, b int64) bool { return dirty[grp].hour(floor(b, hourSecs)) }})
			}
		}
		switch q.Granularity {
		case Minute:
			spans = append(spans, span{"analytics_minutes", start, end, nil})
		case Hour:
			spans = append(spans, span{"analytics_hours", start, end, func(grp string, b int64) bool { return !dirty[grp].hour(b) }})
			dirtyHourSpans(start, end)
		case Day:
			spans = append(spans, span{"analytics_days", start, end, func(grp string, b int64) bool { return !dirty[grp].day(b) }})
			days := map[int64]bool{}
			for _, d := range dirty {
				for day := start; day < end; day += daySecs {
					if d.day(day) {
						days[day] = true
					}
				}
			}
			for _, d := range mergeRuns(days, daySecs) {
				spans = append(spans, span{"analytics_hours", d[0], d[1], func(grp string, b int64) bool {
					return dirty[grp].day(floor(b, daySecs)) && !dirty[grp].hour(b)
				}})
				dirtyHourSpans(d[0], d[1])
			}
		}
		for _, sp := range spans {
			if err := r.read(ctx, sp.table, groups, sp.from, sp.to, sp.accept); err != nil {
				return nil, err
			}
		}
	}
	return r.rows(), nil
}

// mergeRuns turns a set of bucket starts into [from, to) runs of consecutive buckets.
func mergeRuns(set map[int64]bool, step int64) [][2]int64 {
	keys := make([]int64, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out [][2]int64
	for _, k := range keys {
		if n := len(out); n > 0 && out[n-1][1] == k {
			out[n-1][1] = k + step
			continue
		}
		out = append(out, [2]int64{k, k + step})
	}
	return out
}

// loadDirty reads the dirty marks of groups.
func (s *Store) loadDirty(ctx context.Context, groups []string) (map[string]*dirtySet, error) {
	ph, args := placeholders(groups)
	rows, err := s.st.DB().QueryContext(ctx, s.st.Rebind(`SELECT group_id, level, bucket FROM analytics_dirty WHERE group_id IN (`+ph+`)`), args...)
	if err != nil {
		return nil, fmt.Errorf("read dirty marks: %w", err)
	}
	defer rows.Close()
	out := map[string]*dirtySet{}
	for rows.Next() {
		var g, level string
		var b int64
		if err := rows.Scan(&g, &level, &b); err != nil {
			return nil, err
		}
		d := out[g]
		if d == nil {
			d = &dirtySet{hours: map[int64]bool{}, days: map[int64]bool{}}
			out[g] = d
		}
		if level == "hour" {
			d.hours[b] = true
		} else {
			d.days[b] = true
		}
	}
	return out, rows.Err()
}

func placeholders[T any](vals []T) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", "), args
}

// reader runs the SQL of one query and accumulates its rows.
type reader struct {
	s        *Store
	q        *Query
	raw      bool // read rows one by one (histograms are needed); else SQL sums them
	needHist [numHists]bool
	accs     map[string]*acc // by bucket and dimension values, see key
}

// read accumulates the rows of table for groups in [from, to) that accept passes (nil: all).
func (r *reader) read(ctx context.Context, table string, groups []string, from, to int64, accept func(string, int64) bool) error {
	var cols, where []string
	var args []any
	for _, d := range r.q.Dimensions {
		cols = append(cols, d.column())
	}
	gph, gargs := placeholders(groups)
	where = append(where, "group_id IN ("+gph+")", "bucket >= ?", "bucket < ?")
	args = append(append(args, gargs...), from, to)
	filterDims := make([]Dimension, 0, len(r.q.Filters))
	for d := range r.q.Filters {
		filterDims = append(filterDims, d)
	}
	slices.Sort(filterDims)
	for _, d := range filterDims {
		if d == DimControlPlane {
			continue // applied to the group list
		}
		cond, cargs := filterSQL(d, r.q.Filters[d])
		where, args = append(where, cond), append(args, cargs...)
	}
	sums := []string{"requests", "CASE WHEN status >= 400 AND status < 500 THEN requests ELSE 0 END", "CASE WHEN status >= 500 THEN requests ELSE 0 END", "latency_sum"}
	var q strings.Builder
	q.WriteString("SELECT group_id, bucket")
	for _, c := range cols {
		q.WriteString(", " + c)
	}
	for _, e := range sums {
		if r.raw {
			q.WriteString(", " + e)
		} else {
			q.WriteString(", SUM(" + e + ")")
		}
	}
	if r.raw {
		for h, need := range r.needHist {
			if need {
				q.WriteString(", " + histColumns[h])
			}
		}
	}
	q.WriteString(" FROM " + table + " WHERE " + strings.Join(where, " AND "))
	if !r.raw {
		q.WriteString(" GROUP BY group_id, bucket")
		for _, c := range cols {
			q.WriteString(", " + c)
		}
	}
	rows, err := r.s.st.DB().QueryContext(ctx, r.s.st.Rebind(q.String()), args...)
	if err != nil {
		return fmt.Errorf("query %s: %w", table, err)
	}
	defer rows.Close()
	var (
		group  string
		bucket int64
		dimVal = make([]sql.NullString, len(cols))
		nums   [4]int64
		blobs  [numHists][]byte
		dest   = []any{&group, &bucket}
		key    []byte
	)
	for i := range dimVal {
		dest = append(dest, &dimVal[i])
	}
	for i := range nums {
		dest = append(dest, &nums[i])
	}
	for h, need := range r.needHist {
		if need {
			dest = append(dest, &blobs[h])
		}
	}
	gsecs := r.q.Granularity.Seconds()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if accept != nil && !accept(group, bucket) {
			continue
		}
		out := r.q.Start.Unix()
		if r.q.ByTime {
			out = floor(bucket, gsecs)
		}
		key = strconv.AppendInt(key[:0], out, 10)
		for i, d := range r.q.Dimensions {
			key = append(key, 0)
			key = append(key, dimValue(d, dimVal[i].String)...)
		}
		a := r.accs[string(key)]
		if a == nil {
			a = &acc{}
			if len(r.q.Dimensions) > 0 {
				_, a.combo, _ = strings.Cut(string(key), "\x00")
				a.dims = strings.Split(a.combo, "\x00")
			}
			r.accs[string(key)] = a
		}
		a.count += nums[0]
		a.err4 += nums[1]
		a.err5 += nums[2]
		a.latencySum += nums[3]
		for h, need := range r.needHist {
			if !need {
				continue
			}
			if err := addBinary(&a.hists[h], blobs[h]); err != nil {
				return fmt.Errorf("stored %s histogram: %w", histColumns[h], err)
			}
		}
	}
	return rows.Err()
}

// addBinary adds a histogram stored in telemetry's binary form to h, bin by bin: cheaper than
// decoding a copy and merging it, which matters when a query reads tens of thousands of rows.
func addBinary(h *telemetry.Histogram, data []byte) error {
	if len(h.Bins()) == 0 {
		_, err := h.ReadBinary(data) // sized exactly, in one allocation
		return err
	}
	n, k := binary.Uvarint(data)
	if k <= 0 || n > telemetry.NumBuckets {
		return telemetry.ErrBadHistogram
	}
	data = data[k:]
	idx := -1
	for range n {
		d, k := binary.Uvarint(data)
		if k <= 0 || d == 0 || d > telemetry.NumBuckets {
			return telemetry.ErrBadHistogram
		}
		data = data[k:]
		c, k := binary.Uvarint(data)
		if k <= 0 || c == 0 {
			return telemetry.ErrBadHistogram
		}
		data = data[k:]
		idx += int(d)
		if idx >= telemetry.NumBuckets {
			return telemetry.ErrBadHistogram
		}
		h.AddBucket(idx, c)
	}
	return nil
}

// dimValue is the answer's value of a dimension from its column's value.
func dimValue(d Dimension, col string) string {
	if d == DimStatusGrouped && col != "" {
		return col[:1] + "XX"
	}
	return col
}

// filterSQL is the condition keeping rows whose dimension has one of vals.
func filterSQL(d Dimension, vals []string) (string, []any) {
	if d == DimStatusGrouped {
		var conds []string
		var args []any
		for _, v := range vals {
			if len(v) == 3 && v[1:] == "XX" && v[0] >= '1' && v[0] <= '5' {
				lo := int(v[0]-'0') * 100
				conds, args = append(conds, "(status >= ? AND status < ?)"), append(args, lo, lo+100)
			}
		}
		if len(conds) == 0 {
			return "1 = 0", nil
		}
		return "(" + strings.Join(conds, " OR ") + ")", args
	}
	if d == DimStatusCode {
		var codes []any
		for _, v := range vals {
			if n, err := strconv.Atoi(v); err == nil {
				codes = append(codes, n)
			}
		}
		if len(codes) == 0 {
			return "1 = 0", nil
		}
		return "status IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(codes)), ", ") + ")", codes
	}
	ph, args := placeholders(vals)
	return d.column() + " IN (" + ph + ")", args
}

// rows turns the accumulators into the answer: every combination of dimension values seen, for
// every bucket of the range (zeros where it had no requests), ordered by time and values.
func (r *reader) rows() []Row {
	q := r.q
	combos := map[string][]string{}
	if len(q.Dimensions) == 0 {
		combos[""] = nil
	}
	for _, a := range r.accs {
		if _, ok := combos[a.combo]; !ok && len(q.Dimensions) > 0 {
			combos[a.combo] = a.dims
		}
	}
	comboKeys := make([]string, 0, len(combos))
	for k := range combos {
		comboKeys = append(comboKeys, k)
	}
	slices.Sort(comboKeys)
	step := q.End.Unix() - q.Start.Unix()
	if q.ByTime {
		step = q.Granularity.Seconds()
	}
	out := make([]Row, 0, int((q.End.Unix()-q.Start.Unix())/step)*len(comboKeys))
	empty := &acc{}
	var key []byte
	for b := q.Start.Unix(); b < q.End.Unix(); b += step {
		key = strconv.AppendInt(key[:0], b, 10)
		n := len(key)
		for _, ck := range comboKeys {
			key = key[:n]
			if len(q.Dimensions) > 0 {
				key = append(append(key, 0), ck...)
			}
			a := r.accs[string(key)]
			if a == nil {
				a = empty
			}
			out = append(out, Row{Start: time.Unix(b, 0).UTC(), Dims: combos[ck], Values: values(q.Metrics, a, step)})
		}
	}
	return out
}

// values computes the metrics of one row covering bucketSecs seconds.
func values(metrics []Metric, a *acc, bucketSecs int64) []float64 {
	out := make([]float64, len(metrics))
	n := float64(a.count)
	ratio := func(x int64) float64 {
		if a.count == 0 {
			return math.NaN()
		}
		return float64(x) / n
	}
	for i, m := range metrics {
		switch m {
		case RequestCount:
			out[i] = n
		case RequestsPerMinute:
			out[i] = n / (float64(bucketSecs) / 60)
		case ErrorRate:
			out[i] = ratio(a.err4 + a.err5)
		case ServerErrorRate:
			out[i] = ratio(a.err5)
		case ResponseLatencyAvg:
			out[i] = ratio(a.latencySum) / 1000
		default:
			h, q, div, _ := m.percentile()
			out[i] = a.hists[h].Quantile(q) / div
		}
	}
	return out
}
