package health

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Health values reported in status, spelled as Kong's
// `/upstreams/{upstream}/health` endpoint spells them.
const (
	Healthy         = "HEALTHY"
	Unhealthy       = "UNHEALTHY"
	HealthChecksOff = "HEALTHCHECKS_OFF"
)

// outcome is one observation of a target, from a probe or from traffic.
type outcome int

const (
	outcomeNone outcome = iota // Not counted (status in neither list, or shutdown).
	outcomeSuccess
	outcomeHTTPFailure
	outcomeTCPFailure
	outcomeTimeout
)

func (o outcome) String() string {
	switch o {
	case outcomeSuccess:
		return "successes"
	case outcomeHTTPFailure:
		return "http_failures"
	case outcomeTCPFailure:
		return "tcp_failures"
	case outcomeTimeout:
		return "timeouts"
	}
	return "none"
}

// Counters are a target's consecutive-outcome counters. A success clears the
// failure counters and any failure clears the success counter, as in Kong;
// counters only count towards a change of state and reset when it happens.
type Counters struct {
	Successes    int `json:"successes"`
	HTTPFailures int `json:"http_failures"`
	TCPFailures  int `json:"tcp_failures"`
	Timeouts     int `json:"timeouts"`
}

// Target is the health state of one target of one upstream. It lives in the
// Registry, keyed by (upstream id, address), and is shared by every compiled
// configuration that contains the target, so state survives swaps. The proxy
// reports passive outcomes on it; the balancer reads Healthy. All methods are
// safe for concurrent use, and a nil *Target is always healthy and ignores
// reports.
type Target struct {
	// Immutable after creation.
	reg        *Registry
	upstreamID string
	address    string
	host       string

	// cfg is the upstream's current compiled checks, replaced on Update.
	cfg atomic.Pointer[checks]
	// weight is the target's current weight; 0 is never probed.
	weight atomic.Int64
	// healthy is the state read on every pick.
	healthy atomic.Bool

	// mu guards counters and since, and serialises state transitions.
	mu       sync.Mutex
	counters Counters
	since    time.Time
}

// Address returns the target's "host:port".
func (t *Target) Address() string { return t.address }

// Healthy reports whether the target may take traffic: true unless health
// checks have marked it unhealthy. It is one atomic load.
func (t *Target) Healthy() bool { return t == nil || t.healthy.Load() }

// ReportStatus records the HTTP status of a proxied response (passive
// check). Statuses in neither passive list are ignored.
func (t *Target) ReportStatus(code int) {
	if t == nil {
		return
	}
	c := t.cfg.Load()
	if c == nil || !c.enabled {
		return
	}
	t.record(c, &c.passive, classify(&c.passive, code), "passive")
}

// ReportTCPFailure records a failure to connect to or talk to the target
// while proxying (passive check).
func (t *Target) ReportTCPFailure() { t.reportPassive(outcomeTCPFailure) }

// ReportTimeout records a proxied request that timed out (passive check).
func (t *Target) ReportTimeout() { t.reportPassive(outcomeTimeout) }

func (t *Target) reportPassive(o outcome) {
	if t == nil {
		return
	}
	c := t.cfg.Load()
	if c == nil || !c.enabled {
		return
	}
	t.record(c, &c.passive, o, "passive")
}

// ErrChecksOff is returned by SetHealthy when the target's upstream has no
// health checks configured; Kong refuses the same request in that case.
var ErrChecksOff = errors.New("health: health checks are off for this upstream")

// SetHealthy forces the target's state and clears its counters, like Kong's
// `POST /upstreams/{u}/targets/{t}/healthy|unhealthy`. Checks then go on
// from the forced state. It fails with ErrChecksOff when the upstream has no
// health checks, since every target is then healthy by definition.
func (t *Target) SetHealthy(healthy bool) error {
	if t == nil {
		return ErrChecksOff
	}
	if c := t.cfg.Load(); c == nil || !c.enabled {
		return ErrChecksOff
	}
	t.mu.Lock()
	t.counters = Counters{}
	changed := t.healthy.Load() != healthy
	if changed {
		t.healthy.Store(healthy)
		t.since = time.Now()
	}
	t.mu.Unlock()
	if changed {
		t.reg.notify(t, healthy, "manual")
	}
	return nil
}

// Status returns a snapshot of the target's state.
func (t *Target) Status() TargetStatus {
	c := t.cfg.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	st := TargetStatus{
		Address:  t.address,
		Weight:   int(t.weight.Load()),
		Health:   Healthy,
		Counters: t.counters,
		Since:    t.since,
	}
	switch {
	case c == nil || !c.enabled:
		st.Health = HealthChecksOff
	case !t.healthy.Load():
		st.Health = Unhealthy
	}
	return st
}

// classify maps an HTTP status to an outcome with one side's lists.
func classify(th *thresholds, code int) outcome {
	switch {
	case th.healthy.has(code):
		return outcomeSuccess
	case th.unhealthy.has(code):
		return outcomeHTTPFailure
	}
	return outcomeNone
}

// record applies one outcome with the given side's thresholds and performs
// the state transition it triggers, if any. Like Kong's checker, successes
// are only counted while unhealthy and failures only while healthy; a
// threshold of 0 never triggers.
func (t *Target) record(c *checks, th *thresholds, o outcome, side string) {
	if o == outcomeNone {
		return
	}
	t.mu.Lock()
	healthy := t.healthy.Load()
	n, limit := 0, 0
	switch o {
	case outcomeSuccess:
		t.counters.HTTPFailures, t.counters.TCPFailures, t.counters.Timeouts = 0, 0, 0
		if !healthy {
			t.counters.Successes++
			n, limit = t.counters.Successes, th.successes
		}
	case outcomeHTTPFailure:
		t.counters.Successes = 0
		if healthy {
			t.counters.HTTPFailures++
			n, limit = t.counters.HTTPFailures, th.httpFailures
		}
	case outcomeTCPFailure:
		t.counters.Successes = 0
		if healthy {
			t.counters.TCPFailures++
			n, limit = t.counters.TCPFailures, th.tcpFailures
		}
	case outcomeTimeout:
		t.counters.Successes = 0
		if healthy {
			t.counters.Timeouts++
			n, limit = t.counters.Timeouts, th.timeouts
		}
	}
	// A report that raced with an Update disabling checks must not flip
	// state: checks off means healthy.
	flip := limit > 0 && n >= limit && t.cfg.Load() == c && c.enabled
	if flip {
		t.healthy.Store(!healthy)
		t.counters = Counters{}
		t.since = time.Now()
	}
	t.mu.Unlock()
	if flip {
		t.reg.notify(t, !healthy, side+" "+o.String())
	}
}

// reset makes the target healthy with clean counters; used when an update
// turns health checks off, as Kong then treats every target as healthy.
func (t *Target) reset(reason string) {
	t.mu.Lock()
	t.counters = Counters{}
	changed := !t.healthy.Load()
	if changed {
		t.healthy.Store(true)
		t.since = time.Now()
	}
	t.mu.Unlock()
	if changed {
		t.reg.notify(t, true, reason)
	}
}
