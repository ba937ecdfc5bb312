package prometheus

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gantry-gw/gantry/internal/dp/health"
)

// RuntimeStatus is what the runtime reports about its configuration and its
// control plane link at scrape time.
type RuntimeStatus struct {
	// ConfigHash is the hash of the configuration served (32 hex digits);
	// empty or all zeros when none is loaded.
	ConfigHash string
	// Revision is the revision number served; 0 when unknown.
	Revision int64
	// Connected says whether the link to the control plane is up.
	Connected bool
	// LastApplied is when a configuration was last applied; zero when
	// none was.
	LastApplied time.Time
	// CertExpiry is when the client certificate in use expires (it changes
	// when the instance renews it); zero falls back to
	// RuntimeOptions.ClusterCertExpiry.
	CertExpiry time.Time
}

// RuntimeOptions configure [NewHandler].
type RuntimeOptions struct {
	// Metrics are the per-request series; required.
	Metrics *Metrics
	// NodeID, Hostname and Version describe the instance; NodeID is
	// required.
	NodeID, Hostname, Version string
	// Status is read at every scrape; required. It must be cheap and safe
	// for concurrent use.
	Status func() RuntimeStatus
	// Upstreams, when set, is read at every scrape for
	// kong_upstream_target_health, which is only served once some
	// prometheus instance enabled upstream_health_metrics.
	Upstreams func() []health.UpstreamStatus
	// ClusterCertExpiry is when the instance's client certificate expires;
	// zero leaves kong_data_plane_cluster_cert_expiry_timestamp out.
	ClusterCertExpiry time.Time
	// Collectors are served too: other parts of the runtime with series of
	// their own (the analytics outbox's gantry_analytics_*). Their names
	// must not clash with the series above.
	Collectors []prom.Collector
}

// NewHandler returns the runtime's /metrics handler: the per-request
// series of opts.Metrics and these runtime series, in the Prometheus text
// format (or another format the scraper negotiates):
//
//	kong_node_info{node_id,version}                          1
//	kong_datastore_reachable                                 1 (a runtime has no database, as a DB-less Kong)
//	kong_data_plane_config_hash{node_id,hostname}            the configuration hash read as a hex number, 0 when none
//	kong_data_plane_cluster_cert_expiry_timestamp            Unix seconds, when known
//	kong_upstream_target_health{upstream,target,address,state,subsystem}
//	                                                         1 for the target's state, 0 for the other states
//	gantry_control_plane_connected                           1 when the link is up, else 0
//	gantry_data_plane_config_revision                        the revision served, 0 when unknown
//	gantry_data_plane_config_applied_timestamp_seconds       Unix seconds of the last apply, when one happened
//
// Kong serves the config hash series on its control plane, labelled with
// the data plane's node_id, hostname and ip; a runtime serves its own,
// without ip, which only the control plane sees. The gantry_* series have
// no Kong equivalent.
func NewHandler(opts RuntimeOptions) (http.Handler, error) {
	var missing []string
	if opts.Metrics == nil {
		missing = append(missing, "Metrics")
	}
	if opts.NodeID == "" {
		missing = append(missing, "NodeID")
	}
	if opts.Status == nil {
		missing = append(missing, "Status")
	}
	if len(missing) > 0 {
		return nil, errors.New("prometheus: missing runtime options: " + strings.Join(missing, ", "))
	}
	reg := prom.NewRegistry()
	if err := reg.Register(&runtimeCollector{opts: opts}); err != nil {
		return nil, err
	}
	for _, c := range opts.Collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("prometheus: runtime collector: %w", err)
		}
	}
	return promhttp.HandlerFor(prom.Gatherers{opts.Metrics.Registry, reg}, promhttp.HandlerOpts{}), nil
}

