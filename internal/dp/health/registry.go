// Package health keeps the health state of upstream targets and runs Kong's
// active and passive health checks.
//
// The Registry outlives compiled configurations: state is keyed by
// (upstream id, target address), and Update, called with each new
// configuration, keeps the state of targets that stay, creates state for
// new targets and drops removed ones. Active checkers run one goroutine per
// probing side (healthy / unhealthy) per upstream, restarted only when that
// upstream's checks or targets change. Passive checks are the proxy's
// reports on a *Target.
package health

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"
)

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("health: registry closed")

// Change describes one health transition of a target.
type Change struct {
	// UpstreamID and Upstream identify the upstream (id and name).
	UpstreamID, Upstream string
	// Target is the target's "host:port".
	Target string
	// Healthy is the new state.
	Healthy bool
	// Reason says what caused it, e.g. "active http_failures",
	// "passive timeouts", "manual".
	Reason string
}

// Options configures a Registry.
type Options struct {
	// Logger receives health transitions (required).
	Logger *slog.Logger
	// OnChange, if set, is called after every transition, outside the
	// registry's locks, on the goroutine that caused it (a probe or a
	// proxied request): it must be fast and must not block.
	OnChange func(Change)
	// RootCAs verifies https probes when https_verify_certificate is on;
	// nil means the system roots.
	RootCAs *x509.CertPool
}

// TargetStatus is a snapshot of one target's health.
type TargetStatus struct {
	Address string `json:"target"`
	Weight  int    `json:"weight"`
	// Health is Healthy, Unhealthy or HealthChecksOff.
	Health   string   `json:"health"`
	Counters Counters `json:"counters"`
	// Since is when the target last changed state (or was first seen).
	Since time.Time `json:"since"`
}

// UpstreamStatus is a snapshot of one upstream's health.
type UpstreamStatus struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Health is HealthChecksOff when checks are off; otherwise Healthy when
	// some weight is healthy and the healthy share of the weight is at least
	// the upstream's threshold, else Unhealthy.
	Health  string         `json:"health"`
	Targets []TargetStatus `json:"targets"`
}

// Registry holds target health state for every upstream and runs active
// checks. It is safe for concurrent use.
type Registry struct {
	// Immutable after New.
	logger   *slog.Logger
	onChange func(Change)
	rootCAs  *x509.CertPool
	// ctx is the parent of every checker; cancel stops them all.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts running checker goroutines.
	wg sync.WaitGroup

	// mu guards upstreams and closed.
	mu        sync.Mutex
	upstreams map[string]*upstreamState
	closed    bool
}

// upstreamState is the registry's entry for one upstream.
type upstreamState struct {
	spec    Upstream
	cfg     *checks
	targets map[string]*Target
	// order lists target addresses in configuration order.
	order []string
	// stop cancels this upstream's checkers; nil when none run.
	stop context.CancelFunc
}

// New returns a Registry whose checkers stop when ctx is cancelled or Close
// is called.
func New(ctx context.Context, opts Options) (*Registry, error) {
	if ctx == nil {
		return nil, errors.New("health: nil context")
	}
	if opts.Logger == nil {
		return nil, errors.New("health: Options.Logger is required")
	}
	cctx, cancel := context.WithCancel(ctx)
	return &Registry{
		logger:    opts.Logger.With("component", "health"),
		onChange:  opts.OnChange,
		rootCAs:   opts.RootCAs,
		ctx:       cctx,
		cancel:    cancel,
		upstreams: make(map[string]*upstreamState),
	}, nil
}

// Update makes the registry match upstreams, the full set of the new
// configuration. Upstreams and targets that stay keep their state (even if
// their checks changed); new targets start healthy; upstreams and targets
// that are gone are dropped and their checkers stopped. An upstream whose
// spec is unchanged keeps its checkers running undisturbed.
//
// An invalid upstream is reported in the returned error and left as it was
// (or absent if new); the others are applied.
func (r *Registry) Update(upstreams []Upstream) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	var errs []error
	seen := make(map[string]bool, len(upstreams))
	for _, u := range upstreams {
		if seen[u.ID] {
			errs = append(errs, fmt.Errorf("upstream %q (%s): duplicate id", u.Name, u.ID))
			continue
		}
		seen[u.ID] = true
		if err := r.apply(u); err != nil {
			errs = append(errs, fmt.Errorf("upstream %q (%s): %w", u.Name, u.ID, err))
		}
	}
	for id, st := range r.upstreams {
		if !seen[id] {
			if st.stop != nil {
				st.stop()
			}
			delete(r.upstreams, id)
		}
	}
	return errors.Join(errs...)
}

