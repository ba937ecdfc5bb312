package prometheus_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	"github.com/gantry-gw/gantry/internal/dp/plugins/prometheus"
	"github.com/gantry-gw/gantry/internal/metrics/labels"
)

// perRequestFamilies are the sample names of every per-request series (one
// sample line per series for the histograms' _count).
var perRequestFamilies = []string{
	"kong_http_requests_total",
	"kong_bandwidth_bytes",
	"kong_request_latency_ms_count",
	"kong_upstream_latency_ms_count",
	"kong_kong_latency_ms_count",
}

// maxPluginSeries bounds the series of each per-request family after the
// traffic of TestCardinalityIsBounded, whatever its volume. That traffic can
// produce at most 5 status-code series (200 and "other" for each of the two
// consumers, 401 from key-auth for requests without a key), 6 bandwidth
// series (both directions for each consumer and none) and 1 series for
// each latency; the bound leaves a little room without letting the count
// follow the traffic.
const maxPluginSeries = 8

// TestCardinalityIsBounded proxies requests with invented methods and paths
// to an upstream that answers odd status codes (any three digits, as an
// upstream may), and checks that the per-request series at /metrics keep a
// small, fixed number: labels come from configuration and bounded sets,
// never from what the client or the upstream chose.
func TestCardinalityIsBounded(t *testing.T) {
	state := plugin.NewStateRegistry()
	// The upstream answers the status the request names, as any upstream
	// can answer any status.
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.Header.Get("X-Answer-Status"))
		if err != nil {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "body")
	})
	s := setupWith(t, state, prometheus.Config{StatusCodeMetrics: true, PerConsumer: true, LatencyMetrics: true,
		BandwidthMetrics: true}, named, upstream)
	srv := httptest.NewServer(s.Handler)
	t.Cleanup(srv.Close)
	metrics, err := prometheus.NewHandler(prometheus.RuntimeOptions{Metrics: prometheus.MetricsFrom(state), NodeID: "n1",
		Status: func() prometheus.RuntimeStatus { return prometheus.RuntimeStatus{} }})
	if err != nil {
		t.Fatal(err)
	}
	metricsSrv := httptest.NewServer(metrics)
	t.Cleanup(metricsSrv.Close)

	keys := []string{"alice-key", "c2-key", ""}
	// send sends the i-th request: an invented method and path, a key
	// (or none) in turn, and an upstream status of 600..999 for every
	// other request, 200 for the rest. It goes over the server's
	// keep-alive connection when overHTTP, else to the handler in-process
	// (the same handler, without the cost of the loopback under -race).
	send := func(t *testing.T, i int, overHTTP bool) {
		t.Helper()
		method, path := fmt.Sprintf("INVENTED%d", i), fmt.Sprintf("/any/%d?q=%d", i, i)
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("ping"))
		if err != nil {
			t.Fatal(err)
		}
		if key := keys[i%len(keys)]; key != "" {
			req.Header.Set("apikey", key)
		}
		if i%2 == 1 {
			req.Header.Set("X-Answer-Status", strconv.Itoa(600+(i/2)%400))
		}
		var status int
		if overHTTP {
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			status = res.StatusCode
		} else {
			rec := httptest.NewRecorder()
			s.Handler.ServeHTTP(rec, req)
			status = rec.Code
		}
		if status == http.StatusInternalServerError {
			t.Fatalf("%s %s: %d", method, path, status)
		}
	}
	scrape := func(t *testing.T) string {
		t.Helper()
		res, err := metricsSrv.Client().Get(metricsSrv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}

	var after100 map[string]int
	sent := 0
	for _, step := range []struct {
		name     string
		total    int
		overHTTP bool
	}{
		{"after 100 requests", 100, true},
		{"after 10000 requests", 10000, false},
	} {
		t.Run(step.name, func(t *testing.T) {
			for ; sent < step.total; sent++ {
				send(t, sent, step.overHTTP)
			}
			out := scrape(t)
			counts := map[string]int{}
			for _, family := range perRequestFamilies {
				counts[family] = seriesCount(out, family)
				if counts[family] == 0 {
					t.Errorf("no %s series", family)
				}
				if counts[family] > maxPluginSeries {
					t.Errorf("%s has %d series, want at most %d", family, counts[family], maxPluginSeries)
				}
			}
			// Whatever their number, the code labels must be listed ones.
			for _, line := range strings.Split(series(out, "kong_http_requests_total"), "\n") {
				_, rest, ok := strings.Cut(line, `code="`)
				if !ok {
					continue
				}
				if code, _, _ := strings.Cut(rest, `"`); code != labels.OtherStatus {
					if n, err := strconv.Atoi(code); err != nil || n < 100 || n > 599 {
						t.Errorf("code label %q", code)
						break
					}
				}
			}
			if after100 == nil {
				after100 = counts
				return
			}
			for _, family := range perRequestFamilies {
				if counts[family] != after100[family] {
					t.Errorf("%s grew from %d series after 100 requests to %d", family, after100[family], counts[family])
				}
			}
		})
	}
	if t.Failed() {
		t.Logf("kong_http_requests_total, first lines:\n%s", head(series(scrape(t), "kong_http_requests_total"), 8))
	}
}

