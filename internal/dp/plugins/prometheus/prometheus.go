// Package prometheus is Kong's prometheus plugin: per-request metrics with
// Kong 3.x's metric names, labels and histogram buckets, kept in a
// [Metrics] value that outlives configuration swaps, and the runtime's
// /metrics endpoint ([NewHandler]) that serves them along with runtime-level
// series (node, configuration hash, control plane link, upstream target
// health).
//
// Per-request series, recorded in the log phase of every request the plugin
// applies to and that matched a service (Kong records nothing for requests
// without one):
//
//	kong_http_requests_total{service,route,code,source,workspace,consumer}  status_code_metrics
//	kong_kong_latency_ms{service,route,workspace}                           latency_metrics
//	kong_upstream_latency_ms{service,route,workspace}                       latency_metrics
//	kong_request_latency_ms{service,route,workspace}                        latency_metrics
//	kong_bandwidth_bytes{service,route,direction,workspace,consumer}        bandwidth_metrics
//
// service is the service's name, or its host when it has none; route is the
// route's name, or its id; workspace is always "default"; consumer is empty
// unless per_consumer is set, then the consumer's username, or its custom_id
// when it has no username. source is "service" when the upstream produced
// the response and "kong" otherwise (a plugin exit, a failed upstream).
// code is the status sent downstream when it is in 100..599, else "other":
// an upstream may answer any three digits (see package labels). Every label
// thus comes from configuration or a finite set, never from the request.
// Latencies are in milliseconds, with microsecond resolution.
package prometheus

import (
	"encoding/json"
	"fmt"
	"sync/atomic"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/gantry-gw/gantry/internal/dp/plugin"
	"github.com/gantry-gw/gantry/internal/metrics/labels"
)

// Name and Priority are Kong's.
const (
	Name     = "prometheus"
	Priority = 13
)

func init() { plugin.Register(Name, Priority, New) }

// Config is the plugin configuration with Kong's defaults filled in (every
// flag defaults to false). AIMetrics and WasmMetrics are accepted and have
// no effect: the runtime runs neither AI plugins nor Wasm filters.
type Config struct {
	PerConsumer           bool `json:"per_consumer"`
	StatusCodeMetrics     bool `json:"status_code_metrics"`
	AIMetrics             bool `json:"ai_metrics"`
	LatencyMetrics        bool `json:"latency_metrics"`
	BandwidthMetrics      bool `json:"bandwidth_metrics"`
	UpstreamHealthMetrics bool `json:"upstream_health_metrics"`
	WasmMetrics           bool `json:"wasm_metrics"`
}

// KongLatencyBuckets are the upper bounds, in milliseconds, of Kong's
// kong_kong_latency_ms histogram.
var KongLatencyBuckets = []float64{1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000}

// UpstreamLatencyBuckets are the upper bounds, in milliseconds, of Kong's
// kong_upstream_latency_ms and kong_request_latency_ms histograms.
var UpstreamLatencyBuckets = []float64{25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000}

// Workspace is the workspace label of every series: a runtime group has
// Kong's single default workspace.
const Workspace = "default"

// Metrics holds the per-request series. One value serves every prometheus
// instance of a runtime and every configuration generation (see
// [MetricsFrom]), so counters only ever grow. Safe for concurrent use.
type Metrics struct {
	// Registry holds only the per-request series; [NewHandler] gathers it
	// with the runtime's own.
	Registry *prom.Registry

	requests        *prom.CounterVec
	kongLatency     *prom.HistogramVec
	upstreamLatency *prom.HistogramVec
	requestLatency  *prom.HistogramVec
	bandwidth       *prom.CounterVec

	// upstreamHealth is set once some instance enabled
	// upstream_health_metrics; as in Kong, it stays set until the
	// process restarts.
	upstreamHealth atomic.Bool
}

