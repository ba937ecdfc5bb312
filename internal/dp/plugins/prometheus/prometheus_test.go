package prometheus_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/gantry-gw/gantry/internal/dp/health"
	"github.com/gantry-gw/gantry/internal/dp/plugin"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	"github.com/gantry-gw/gantry/internal/dp/plugins/prometheus"
)

// setup compiles key-auth (consumers alice and a username-less one) and a
// prometheus instance with cfg on route r1 of service s1, named as given.
func setup(t *testing.T, state *plugin.StateRegistry, cfg prometheus.Config, ref plugin.RouteRef) *plugintest.Setup {
	t.Helper()
	env := plugin.MemEnvOptions{State: state,
		Consumers: []plugin.Consumer{{ID: "c1", Username: "alice"}, {ID: "c2", CustomID: "cust-2"}},
		KeyAuths: []plugin.KeyAuthCredential{
			{ID: "k1", ConsumerID: "c1", Key: "alice-key"}, {ID: "k2", ConsumerID: "c2", Key: "c2-key"},
		}}
	return plugintest.New(t, plugintest.Options{Env: env, Routes: []plugin.RouteRef{ref}, RouteID: ref.ID,
		Plugins: []plugin.PluginEntity{
			{Name: "key-auth", Config: plugintest.Config(map[string]any{"key_names": []string{"apikey"}, "key_in_header": true})},
			{Name: "prometheus", Config: plugintest.Config(cfg)},
		}})
}

// traffic sends: alice with a 5-byte body (200), the custom_id consumer
// (200), and a request without a key (401 from key-auth).
func traffic(s *plugintest.Setup) {
	r := httptest.NewRequest("POST", "/", strings.NewReader("hello"))
	r.Header.Set("apikey", "alice-key")
	s.Do(r)
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("apikey", "c2-key")
	s.Do(r)
	s.Do(httptest.NewRequest("GET", "/", nil))
}

