package prometheus_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	"github.com/gantry-gw/gantry/internal/dp/plugins/plugintest"
	"github.com/gantry-gw/gantry/internal/dp/plugins/prometheus"
)

func TestMetrics(t *testing.T) {
	state := plugin.NewStateRegistry()
	env := plugin.MemEnvOptions{State: state,
		Consumers: []plugin.Consumer{{ID: "c1", Username: "alice"}},
		KeyAuths:  []plugin.KeyAuthCredential{{ID: "k1", ConsumerID: "c1", Key: "k"}}}
	s := plugintest.New(t, plugintest.Options{Env: env, Routes: []plugin.RouteRef{{ID: "r1", ServiceID: "s1"}}, RouteID: "r1",
		Plugins: []plugin.PluginEntity{
			{Name: "key-auth", Config: plugintest.Config(map[string]any{"key_names": []string{"apikey"}, "key_in_header": true})},
			{Name: "prometheus", Config: plugintest.Config(prometheus.Config{PerConsumer: true, StatusCodeMetrics: true, LatencyMetrics: true, BandwidthMetrics: true})},
		}})
	ok := httptest.NewRequest("GET", "/", nil)
	ok.Header.Set("apikey", "k")
	s.Do(ok)
	s.Do(httptest.NewRequest("GET", "/", nil)) // 401 from key-auth, still logged
	rec := httptest.NewRecorder()
	prometheus.MetricsFrom(state).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`kong_http_requests_total{code="200",consumer="alice",route="r1",service="s1",source="service",workspace="default"} 1`,
		`kong_http_requests_total{code="401",consumer="",route="r1",service="s1",source="kong",workspace="default"} 1`,
		`kong_request_latency_ms_count{route="r1",service="s1",workspace="default"} 2`,
		`kong_upstream_latency_ms_count{route="r1",service="s1",workspace="default"} 1`,
		`kong_kong_latency_ms_bucket{route="r1",service="s1",workspace="default",le="6000"} 2`,
		`kong_bandwidth_bytes{consumer="alice",direction="egress",route="r1",service="s1",workspace="default"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("missing %s", want)
		}
	}
}

func TestMetricsDisabledByDefault(t *testing.T) {
	state := plugin.NewStateRegistry()
	s := plugintest.New(t, plugintest.Options{Env: plugin.MemEnvOptions{State: state}, Plugins: []plugin.PluginEntity{{Name: "prometheus", Config: plugintest.Config(prometheus.Config{})}}})
	s.Do(httptest.NewRequest("GET", "/", nil))
	rec := httptest.NewRecorder()
	prometheus.MetricsFrom(state).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(rec.Body.String(), "kong_http_requests_total{") {
		t.Error("status code metrics recorded while disabled")
	}
}