// apply installs one upstream; r.mu is held.
func (r *Registry) apply(u Upstream) error {
	old := r.upstreams[u.ID]
	if old != nil && sameUpstream(old.spec, u) {
		return nil
	}
	c, err := compile(u)
	if err != nil {
		return err
	}
	st := &upstreamState{
		spec:    cloneUpstream(u),
		cfg:     c,
		targets: make(map[string]*Target, len(u.Targets)),
		order:   make([]string, 0, len(u.Targets)),
	}
	for _, ts := range u.Targets {
		host, _, err := splitTarget(ts.Address)
		if err != nil {
			return err
		}
		if _, dup := st.targets[ts.Address]; dup {
			return fmt.Errorf("duplicate target %q", ts.Address)
		}
		var t *Target
		if old != nil {
			t = old.targets[ts.Address]
		}
		if t == nil {
			t = &Target{reg: r, upstreamID: u.ID, address: ts.Address, host: host, since: time.Now()}
			t.healthy.Store(true)
		}
		st.targets[ts.Address] = t
		st.order = append(st.order, ts.Address)
	}
	// Only now that the upstream is known valid do we touch shared targets.
	for _, ts := range u.Targets {
		t := st.targets[ts.Address]
		t.weight.Store(int64(ts.Weight))
		t.cfg.Store(c)
		if !c.enabled {
			t.reset("health checks off")
		}
	}
	if c.unsupportedProbing != "" && (c.healthyInterval > 0 || c.unhealthyInterval > 0) {
		r.logger.Warn("active health checks of this type are not supported; not probing",
			"upstream", u.Name, "upstream_id", u.ID, "type", c.unsupportedProbing)
	}
	if old != nil && old.stop != nil {
		old.stop()
	}
	if c.probing {
		st.stop = r.startCheckers(st)
	}
	r.upstreams[u.ID] = st
	return nil
}

// Target returns the health state of a target, or nil when the registry
// does not know it. A nil *Target is valid and always healthy, so it can be
// handed to a balancer directly.
func (r *Registry) Target(upstreamID, address string) *Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.upstreams[upstreamID]; st != nil {
		return st.targets[address]
	}
	return nil
}

// Status returns the health of one upstream, for `/upstreams/{u}/health`.
func (r *Registry) Status(upstreamID string) (UpstreamStatus, bool) {
	r.mu.Lock()
	st := r.upstreams[upstreamID]
	r.mu.Unlock()
	if st == nil {
		return UpstreamStatus{}, false
	}
	return st.status(), true
}