var (
	descNodeInfo  = prom.NewDesc("kong_node_info", "Kong Node metadata information", []string{"node_id", "version"}, nil)
	descDatastore = prom.NewDesc("kong_datastore_reachable",
		"Datastore reachable from Kong, 0 is unreachable", nil, nil)
	descConfigHash = prom.NewDesc("kong_data_plane_config_hash",
		"Config hash numeric value of the data plane", []string{"node_id", "hostname"}, nil)
	descCertExpiry = prom.NewDesc("kong_data_plane_cluster_cert_expiry_timestamp",
		"Unix timestamp of Data Plane's cluster_cert expiry time", nil, nil)
	descTargetHealth = prom.NewDesc("kong_upstream_target_health",
		"Health status of targets of upstream. States = healthchecks_off|healthy|unhealthy|dns_error, value is 1 when state is populated.",
		[]string{"upstream", "target", "address", "state", "subsystem"}, nil)
	descConnected = prom.NewDesc("gantry_control_plane_connected",
		"Whether the runtime's link to its control plane is up, 0 is down", nil, nil)
	descRevision = prom.NewDesc("gantry_data_plane_config_revision",
		"Revision number of the configuration the runtime serves, 0 when unknown", nil, nil)
	descApplied = prom.NewDesc("gantry_data_plane_config_applied_timestamp_seconds",
		"Unix timestamp of the last configuration the runtime applied", nil, nil)
)

// targetStates are the states kong_upstream_target_health reports for each
// target, in Kong's order; dns_error never applies (targets are dialled by
// name) but is reported as 0 as Kong does.
var targetStates = []string{"healthchecks_off", "healthy", "unhealthy", "dns_error"}

// runtimeCollector reads the runtime's state at scrape time.
type runtimeCollector struct{ opts RuntimeOptions }

func (rc *runtimeCollector) Describe(ch chan<- *prom.Desc) {
	for _, d := range []*prom.Desc{descNodeInfo, descDatastore, descConfigHash, descCertExpiry, descTargetHealth,
		descConnected, descRevision, descApplied} {
		ch <- d
	}
}

func (rc *runtimeCollector) Collect(ch chan<- prom.Metric) {
	o := rc.opts
	st := o.Status()
	ch <- prom.MustNewConstMetric(descNodeInfo, prom.GaugeValue, 1, o.NodeID, o.Version)
	ch <- prom.MustNewConstMetric(descDatastore, prom.GaugeValue, 1)
	ch <- prom.MustNewConstMetric(descConfigHash, prom.GaugeValue, HashValue(st.ConfigHash), o.NodeID, o.Hostname)
	if expiry := cmp.Or(st.CertExpiry, o.ClusterCertExpiry); !expiry.IsZero() {
		ch <- prom.MustNewConstMetric(descCertExpiry, prom.GaugeValue, float64(expiry.Unix()))
	}
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	ch <- prom.MustNewConstMetric(descConnected, prom.GaugeValue, connected)
	ch <- prom.MustNewConstMetric(descRevision, prom.GaugeValue, float64(st.Revision))
	if !st.LastApplied.IsZero() {
		ch <- prom.MustNewConstMetric(descApplied, prom.GaugeValue, float64(st.LastApplied.UnixNano())/1e9)
	}
	if o.Upstreams != nil && o.Metrics.UpstreamHealthEnabled() {
		for _, u := range o.Upstreams() {
			for _, t := range u.Targets {
				state := strings.ToLower(t.Health)
				for _, s := range targetStates {
					v := 0.0
					if s == state {
						v = 1
					}
					// A runtime dials targets by name, so the address is the
					// target itself.
					ch <- prom.MustNewConstMetric(descTargetHealth, prom.GaugeValue, v, u.Name, t.Address, t.Address, s, "http")
				}
			}
		}
	}
}

// HashValue reads a configuration hash as Kong's exporter does: the hex
// digits as one number (a float64, so only its leading digits survive).
// An empty or malformed hash is 0.
func HashValue(hash string) float64 {
	n, ok := new(big.Int).SetString(hash, 16)
	if !ok {
		return 0
	}
	f, _ := new(big.Float).SetInt(n).Float64()
	return f
}