func scrape(t *testing.T, m *prometheus.Metrics) string {
	t.Helper()
	h, err := prometheus.NewHandler(prometheus.RuntimeOptions{Metrics: m, NodeID: "n1",
		Status: func() prometheus.RuntimeStatus { return prometheus.RuntimeStatus{} }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// series returns the sample lines of one metric family in a scrape, each
// ending in a newline, in exposition order (sorted by labels).
func series(scrape, name string) string {
	var b strings.Builder
	for _, line := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

var named = plugin.RouteRef{ID: "r1", ServiceID: "s1", Name: "orders", ServiceName: "orders-svc"}

func TestStatusCodeSeries(t *testing.T) {
	tests := []struct {
		name string
		cfg  prometheus.Config
		ref  plugin.RouteRef
		want string
	}{
		{"per consumer", prometheus.Config{StatusCodeMetrics: true, PerConsumer: true}, named, `
kong_http_requests_total{code="200",consumer="alice",route="orders",service="orders-svc",source="service",workspace="default"} 1
kong_http_requests_total{code="200",consumer="cust-2",route="orders",service="orders-svc",source="service",workspace="default"} 1
kong_http_requests_total{code="401",consumer="",route="orders",service="orders-svc",source="kong",workspace="default"} 1
`},
		{"without consumers", prometheus.Config{StatusCodeMetrics: true}, named, `
kong_http_requests_total{code="200",consumer="",route="orders",service="orders-svc",source="service",workspace="default"} 2
kong_http_requests_total{code="401",consumer="",route="orders",service="orders-svc",source="kong",workspace="default"} 1
`},
		{"unnamed route is its id", prometheus.Config{StatusCodeMetrics: true}, plugin.RouteRef{ID: "r1", ServiceID: "s1", ServiceName: "backend.internal"}, `
kong_http_requests_total{code="200",consumer="",route="r1",service="backend.internal",source="service",workspace="default"} 2
kong_http_requests_total{code="401",consumer="",route="r1",service="backend.internal",source="kong",workspace="default"} 1
`},
		{"disabled", prometheus.Config{PerConsumer: true, LatencyMetrics: true}, named, ""},
		{"no service", prometheus.Config{StatusCodeMetrics: true, LatencyMetrics: true, BandwidthMetrics: true}, plugin.RouteRef{ID: "r1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := plugin.NewStateRegistry()
			traffic(setup(t, state, tt.cfg, tt.ref))
			got := series(scrape(t, prometheus.MetricsFrom(state)), "kong_http_requests_total")
			if got != strings.TrimPrefix(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestBandwidthSeries(t *testing.T) {
	state := plugin.NewStateRegistry()
	s := setup(t, state, prometheus.Config{BandwidthMetrics: true, PerConsumer: true}, named)
	traffic(s)
	m := prometheus.MetricsFrom(state)
	// Ingress is the request body (only alice sent one); egress is what
	// each response wrote, so read it from the counters and check its sign
	// and labels exactly.
	out := scrape(t, m)
	for _, want := range []string{
		`kong_bandwidth_bytes{consumer="alice",direction="ingress",route="orders",service="orders-svc",workspace="default"} 5`,
		`kong_bandwidth_bytes{consumer="alice",direction="egress",route="orders",service="orders-svc",workspace="default"} `,
		`kong_bandwidth_bytes{consumer="cust-2",direction="egress",route="orders",service="orders-svc",workspace="default"} `,
		`kong_bandwidth_bytes{consumer="",direction="egress",route="orders",service="orders-svc",workspace="default"} `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, unwanted := range []string{`consumer="cust-2",direction="ingress"`, `consumer="",direction="ingress"`} {
		if strings.Contains(out, unwanted) {
			t.Errorf("ingress series for a request without body: %s", unwanted)
		}
	}
	if strings.Contains(out, "kong_http_requests_total{") || strings.Contains(out, "kong_request_latency_ms_count") {
		t.Error("series of disabled flags were recorded")
	}
}

func TestLatencySeries(t *testing.T) {
	state := plugin.NewStateRegistry()
	traffic(setup(t, state, prometheus.Config{LatencyMetrics: true}, named))
	out := scrape(t, prometheus.MetricsFrom(state))
	for _, want := range []string{
		// Every request has a total and a Kong latency; only the two that
		// reached the upstream have an upstream latency.
		`kong_request_latency_ms_count{route="orders",service="orders-svc",workspace="default"} 3`,
		`kong_kong_latency_ms_count{route="orders",service="orders-svc",workspace="default"} 3`,
		`kong_upstream_latency_ms_count{route="orders",service="orders-svc",workspace="default"} 2`,
		// Kong's buckets: the Kong latency tops at 1s, the others at 60s.
		`kong_kong_latency_ms_bucket{route="orders",service="orders-svc",workspace="default",le="1000"} 3`,
		`kong_kong_latency_ms_bucket{route="orders",service="orders-svc",workspace="default",le="750"} 3`,
		`kong_upstream_latency_ms_bucket{route="orders",service="orders-svc",workspace="default",le="60000"} 2`,
		`kong_request_latency_ms_bucket{route="orders",service="orders-svc",workspace="default",le="25"} 3`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, unwanted := range []string{`kong_kong_latency_ms_bucket{route="orders",service="orders-svc",workspace="default",le="2000"}`,
		`kong_request_latency_ms_bucket{route="orders",service="orders-svc",workspace="default",le="1"}`} {
		if strings.Contains(out, unwanted) {
			t.Errorf("bucket that Kong does not have: %s", unwanted)
		}
	}
}

// TestMetricsSurviveSwaps compiles the plugin twice against one state
// registry, as the runtime does on every new configuration.
func TestMetricsSurviveSwaps(t *testing.T) {
	state := plugin.NewStateRegistry()
	cfg := prometheus.Config{StatusCodeMetrics: true}
	for range 2 {
		s := setup(t, state, cfg, named)
		s.Set.Close()
		s.Do(httptest.NewRequest("GET", "/", nil))
	}
	want := `
kong_http_requests_total{code="401",consumer="",route="orders",service="orders-svc",source="kong",workspace="default"} 2
`
	if got := series(scrape(t, prometheus.MetricsFrom(state)), "kong_http_requests_total"); got != strings.TrimPrefix(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRuntimeSeries(t *testing.T) {
	applied := time.Unix(1700000000, 500_000_000)
	status := prometheus.RuntimeStatus{ConfigHash: "0000000000000000000000000000000a", Revision: 42, Connected: true, LastApplied: applied}
	upstreams := []health.UpstreamStatus{{ID: "u1", Name: "pool", Health: health.Healthy, Targets: []health.TargetStatus{
		{Address: "10.0.0.1:80", Health: health.Healthy}, {Address: "10.0.0.2:80", Health: health.Unhealthy},
	}}}
	state := plugin.NewStateRegistry()
	m := prometheus.MetricsFrom(state)
	h, err := prometheus.NewHandler(prometheus.RuntimeOptions{Metrics: m, NodeID: "node-1", Hostname: "gw-1", Version: "3.10.0",
		Status:            func() prometheus.RuntimeStatus { return status },
		Upstreams:         func() []health.UpstreamStatus { return upstreams },
		ClusterCertExpiry: time.Unix(1800000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	get := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q", ct)
		}
		return rec.Body.String()
	}
	out := get()
	for _, want := range []string{
		`kong_node_info{node_id="node-1",version="3.10.0"} 1`,
		"kong_datastore_reachable 1",
		`kong_data_plane_config_hash{hostname="gw-1",node_id="node-1"} 10`,
		"kong_data_plane_cluster_cert_expiry_timestamp 1.8e+09",
		"gantry_control_plane_connected 1",
		"gantry_data_plane_config_revision 42",
		"gantry_data_plane_config_applied_timestamp_seconds 1.7000000005e+09",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, "kong_upstream_target_health") {
		t.Error("upstream health served before any instance enabled it")
	}
	// Enabling upstream_health_metrics on any instance turns the series on.
	setup(t, state, prometheus.Config{UpstreamHealthMetrics: true}, named)
	status.Connected, status.LastApplied, status.ConfigHash = false, time.Time{}, ""
	out = get()
	for _, want := range []string{
		`kong_upstream_target_health{address="10.0.0.1:80",state="healthy",subsystem="http",target="10.0.0.1:80",upstream="pool"} 1`,
		`kong_upstream_target_health{address="10.0.0.1:80",state="unhealthy",subsystem="http",target="10.0.0.1:80",upstream="pool"} 0`,
		`kong_upstream_target_health{address="10.0.0.1:80",state="healthchecks_off",subsystem="http",target="10.0.0.1:80",upstream="pool"} 0`,
		`kong_upstream_target_health{address="10.0.0.1:80",state="dns_error",subsystem="http",target="10.0.0.1:80",upstream="pool"} 0`,
		`kong_upstream_target_health{address="10.0.0.2:80",state="unhealthy",subsystem="http",target="10.0.0.2:80",upstream="pool"} 1`,
		`kong_upstream_target_health{address="10.0.0.2:80",state="healthy",subsystem="http",target="10.0.0.2:80",upstream="pool"} 0`,
		"gantry_control_plane_connected 0",
		`kong_data_plane_config_hash{hostname="gw-1",node_id="node-1"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, "gantry_data_plane_config_applied_timestamp_seconds") {
		t.Error("applied timestamp served before any apply")
	}
}

// TestRuntimeCollectors: extra collectors are served beside the runtime
// series, and one whose series clash is refused.
func TestRuntimeCollectors(t *testing.T) {
	m := prometheus.NewMetrics()
	extra := prom.NewCounterFunc(prom.CounterOpts{Name: "gantry_test_extra_total", Help: "extra"}, func() float64 { return 7 })
	opts := prometheus.RuntimeOptions{Metrics: m, NodeID: "n1", Status: func() prometheus.RuntimeStatus { return prometheus.RuntimeStatus{} },
		Collectors: []prom.Collector{extra}}
	h, err := prometheus.NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if out := rec.Body.String(); !strings.Contains(out, "gantry_test_extra_total 7\n") || !strings.Contains(out, "kong_datastore_reachable 1\n") {
		t.Fatalf("scrape:\n%s", out)
	}
	opts.Collectors = append(opts.Collectors, extra)
	if _, err := prometheus.NewHandler(opts); err == nil {
		t.Fatal("a collector registered twice was accepted")
	}
}

func TestNewHandlerChecksOptions(t *testing.T) {
	_, err := prometheus.NewHandler(prometheus.RuntimeOptions{})
	if err == nil || !strings.Contains(err.Error(), "Metrics, NodeID, Status") {
		t.Fatalf("err %v", err)
	}
}

func TestHashValue(t *testing.T) {
	tests := []struct {
		hash string
		want float64
	}{
		{"", 0},
		{"00000000000000000000000000000000", 0},
		{"ff", 255},
		{"not-hex", 0},
		{"ffffffffffffffffffffffffffffffff", 3.402823669209385e+38},
	}
	for _, tt := range tests {
		t.Run(tt.hash, func(t *testing.T) {
			if got := prometheus.HashValue(tt.hash); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// logCtx is a finished request on a named route, as the proxy hands it to
// the log phase.
func logCtx() *plugin.Ctx {
	c := plugin.AcquireCtx(httptest.NewRequest("GET", "/", nil))
	c.RouteID, c.RouteName, c.ServiceID, c.ServiceName = "r1", "orders", "s1", "orders-svc"
	c.Consumer = &plugin.Consumer{ID: "c1", Username: "alice"}
	c.Log = plugin.LogInfo{Status: http.StatusOK, RequestSize: 10, ResponseSize: 100,
		RequestLatency: 3 * time.Millisecond, UpstreamLatency: 2 * time.Millisecond, GatewayLatency: time.Millisecond}
	return c
}

func allFlags(t testing.TB) plugin.LogHandler {
	t.Helper()
	inst, err := prometheus.New(plugintest.Config(prometheus.Config{PerConsumer: true, StatusCodeMetrics: true,
		LatencyMetrics: true, BandwidthMetrics: true}), mustEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	return inst.(plugin.LogHandler)
}

func mustEnv(t testing.TB) plugin.Env {
	env, err := plugin.NewMemEnv(plugin.MemEnvOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestLogAllocations budgets the log phase with every flag on, once the
// series exist: label lookups and observations must not allocate.
func TestLogAllocations(t *testing.T) {
	p := allFlags(t)
	c := logCtx()
	defer plugin.ReleaseCtx(c)
	p.Log(c)
	if n := testing.AllocsPerRun(200, func() { p.Log(c) }); n > 0 {
		t.Errorf("%.1f allocations per request, want 0", n)
	}
}

func BenchmarkLog(b *testing.B) {
	p := allFlags(b)
	c := logCtx()
	defer plugin.ReleaseCtx(c)
	b.ReportAllocs()
	for b.Loop() {
		p.Log(c)
	}
}
