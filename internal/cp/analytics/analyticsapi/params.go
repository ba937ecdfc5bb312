package analyticsapi

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/analytics"
	"github.com/gantry-gw/gantry/internal/cp/api"
)

// TimeRanges are the time_range presets with their default granularity (Konnect's table).
var TimeRanges = []struct {
	Name        string
	Length      time.Duration
	Granularity analytics.Granularity
}{
	{"15m", 15 * time.Minute, analytics.Minute},
	{"1h", time.Hour, analytics.Minute},
	{"6h", 6 * time.Hour, analytics.Minute},
	{"12h", 12 * time.Hour, analytics.Hour},
	{"24h", 24 * time.Hour, analytics.Hour},
	{"7d", 7 * 24 * time.Hour, analytics.Hour},
	{"30d", 30 * 24 * time.Hour, analytics.Day},
}

// DefaultTimeRange applies when neither time_range nor start and end are given.
const DefaultTimeRange = "1h"

var filterKeyRE = regexp.MustCompile(`^filter\[([a-z_]+)\]\[([a-z]+)\]$`)

// request is a parsed analytics request.
type request struct {
	query analytics.Query
	// dimensions as asked, "time" included where it was given.
	dimensions []string
}

func names[T ~string](vals []T) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out
}

// parse reads the query parameters of an analytics request made at now; orgWide allows the
// control_plane dimension. Every bad parameter is reported in one 400 problem.
func parse(v url.Values, now time.Time, orgWide bool) (request, error) {
	var bad []api.InvalidParameter
	badParam := func(field, rule, reason string, choices ...string) {
		bad = append(bad, api.InvalidParameter{Field: field, Rule: rule, Reason: reason, Source: "query", Choices: choices})
	}
	req := request{}
	q := &req.query

	allowedDims := slices.Clone(analytics.AllDimensions)
	if !orgWide {
		allowedDims = slices.DeleteFunc(allowedDims, func(d analytics.Dimension) bool { return d == analytics.DimControlPlane })
	}

	// Metrics.
	q.Metrics = []analytics.Metric{analytics.RequestCount}
	if s := v.Get("metrics"); s != "" {
		q.Metrics = nil
		for _, m := range splitList(s) {
			metric := analytics.Metric(m)
			switch {
			case !slices.Contains(analytics.AllMetrics, metric):
				badParam("metrics", "enum", fmt.Sprintf("unknown metric %q", m), names(analytics.AllMetrics)...)
			case !slices.Contains(q.Metrics, metric):
				q.Metrics = append(q.Metrics, metric)
			}
		}
		if len(q.Metrics) == 0 && len(bad) == 0 {
			badParam("metrics", "required", "must name at least one metric", names(analytics.AllMetrics)...)
		}
	}

	// Dimensions.
	req.dimensions = []string{string(analytics.DimTime)}
	q.ByTime = true
	if s, ok := v["dimensions"]; ok {
		req.dimensions, q.ByTime = nil, false
		for _, d := range splitList(strings.Join(s, ",")) {
			dim := analytics.Dimension(d)
			switch {
			case !slices.Contains(allowedDims, dim):
				reason := fmt.Sprintf("unknown dimension %q", d)
				if dim == analytics.DimControlPlane {
					reason = "control_plane is a dimension of the organization-wide /v2/analytics only"
				}
				badParam("dimensions", "enum", reason, names(allowedDims)...)
			case slices.Contains(req.dimensions, d):
			case dim == analytics.DimTime:
				q.ByTime = true
				req.dimensions = append(req.dimensions, d)
			default:
				q.Dimensions = append(q.Dimensions, dim)
				req.dimensions = append(req.dimensions, d)
			}
		}
		if len(q.Dimensions) > analytics.MaxDimensions {
			badParam("dimensions", "max_items", fmt.Sprintf("at most %d dimensions besides time, got %d", analytics.MaxDimensions, len(q.Dimensions)))
		}
	}

	// Filters.
	keys := make([]string, 0, len(v))
	for k := range v {
		if strings.HasPrefix(k, "filter") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		m := filterKeyRE.FindStringSubmatch(k)
		if m == nil {
			badParam(k, "format", "must look like filter[dimension][eq] or filter[dimension][in]")
			continue
		}
		dim, op := analytics.Dimension(m[1]), m[2]
		if dim == analytics.DimTime || !slices.Contains(allowedDims, dim) {
			badParam(k, "enum", fmt.Sprintf("cannot filter by %q", m[1]), names(allowedDims[1:])...)
			continue
		}
		var vals []string
		switch op {
		case "eq":
			vals = v[k]
		case "in":
			vals = splitList(strings.Join(v[k], ","))
		default:
			badParam(k, "enum", fmt.Sprintf("unknown operator %q", op), "eq", "in")
			continue
		}
		if len(vals) == 0 {
			badParam(k, "required", "must not be empty")
			continue
		}
		ok := true
		for _, val := range vals {
			switch dim {
			case analytics.DimStatusCode:
				if n, err := strconv.Atoi(val); err != nil || n < 100 || n > 599 {
					badParam(k, "range", fmt.Sprintf("status code %q is not a number from 100 to 599", val))
					ok = false
				}
			case analytics.DimStatusGrouped:
				if !slices.Contains(analytics.StatusClasses, val) {
					badParam(k, "enum", fmt.Sprintf("status class %q", val), analytics.StatusClasses...)
					ok = false
				}
			}
		}
		if ok {
			if q.Filters == nil {
				q.Filters = map[analytics.Dimension][]string{}
			}
			q.Filters[dim] = append(q.Filters[dim], vals...)
		}
	}

	// Time range and granularity.
	parseRange(v, now, q, badParam)
	if len(bad) > 0 {
		return req, &api.Problem{Status: 400, Detail: "The analytics query is not valid.", InvalidParameters: bad}
	}
	return req, nil
}

