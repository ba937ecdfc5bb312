package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/plugins/prometheus"
)

// scrapeMetrics GETs the runtime's /metrics and returns the exposition.
func (rt *runtime) scrapeMetrics(t *testing.T) string {
	t.Helper()
	res, err := http.Get("http://" + rt.status + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	return string(b)
}

// sample returns the value of the series whose line starts with series
// (name and labels, exactly as exposed) and whether it is there.
func sample(scrape, series string) (float64, bool) {
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestRuntimeMetrics enables the prometheus plugin through the Admin API,
// sends traffic through a runtime and scrapes /metrics on its status
// listener: Kong's series labelled with service and route names, the
// runtime's own series, and counters that survive a configuration change.
func TestRuntimeMetrics(t *testing.T) {
	e := newGatewayEnv(t, "metrics")
	up := newEcho(t, "up")
	e.create(t, "upstreams", map[string]any{"name": "pool"})
	e.create(t, "upstreams/pool/targets", map[string]any{"target": hostPort(up)})
	e.create(t, "services", map[string]any{"name": "echo", "host": "pool", "protocol": "http", "port": 80})
	e.create(t, "services/echo/routes", map[string]any{"name": "orders", "paths": []string{"/orders"}})
	anon := e.create(t, "services/echo/routes", map[string]any{"paths": []string{"/anon"}})
	e.create(t, "routes/orders/plugins", map[string]any{"name": "key-auth"})
	e.create(t, "consumers", map[string]any{"username": "alice"})
	e.create(t, "consumers/alice/key-auth", map[string]any{"key": "alice-key"})
	e.create(t, "plugins", map[string]any{"name": "prometheus", "config": map[string]any{
		"per_consumer": true, "status_code_metrics": true, "latency_metrics": true, "bandwidth_metrics": true,
		"upstream_health_metrics": true,
	}})
	hash := e.converge(t)

	send := func(path, key string) int {
		req := mustRequest(t, "GET", e.proxyURL(path), nil)
		if key != "" {
			req.Header.Set("apikey", key)
		}
		res, _ := e.send(t, req)
		return res.StatusCode
	}
	for i, c := range []struct {
		path, key string
		want      int
	}{{"/orders", "alice-key", 200}, {"/orders", "alice-key", 200}, {"/orders", "", 401}, {"/anon", "", 200}} {
		if got := send(c.path, c.key); got != c.want {
			t.Fatalf("request %d %s: %d, want %d", i, c.path, got, c.want)
		}
	}

	const (
		alice200  = `kong_http_requests_total{code="200",consumer="alice",route="orders",service="echo",source="service",workspace="default"}`
		orders401 = `kong_http_requests_total{code="401",consumer="",route="orders",service="echo",source="kong",workspace="default"}`
	)
	anon200 := `kong_http_requests_total{code="200",consumer="",route="` + anon["id"].(string) + `",service="echo",source="service",workspace="default"}`
	var scrape string
	// The log phase runs once the response is sent, so wait for it.
	waitFor(t, "the last request to be counted", func() bool {
		scrape = e.rt.scrapeMetrics(t)
		v, _ := sample(scrape, anon200)
		return v == 1
	})
	st := e.rt.getStatus(t)
	node, host := st["node_id"].(string), st["hostname"].(string)
	want := map[string]float64{
		alice200:  2,
		orders401: 1,
		`kong_request_latency_ms_count{route="orders",service="echo",workspace="default"}`:              3,
		`kong_kong_latency_ms_count{route="orders",service="echo",workspace="default"}`:                 3,
		`kong_upstream_latency_ms_count{route="orders",service="echo",workspace="default"}`:             2,
		`kong_upstream_latency_ms_bucket{route="orders",service="echo",workspace="default",le="60000"}`: 2,
		`kong_kong_latency_ms_bucket{route="orders",service="echo",workspace="default",le="1000"}`:      3,
		`kong_node_info{node_id="` + node + `",version="` + st["version"].(string) + `"}`:               1,
		`kong_data_plane_config_hash{hostname="` + host + `",node_id="` + node + `"}`:                   prometheus.HashValue(hash),
		`gantry_control_plane_connected`:    1,
		`gantry_data_plane_config_revision`: st["revision"].(float64),
		`kong_upstream_target_health{address="` + hostPort(up) + `",state="healthchecks_off",subsystem="http",target="` + hostPort(up) + `",upstream="pool"}`: 1,
		`kong_upstream_target_health{address="` + hostPort(up) + `",state="healthy",subsystem="http",target="` + hostPort(up) + `",upstream="pool"}`:          0,
	}
	for series, v := range want {
		if got, ok := sample(scrape, series); !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, v)
		}
	}
	if st["revision"].(float64) <= 0 {
		t.Errorf("status revision %v", st["revision"])
	}
	for _, series := range []string{
		`kong_bandwidth_bytes{consumer="alice",direction="egress",route="orders",service="echo",workspace="default"}`,
		`kong_bandwidth_bytes{consumer="",direction="egress",route="orders",service="echo",workspace="default"}`,
	} {
		if v, ok := sample(scrape, series); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", series, v, ok)
		}
	}
	applied, ok := sample(scrape, "gantry_data_plane_config_applied_timestamp_seconds")
	if age := time.Since(time.Unix(int64(applied), 0)); !ok || age < 0 || age > 5*time.Minute {
		t.Errorf("applied timestamp %v (present %v)", applied, ok)
	}

	// A configuration change swaps the runtime's configuration; the
	// counters carry on from where they were.
	e.create(t, "services/echo/routes", map[string]any{"name": "more", "paths": []string{"/more"}})
	newHash := e.converge(t)
	if newHash == hash {
		t.Fatal("the configuration did not change")
	}
	if got := send("/orders", "alice-key"); got != 200 {
		t.Fatalf("after the change: %d", got)
	}
	waitFor(t, "the request after the change to be counted", func() bool {
		scrape = e.rt.scrapeMetrics(t)
		v, _ := sample(scrape, alice200)
		return v == 3
	})
	if v, _ := sample(scrape, orders401); v != 1 {
		t.Errorf("401 counter after the change: %v, want 1", v)
	}
	if v, _ := sample(scrape, `kong_data_plane_config_hash{hostname="`+host+`",node_id="`+node+`"}`); v != prometheus.HashValue(newHash) {
		t.Errorf("config hash metric %v, want the new hash's %v", v, prometheus.HashValue(newHash))
	}
}