// TestStatusCodeLabel checks the code label of statuses the log phase may
// be handed, including ones no HTTP server would send downstream.
func TestStatusCodeLabel(t *testing.T) {
	tests := []struct {
		status int
		want   string // empty: no series
	}{
		{200, "200"},
		{101, "101"},
		{599, "599"},
		{600, labels.OtherStatus},
		{999, labels.OtherStatus},
		{1000, labels.OtherStatus},
		{99, labels.OtherStatus},
		{1 << 20, labels.OtherStatus},
		{0, ""}, // no response was sent: Kong records nothing
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			state := plugin.NewStateRegistry()
			env, err := plugin.NewMemEnv(plugin.MemEnvOptions{State: state})
			if err != nil {
				t.Fatal(err)
			}
			inst, err := prometheus.New(plugintest.Config(prometheus.Config{StatusCodeMetrics: true}), env)
			if err != nil {
				t.Fatal(err)
			}
			c := logCtx()
			defer plugin.ReleaseCtx(c)
			c.Log.Status = tt.status
			inst.(plugin.LogHandler).Log(c)
			got := series(scrape(t, prometheus.MetricsFrom(state)), "kong_http_requests_total")
			want := ""
			if tt.want != "" {
				want = `kong_http_requests_total{code="` + tt.want + `",consumer="",route="orders",service="orders-svc",source="service",workspace="default"} 1` + "\n"
			}
			if got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// setupWith is setup with an upstream of the test's own.
func setupWith(t *testing.T, state *plugin.StateRegistry, cfg prometheus.Config, ref plugin.RouteRef, upstream http.Handler) *plugintest.Setup {
	t.Helper()
	env := plugin.MemEnvOptions{State: state,
		Consumers: []plugin.Consumer{{ID: "c1", Username: "alice"}, {ID: "c2", CustomID: "cust-2"}},
		KeyAuths: []plugin.KeyAuthCredential{
			{ID: "k1", ConsumerID: "c1", Key: "alice-key"}, {ID: "k2", ConsumerID: "c2", Key: "c2-key"},
		}}
	return plugintest.New(t, plugintest.Options{Env: env, Routes: []plugin.RouteRef{ref}, RouteID: ref.ID, Upstream: upstream,
		Plugins: []plugin.PluginEntity{
			{Name: "key-auth", Config: plugintest.Config(map[string]any{"key_names": []string{"apikey"}, "key_in_header": true})},
			{Name: "prometheus", Config: plugintest.Config(cfg)},
		}})
}

// seriesCount counts the sample lines of one metric in a scrape.
func seriesCount(scrape, name string) int {
	return strings.Count(series(scrape, name), "\n")
}

// head returns the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