// parseRange sets q's range and granularity from time_range or start and end, and granularity.
func parseRange(v url.Values, now time.Time, q *analytics.Query, badParam func(field, rule, reason string, choices ...string)) {
	gran := analytics.Granularity(v.Get("granularity"))
	if gran != "" && gran.Seconds() == 0 {
		badParam("granularity", "enum", fmt.Sprintf("unknown granularity %q", gran), names(analytics.Granularities)...)
		return
	}
	startS, endS, rangeS := v.Get("start"), v.Get("end"), v.Get("time_range")
	var start, end time.Time
	custom := startS != "" || endS != ""
	switch {
	case custom && rangeS != "":
		badParam("time_range", "exclusive", "give time_range or start and end, not both")
		return
	case custom:
		var err error
		if start, err = time.Parse(time.RFC3339, startS); err != nil {
			badParam("start", "format", "must be an RFC 3339 time, e.g. 2026-12-03T10:00:00Z")
		}
		if end, err = time.Parse(time.RFC3339, endS); err != nil {
			badParam("end", "format", "must be an RFC 3339 time, e.g. 2026-12-03T11:00:00Z")
		}
		if start.IsZero() || end.IsZero() {
			return
		}
		if !start.Before(end) {
			badParam("start", "before_end", "must be before end")
			return
		}
		if gran == "" {
			// The finest granularity whose buckets fit.
			gran = analytics.Day
			for _, g := range analytics.Granularities {
				if buckets(start, end, g) <= analytics.MaxBuckets {
					gran = g
					break
				}
			}
		}
	default:
		if rangeS == "" {
			rangeS = DefaultTimeRange
		}
		found := false
		for _, tr := range TimeRanges {
			if tr.Name == rangeS {
				found = true
				if gran == "" {
					gran = tr.Granularity
				}
				// The range ends with the bucket now is in: 15m holds 15 minute buckets, the
				// last one still filling.
				g := time.Duration(gran.Seconds()) * time.Second
				end = now.UTC().Truncate(g).Add(g)
				start = end.Add(-tr.Length)
			}
		}
		if !found {
			choices := make([]string, len(TimeRanges))
			for i, tr := range TimeRanges {
				choices[i] = tr.Name
			}
			badParam("time_range", "enum", fmt.Sprintf("unknown time range %q", rangeS), choices...)
			return
		}
	}
	g := time.Duration(gran.Seconds()) * time.Second
	q.Granularity = gran
	q.Start = start.UTC().Truncate(g)
	q.End = end.UTC().Truncate(g)
	if q.End.Before(end) {
		q.End = q.End.Add(g)
	}
	if n := buckets(q.Start, q.End, gran); n > analytics.MaxBuckets {
		badParam("granularity", "max_buckets", fmt.Sprintf("the range holds %d %s buckets, at most %d: choose a coarser granularity or a shorter range", n, gran, analytics.MaxBuckets),
			names(analytics.Granularities)...)
	}
}

// buckets counts the buckets of g that [start, end) touches.
func buckets(start, end time.Time, g analytics.Granularity) int64 {
	s := g.Seconds()
	from := start.Unix() - start.Unix()%s
	to := end.Unix()
	return (to - from + s - 1) / s
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