// NewMetrics creates the per-request series in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prom.NewRegistry(),
		requests: prom.NewCounterVec(prom.CounterOpts{Name: "kong_http_requests_total",
			Help: "HTTP status codes per consumer/service/route in Kong"},
			[]string{"service", "route", "code", "source", "workspace", "consumer"}),
		kongLatency: prom.NewHistogramVec(prom.HistogramOpts{Name: "kong_kong_latency_ms",
			Help: "Latency added by Kong and enabled plugins for each service/route in Kong", Buckets: KongLatencyBuckets},
			[]string{"service", "route", "workspace"}),
		upstreamLatency: prom.NewHistogramVec(prom.HistogramOpts{Name: "kong_upstream_latency_ms",
			Help: "Latency added by upstream response for each service/route in Kong", Buckets: UpstreamLatencyBuckets},
			[]string{"service", "route", "workspace"}),
		requestLatency: prom.NewHistogramVec(prom.HistogramOpts{Name: "kong_request_latency_ms",
			Help: "Total latency incurred during requests for each service/route in Kong", Buckets: UpstreamLatencyBuckets},
			[]string{"service", "route", "workspace"}),
		bandwidth: prom.NewCounterVec(prom.CounterOpts{Name: "kong_bandwidth_bytes",
			Help: "Total bandwidth (ingress/egress) throughput in bytes"},
			[]string{"service", "route", "direction", "workspace", "consumer"}),
	}
	m.Registry.MustRegister(m.requests, m.kongLatency, m.upstreamLatency, m.requestLatency, m.bandwidth)
	return m
}

// UpstreamHealthEnabled reports whether some instance asked for
// kong_upstream_target_health; once true it stays true, as in Kong, where
// turning the flag off takes a restart.
func (m *Metrics) UpstreamHealthEnabled() bool { return m.upstreamHealth.Load() }

// StateKey is the key of the [Metrics] in a [plugin.StateRegistry].
const StateKey = "prometheus:metrics"

// MetricsFrom returns the metrics kept in a state registry, creating them on
// first use. The runtime passes the registry its generations share, so the
// plugin and the status listener see the same series across swaps.
func MetricsFrom(state *plugin.StateRegistry) *Metrics {
	v, _ := state.LoadOrCreate(StateKey, func() (any, error) { return NewMetrics(), nil })
	return v.(*Metrics)
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
	p := &Prometheus{cfg: cfg, metrics: MetricsFrom(env.State())}
	if cfg.UpstreamHealthMetrics {
		p.metrics.upstreamHealth.Store(true)
	}
	return p, nil
}

// ms converts a duration to Kong's unit, milliseconds.
func ms(d int64) float64 { return float64(d) / 1e6 }

// Log implements [plugin.LogHandler].
func (p *Prometheus) Log(c *plugin.Ctx) {
	if c.ServiceID == "" {
		// Kong records nothing for a request that matched no service.
		return
	}
	m := p.metrics
	service, route := c.ServiceName, c.RouteName
	consumer := ""
	if p.cfg.PerConsumer && c.Consumer != nil {
		consumer = c.Consumer.Username
		if consumer == "" {
			consumer = c.Consumer.CustomID
		}
	}
	// The upstream produced the response only when its head arrived and no
	// plugin replaced it.
	fromService := !c.Response.Exit && c.Log.UpstreamLatency > 0
	if p.cfg.BandwidthMetrics {
		if n := c.Log.RequestSize; n > 0 {
			m.bandwidth.WithLabelValues(service, route, "ingress", Workspace, consumer).Add(float64(n))
		}
		if n := c.Log.ResponseSize; n > 0 {
			m.bandwidth.WithLabelValues(service, route, "egress", Workspace, consumer).Add(float64(n))
		}
	}
	if p.cfg.StatusCodeMetrics && c.Log.Status > 0 {
		source := "kong"
		if fromService {
			source = "service"
		}
		m.requests.WithLabelValues(service, route, labels.StatusCode(c.Log.Status), source, Workspace, consumer).Inc()
	}
	if p.cfg.LatencyMetrics {
		m.requestLatency.WithLabelValues(service, route, Workspace).Observe(ms(int64(c.Log.RequestLatency)))
		if fromService {
			m.upstreamLatency.WithLabelValues(service, route, Workspace).Observe(ms(int64(c.Log.UpstreamLatency)))
		}
		m.kongLatency.WithLabelValues(service, route, Workspace).Observe(ms(int64(c.Log.GatewayLatency)))
	}
}
