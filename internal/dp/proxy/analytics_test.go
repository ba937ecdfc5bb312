package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/analytics"
	"github.com/gantry-gw/gantry/internal/dp/h1client"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

func newAggregator(tb testing.TB) *analytics.Aggregator {
	tb.Helper()
	a, err := analytics.NewAggregator(analytics.AggregatorOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// collectAll collects series from a until they hold want requests (the
// record is made once the handler returns, which may be after the client
// has its answer), merging them by (service, route, consumer, status).
func collectAll(t *testing.T, a *analytics.Aggregator, want int64) map[[4]string]telemetry.Series {
	t.Helper()
	out := map[[4]string]telemetry.Series{}
	var total int64
	deadline := time.Now().Add(5 * time.Second)
	for total < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests recorded, want %d: %+v", total, want, out)
		}
		for _, m := range a.Collect(time.Now().Add(time.Hour), true) {
			for _, s := range m.Series {
				k := [4]string{s.Service, s.Route, s.Consumer, itoa(int64(s.Status))}
				if old, ok := out[k]; ok {
					old.Count += s.Count
					old.RequestBytes += s.RequestBytes
					old.ResponseBytes += s.ResponseBytes
					old.Upstream.Merge(&s.Upstream)
					old.Latency.Merge(&s.Latency)
					s = old
				}
				out[k] = s
				total += s.Count
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return out
}

// TestAnalyticsRecords sends one request down each way a request can be
// answered and checks the series it was recorded in.
func TestAnalyticsRecords(t *testing.T) { bothServers(t, testAnalyticsRecords) }

func testAnalyticsRecords(t *testing.T, sk serverKind) {
	up := newRawUpstream(t, fixedResponder(okResp))
	svc := serviceFor(t, up.addr())
	svc.ID = "s1"
	dead := serviceFor(t, refusedAddr(t))
	dead.ID, dead.Retries = "s2", 0
	chain := keyAuthRateLimit(t, 10).Route("r1")
	cfg := &Config{Resolver: resolverFunc(func(r *http.Request, m *Match) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/keyed"):
			m.Service, m.RouteID, m.Plugins = svc, "r1", chain
		case strings.HasPrefix(r.URL.Path, "/open"):
			m.Service, m.RouteID = svc, "r2"
		case strings.HasPrefix(r.URL.Path, "/refused"):
			m.Service, m.RouteID = dead, "r3"
		}
	})}
	agg := newAggregator(t)
	env := newEnvOpts(t, sk, Options{Config: cfg, Analytics: agg}, h1client.Options{})
	base := "http://" + env.addr
	send := func(method, path, body string, hdr ...string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, _ := do(t, env.client, req)
		return resp.StatusCode
	}
	start := time.Now()
	codes := []int{
		send("POST", "/open", "hello"),
		send("GET", "/keyed", "", "apikey", "key-7"),
		send("GET", "/keyed", "", "apikey", "key-7"),
		send("GET", "/keyed", ""),
		send("GET", "/nothing", ""),
		send("GET", "/refused", ""),
	}
	elapsed := time.Since(start)
	if want := []int{200, 200, 200, 401, 404, 502}; !equalInts(codes, want) {
		t.Fatalf("statuses %v, want %v", codes, want)
	}
	got := collectAll(t, agg, int64(len(codes)))
	tests := []struct {
		name                    string
		key                     [4]string
		count, reqBytes         int64
		respBytesMin, upstreams uint64
	}{
		{"proxied", [4]string{"s1", "r2", "", "200"}, 1, 5, 64, 1},
		{"consumer identified", [4]string{"s1", "r1", "c7", "200"}, 2, 0, 128, 2},
		{"plugin answered", [4]string{"s1", "r1", "", "401"}, 1, 0, 1, 0},
		{"no route", [4]string{"", "", "", "404"}, 1, 0, 1, 0},
		{"upstream refused", [4]string{"s2", "r3", "", "502"}, 1, 0, 1, 0},
	}
	if len(got) != len(tests) {
		t.Errorf("series %+v", got)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := got[tt.key]
			if !ok {
				t.Fatalf("no series %v in %+v", tt.key, got)
			}
			if s.Count != tt.count || s.RequestBytes != tt.reqBytes || s.ResponseBytes < int64(tt.respBytesMin) ||
				s.Upstream.Count() != tt.upstreams || s.Latency.Count() != uint64(tt.count) {
				t.Fatalf("series %+v", s)
			}
			if tt.respBytesMin == 64 && s.ResponseBytes != 64 {
				t.Fatalf("response bytes %d, want the upstream's 64", s.ResponseBytes)
			}
			// Every latency is within the test's own duration.
			if q := s.Latency.Quantile(1); q <= 0 || q > float64(elapsed.Microseconds())*(1+telemetry.RelativeError) {
				t.Fatalf("latency %v µs, the requests took %v", q, elapsed)
			}
		})
	}
}