// StatusAll returns the health of every upstream, ordered by name then id.
func (r *Registry) StatusAll() []UpstreamStatus {
	r.mu.Lock()
	sts := slices.Collect(maps.Values(r.upstreams))
	r.mu.Unlock()
	out := make([]UpstreamStatus, 0, len(sts))
	for _, st := range sts {
		out = append(out, st.status())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (st *upstreamState) status() UpstreamStatus {
	us := UpstreamStatus{ID: st.spec.ID, Name: st.spec.Name, Targets: make([]TargetStatus, 0, len(st.order))}
	var total, healthy int64
	for _, addr := range st.order {
		ts := st.targets[addr].Status()
		us.Targets = append(us.Targets, ts)
		total += int64(ts.Weight)
		if ts.Health != Unhealthy {
			healthy += int64(ts.Weight)
		}
	}
	switch {
	case !st.cfg.enabled:
		us.Health = HealthChecksOff
	case healthy > 0 && float64(healthy)*100 >= st.cfg.threshold*float64(total):
		us.Health = Healthy
	default:
		us.Health = Unhealthy
	}
	return us
}

// Close stops every checker and waits for them to return. It is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.closed = true
	r.cancel()
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// notify logs a transition and calls OnChange.
func (r *Registry) notify(t *Target, healthy bool, reason string) {
	name := t.upstreamID
	if c := t.cfg.Load(); c != nil && c.upstreamName != "" {
		name = c.upstreamName
	}
	level := slog.LevelWarn
	if healthy {
		level = slog.LevelInfo
	}
	state := Unhealthy
	if healthy {
		state = Healthy
	}
	r.logger.Log(r.ctx, level, "target health changed",
		"upstream", name, "upstream_id", t.upstreamID, "target", t.address,
		"health", state, "reason", reason)
	if r.onChange != nil {
		r.onChange(Change{UpstreamID: t.upstreamID, Upstream: name, Target: t.address, Healthy: healthy, Reason: reason})
	}
}

// sameUpstream reports whether two specs would configure identical checks
// and targets.
func sameUpstream(a, b Upstream) bool {
	ca, cb := a.Checks, b.Checks
	aa, ab := ca.Active, cb.Active
	pa, pb := ca.Passive, cb.Passive
	return a.ID == b.ID && a.Name == b.Name && a.HostHeader == b.HostHeader &&
		slices.Equal(a.Targets, b.Targets) &&
		ca.Threshold == cb.Threshold &&
		aa.Type == ab.Type && aa.HTTPPath == ab.HTTPPath && aa.Timeout == ab.Timeout &&
		aa.Concurrency == ab.Concurrency && aa.HTTPSVerifyCertificate == ab.HTTPSVerifyCertificate &&
		aa.HTTPSSNI == ab.HTTPSSNI &&
		maps.EqualFunc(aa.Headers, ab.Headers, slices.Equal) &&
		aa.Healthy.Interval == ab.Healthy.Interval && aa.Healthy.Successes == ab.Healthy.Successes &&
		slices.Equal(aa.Healthy.HTTPStatuses, ab.Healthy.HTTPStatuses) &&
		aa.Unhealthy.Interval == ab.Unhealthy.Interval && aa.Unhealthy.HTTPFailures == ab.Unhealthy.HTTPFailures &&
		aa.Unhealthy.TCPFailures == ab.Unhealthy.TCPFailures && aa.Unhealthy.Timeouts == ab.Unhealthy.Timeouts &&
		slices.Equal(aa.Unhealthy.HTTPStatuses, ab.Unhealthy.HTTPStatuses) &&
		pa.Type == pb.Type && pa.Healthy.Successes == pb.Healthy.Successes &&
		slices.Equal(pa.Healthy.HTTPStatuses, pb.Healthy.HTTPStatuses) &&
		pa.Unhealthy.HTTPFailures == pb.Unhealthy.HTTPFailures && pa.Unhealthy.TCPFailures == pb.Unhealthy.TCPFailures &&
		pa.Unhealthy.Timeouts == pb.Unhealthy.Timeouts &&
		slices.Equal(pa.Unhealthy.HTTPStatuses, pb.Unhealthy.HTTPStatuses)
}

// cloneUpstream copies the slices and maps of u so that the caller may
// reuse its configuration objects.
func cloneUpstream(u Upstream) Upstream {
	u.Targets = slices.Clone(u.Targets)
	a, p := &u.Checks.Active, &u.Checks.Passive
	if a.Headers != nil {
		h := make(map[string][]string, len(a.Headers))
		for k, v := range a.Headers {
			h[k] = slices.Clone(v)
		}
		a.Headers = h
	}
	a.Healthy.HTTPStatuses = slices.Clone(a.Healthy.HTTPStatuses)
	a.Unhealthy.HTTPStatuses = slices.Clone(a.Unhealthy.HTTPStatuses)
	p.Healthy.HTTPStatuses = slices.Clone(p.Healthy.HTTPStatuses)
	p.Unhealthy.HTTPStatuses = slices.Clone(p.Unhealthy.HTTPStatuses)
	return u
}
