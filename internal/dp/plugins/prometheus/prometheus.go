// Package prometheus is Kong's prometheus plugin: per-request metrics with
// Kong's metric names, in a registry the runtime exposes on its status
// listener ([MetricsFrom] and [Metrics.Handler]).
package prometheus

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
)

// Name and Priority are Kong's.
const (
	Name     = "prometheus"
	Priority = 13
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in.
type Config struct {
	PerConsumer           bool `json:"per_consumer"`
	StatusCodeMetrics     bool `json:"status_code_metrics"`
	AIMetrics             bool `json:"ai_metrics"`
	LatencyMetrics        bool `json:"latency_metrics"`
	BandwidthMetrics      bool `json:"bandwidth_metrics"`
	UpstreamHealthMetrics bool `json:"upstream_health_metrics"`
	WasmMetrics           bool `json:"wasm_metrics"`
}

// latencyBuckets are Kong's default latency buckets, in milliseconds.
var latencyBuckets = []float64{1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000, 6000}

// workspace is the only workspace a runtime has.
const workspace = "default"

// Metrics is the set of request metrics, shared by every prometheus
// instance of a runtime and kept across configuration swaps.
type Metrics struct {
	// Registry holds only these metrics; the runtime may gather it along
	// with its own.
	Registry        *prom.Registry
	requests        *prom.CounterVec
	kongLatency     *prom.HistogramVec
	upstreamLatency *prom.HistogramVec
	requestLatency  *prom.HistogramVec
	bandwidth       *prom.CounterVec
}

// NewMetrics creates and registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prom.NewRegistry(),
		requests: prom.NewCounterVec(prom.CounterOpts{Name: "kong_http_requests_total", Help: "HTTP status codes per consumer/service/route in Kong"},
			[]string{"service", "route", "code", "source", "workspace", "consumer"}),
		kongLatency: prom.NewHistogramVec(prom.HistogramOpts{Name: "kong_kong_latency_ms", Help: "Latency added by Kong and enabled plugins for each service/route in Kong", Buckets: latencyBuckets},
			[]string{"service", "route", "workspace"}),
		upstreamLatency: prom.NewHistogramVec(prom.HistogramOpts{Name: "kong_upstream_latency_ms", Help: "Latency added by upstream response for each service/route in Kong", Buckets: latencyBuckets},
			[]string{"service", "route", "workspace"}),
		requestLatency: prom.NewHistogramVec(prom.HistogramOpts{Name: "kong_request_latency_ms", Help: "Total latency incurred during requests for each service/route in Kong", Buckets: latencyBuckets},
			[]string{"service", "route", "workspace"}),
		bandwidth: prom.NewCounterVec(prom.CounterOpts{Name: "kong_bandwidth_bytes", Help: "Total bandwidth (ingress/egress) throughput in bytes"},
			[]string{"service", "route", "direction", "workspace", "consumer"}),
	}
	m.Registry.MustRegister(m.requests, m.kongLatency, m.upstreamLatency, m.requestLatency, m.bandwidth)
	return m
}

const stateKey = "prometheus:metrics"

// MetricsFrom returns the metrics kept in a state registry, creating them
// on first use; the runtime calls it to expose the same metrics the
// plugin records.
func MetricsFrom(state *plugin.StateRegistry) *Metrics {
	v, _ := state.LoadOrCreate(stateKey, func() (any, error) { return NewMetrics(), nil })
	return v.(*Metrics)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Prometheus is a built prometheus instance.
type Prometheus struct {
	cfg     Config
	metrics *Metrics
}

var _ plugin.LogHandler = (*Prometheus)(nil)

// New builds a prometheus instance.
func New(raw json.RawMessage, env plugin.Env) (plugin.Instance, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("prometheus: invalid config: %w", err)
	}
	return &Prometheus{cfg: cfg, metrics: MetricsFrom(env.State())}, nil
}

// Log implements [plugin.LogHandler]. Services and routes are labelled by
// id.
func (p *Prometheus) Log(c *plugin.Ctx) {
	m := p.metrics
	service, route := c.ServiceID, c.RouteID
	consumer := ""
	if p.cfg.PerConsumer && c.Consumer != nil {
		consumer = c.Consumer.Username
		if consumer == "" {
			consumer = c.Consumer.ID
		}
	}
	if p.cfg.StatusCodeMetrics {
		source := "service"
		if c.Response.Exit {
			source = "kong"
		}
		m.requests.WithLabelValues(service, route, strconv.Itoa(c.Log.Status), source, workspace, consumer).Inc()
	}
	if p.cfg.LatencyMetrics {
		m.requestLatency.WithLabelValues(service, route, workspace).Observe(float64(c.Log.RequestLatency.Microseconds()) / 1000)
		m.kongLatency.WithLabelValues(service, route, workspace).Observe(float64(c.Log.GatewayLatency.Microseconds()) / 1000)
		if !c.Response.Exit {
			m.upstreamLatency.WithLabelValues(service, route, workspace).Observe(float64(c.Log.UpstreamLatency.Microseconds()) / 1000)
		}
	}
	if p.cfg.BandwidthMetrics {
		m.bandwidth.WithLabelValues(service, route, "ingress", workspace, consumer).Add(float64(c.Log.RequestSize))
		m.bandwidth.WithLabelValues(service, route, "egress", workspace, consumer).Add(float64(c.Log.ResponseSize))
	}
}
