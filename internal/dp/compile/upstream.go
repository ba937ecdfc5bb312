package compile

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/gantry-gw/gantry/internal/dp/balancer"
	"github.com/gantry-gw/gantry/internal/dp/health"
	"github.com/gantry-gw/gantry/internal/dp/proxy"
)

// Upstream is a compiled Kong upstream: its balancer over the targets, whose
// health views come from the long-lived health registry. It implements
// proxy.Balancer so a service whose host names the upstream is balanced
// through it. Immutable apart from the balancer's selection state.
type Upstream struct {
	// ID and Name identify the upstream entity.
	ID, Name string
	// HostHeader is the upstream's host_header: when set it is the Host
	// sent to targets instead of the service host.
	HostHeader string
	// Balancer picks targets; it reads health from the registry on every
	// pick.
	Balancer *balancer.Balancer

	// byAddr indexes the balancer's targets and their health state by
	// "host:port", for the proxy's per-attempt reports.
	byAddr map[string]targetRef
}

// targetRef pairs a balancer target with its health state (nil when the
// registry does not track it).
type targetRef struct {
	t *balancer.Target
	h *health.Target
}

var _ proxy.AttemptBalancer = (*Upstream)(nil)

// PickAttempt implements proxy.AttemptBalancer: every try of a request
// picks on the request's own balancer.Attempt, so a retry goes to a target
// not tried yet whenever a healthy one is left, whatever other requests
// picked in between. The picked target is kept in a.Peer for
// ReportAttempt. With hash_on cookie and a client without the cookie, the
// minted cookie goes to a.SetCookie for the proxy to send. Consistent hashing reads the client address, headers, path
// and query of r on the first try; hashing on a consumer or a regex capture
// needs the plugin and router context the proxy does not pass yet, so
// those inputs hash as absent (the fallback, then the empty key).
func (u *Upstream) PickAttempt(r *http.Request, a *proxy.Attempt) (string, error) {
	sel := &a.Select
	if sel.Tries() == 0 && u.Balancer.Algorithm() == balancer.AlgorithmConsistentHashing {
		in := balancer.HashInput{Header: r.Header, Path: r.URL.Path, RawQuery: r.URL.RawQuery, ClientIP: clientIP(r.RemoteAddr)}
		sel.Key, a.SetCookie = u.Balancer.HashKey(&in)
	}
	t, err := u.Balancer.Pick(sel)
	if err != nil {
		a.Peer = nil
		return "", fmt.Errorf("upstream %s: %w: %w", u.Name, proxy.ErrNoPeer, err)
	}
	a.Peer = t
	return t.Address, nil
}

// ReportAttempt implements proxy.AttemptBalancer: it ends the pick
// (least-connections accounting) and feeds passive health checks with the
// response status, or the connection failure or timeout.
func (u *Upstream) ReportAttempt(a *proxy.Attempt, status int, err error) {
	t, ok := a.Peer.(*balancer.Target)
	if !ok || t == nil {
		return
	}
	a.Peer = nil
	u.Balancer.Done(t)
	ref, ok := u.byAddr[t.Address]
	if !ok || ref.h == nil {
		return
	}
	switch {
	case err != nil && isTimeout(err):
		ref.h.ReportTimeout()
	case err != nil:
		ref.h.ReportTCPFailure()
	case status != 0:
		ref.h.ReportStatus(status)
	}
}

func (u *Upstream) hashKey(r *http.Request) string {
	in := balancer.HashInput{Header: r.Header, Path: r.URL.Path, RawQuery: r.URL.RawQuery, ClientIP: clientIP(r.RemoteAddr)}
	key, _ := u.Balancer.HashKey(&in)
	return key
}

// Pick implements proxy.Balancer for callers without per-request state.
// Attempt n replays n earlier picks on a local balancer.Attempt to reach
// the "avoid targets already tried" choice; the replayed picks are
// released at once. The proxy uses PickAttempt instead.
func (u *Upstream) Pick(r *http.Request, attempt int) (string, error) {
	var a balancer.Attempt
	if u.Balancer.Algorithm() == balancer.AlgorithmConsistentHashing {
		a.Key = u.hashKey(r)
	}
	for i := 0; ; i++ {
		t, err := u.Balancer.Pick(&a)
		if err != nil {
			return "", fmt.Errorf("upstream %s: %w: %w", u.Name, proxy.ErrNoPeer, err)
		}
		if i >= attempt {
			return t.Address, nil
		}
		u.Balancer.Done(t)
	}
}

// Report implements proxy.Balancer: it ends the pick (least-connections
// accounting) and feeds passive health checks with connection failures and
// timeouts. It gets no status; ReportAttempt does.
func (u *Upstream) Report(addr string, err error) {
	ref, ok := u.byAddr[addr]
	if !ok {
		return
	}
	u.Balancer.Done(ref.t)
	if err == nil || ref.h == nil {
		return
	}
	if isTimeout(err) {
		ref.h.ReportTimeout()
	} else {
		ref.h.ReportTCPFailure()
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// clientIP returns the host of a "host:port" remote address without
// allocating.
func clientIP(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// upstreamSpec is an upstream parsed and validated in the first pass, before
// the health registry is touched.
type upstreamSpec struct {
	id, name, hostHeader string
	opts                 balancer.Options
	health               health.Upstream
}

// parseUpstream checks one upstream and its targets and prepares its
// balancer and health options; fe holds the problems decoding found.
func parseUpstream(u *upstreamEntity, fe fieldErrors, targets []*targetEntity) (*upstreamSpec, fieldErrors) {
	s := &upstreamSpec{id: u.ID, name: u.Name, hostHeader: u.HostHeader}
	if s.name == "" {
		fe.add(at("name"), "required field missing")
	}
	hash := balancer.HashOptions{
		On:                 hashOn(u.HashOn),
		Fallback:           hashOn(u.HashFallback),
		OnHeader:           u.HashOnHeader,
		FallbackHeader:     u.HashFallbackHeader,
		OnCookie:           u.HashOnCookie,
		OnCookiePath:       u.HashOnCookiePath,
		OnQueryArg:         u.HashOnQueryArg,
		FallbackQueryArg:   u.HashFallbackQueryArg,
		OnURICapture:       u.HashOnURICapture,
		FallbackURICapture: u.HashFallbackURICapture,
	}
	algo := u.Algorithm.V
	if !u.Algorithm.Set && hash.On != "" {
		algo = string(balancer.AlgorithmConsistentHashing)
	}
	checks, cerrs := parseHealthchecks(&u.Healthchecks)
	fe = append(fe, cerrs...)
	s.opts = balancer.Options{Name: s.name, Algorithm: balancer.Algorithm(algo), Slots: u.Slots, Hash: hash, Threshold: checks.Threshold}
	s.health = health.Upstream{ID: s.id, Name: s.name, HostHeader: s.hostHeader, Checks: checks}
	for _, t := range targets {
		addr, err := balancer.NormalizeTarget(t.Target)
		if err != nil {
			fe.add(at("targets"), fmt.Sprintf("target %q: %v", t.Target, err))
			continue
		}
		s.opts.Targets = append(s.opts.Targets, balancer.TargetConfig{Address: addr, Weight: t.Weight})
		s.health.Targets = append(s.health.Targets, health.TargetSpec{Address: addr, Weight: t.Weight})
	}
	if len(fe) > 0 {
		return nil, fe
	}
	// Build once without health to validate; the real balancer is built
	// after the registry update.
	if _, err := balancer.New(s.opts); err != nil {
		return nil, fieldErrors{{nil, err.Error()}}
	}
	return s, nil
}

func hashOn(s string) balancer.HashOn {
	if s == "none" {
		return ""
	}
	return balancer.HashOn(s)
}

// build makes the Upstream once the registry knows the upstream.
func (s *upstreamSpec) build(reg *health.Registry) (*Upstream, error) {
	opts := s.opts
	opts.Targets = append([]balancer.TargetConfig(nil), s.opts.Targets...)
	hs := make([]*health.Target, len(opts.Targets))
	for i := range opts.Targets {
		hs[i] = reg.Target(s.id, opts.Targets[i].Address)
		if hs[i] != nil {
			// A nil *health.Target in the interface would not be a nil
			// interface; leave Health unset instead.
			opts.Targets[i].Health = hs[i]
		}
	}
	b, err := balancer.New(opts)
	if err != nil {
		return nil, err
	}
	u := &Upstream{ID: s.id, Name: s.name, HostHeader: s.hostHeader, Balancer: b, byAddr: make(map[string]targetRef, len(opts.Targets))}
	ts := b.Targets()
	for i := range ts {
		var h *health.Target
		for j := range opts.Targets {
			if opts.Targets[j].Address == ts[i].Address {
				h = hs[j]
			}
		}
		u.byAddr[ts[i].Address] = targetRef{t: &ts[i], h: h}
	}
	return u, nil
}

// parseHealthchecks converts an upstream's healthchecks and checks what the
// health registry would refuse, so that a bad upstream is reported per
// entity before any shared state changes.
func parseHealthchecks(h *healthchecks) (health.Config, fieldErrors) {
	var fe fieldErrors
	a, p := &h.Active, &h.Passive
	if h.Threshold < 0 || h.Threshold > 100 {
		fe.add(at("healthchecks", "threshold"), "value should be between 0 and 100")
	}
	switch a.Type {
	case "", "http", "https", "tcp", "grpc", "grpcs":
	default:
		fe.add(at("healthchecks", "active", "type"), fmt.Sprintf("unknown type %q", a.Type))
	}
	if a.HTTPPath != "" && a.HTTPPath[0] != '/' {
		fe.add(at("healthchecks", "active", "http_path"), "should start with: /")
	}
	checkStatuses(&fe, at("healthchecks", "active", "healthy", "http_statuses"), a.Healthy.HTTPStatuses)
	checkStatuses(&fe, at("healthchecks", "active", "unhealthy", "http_statuses"), a.Unhealthy.HTTPStatuses)
	checkStatuses(&fe, at("healthchecks", "passive", "healthy", "http_statuses"), p.Healthy.HTTPStatuses)
	checkStatuses(&fe, at("healthchecks", "passive", "unhealthy", "http_statuses"), p.Unhealthy.HTTPStatuses)
	for _, n := range []int{a.Concurrency, a.Healthy.Successes, a.Unhealthy.HTTPFailures, a.Unhealthy.TCPFailures,
		a.Unhealthy.Timeouts, p.Healthy.Successes, p.Unhealthy.HTTPFailures, p.Unhealthy.TCPFailures, p.Unhealthy.Timeouts} {
		if n < 0 {
			fe.add(at("healthchecks"), "counters and concurrency must not be negative")
			break
		}
	}
	if a.Timeout < 0 || a.Healthy.Interval < 0 || a.Unhealthy.Interval < 0 {
		fe.add(at("healthchecks", "active"), "timeout and intervals must not be negative")
	}
	c := health.Config{
		Active: health.ActiveConfig{
			Type:                   a.Type,
			HTTPPath:               a.HTTPPath,
			Timeout:                health.Seconds(a.Timeout),
			Concurrency:            a.Concurrency,
			HTTPSVerifyCertificate: a.HTTPSVerifyCertificate,
			HTTPSSNI:               a.HTTPSSNI,
			Headers:                a.Headers,
			Healthy: health.ActiveHealthy{Interval: health.Seconds(a.Healthy.Interval),
				Successes: a.Healthy.Successes, HTTPStatuses: a.Healthy.HTTPStatuses},
			Unhealthy: health.ActiveUnhealthy{Interval: health.Seconds(a.Unhealthy.Interval),
				HTTPFailures: a.Unhealthy.HTTPFailures, TCPFailures: a.Unhealthy.TCPFailures,
				Timeouts: a.Unhealthy.Timeouts, HTTPStatuses: a.Unhealthy.HTTPStatuses},
		},
		Passive: health.PassiveConfig{
			Type:    p.Type,
			Healthy: health.PassiveHealthy{Successes: p.Healthy.Successes, HTTPStatuses: p.Healthy.HTTPStatuses},
			Unhealthy: health.PassiveUnhealthy{HTTPFailures: p.Unhealthy.HTTPFailures, TCPFailures: p.Unhealthy.TCPFailures,
				Timeouts: p.Unhealthy.Timeouts, HTTPStatuses: p.Unhealthy.HTTPStatuses},
		},
		Threshold: h.Threshold,
	}
	return c, fe
}

// checkStatuses records the first code of a status list outside the range
// the health checker accepts.
func checkStatuses(fe *fieldErrors, path []string, codes []int) {
	for _, c := range codes {
		if c < 100 || c > 999 {
			fe.add(path, fmt.Sprintf("invalid HTTP status %d", c))
			return
		}
	}
}

// hostHeaderFor returns the Host the proxy sends for a service balanced
// through u: the upstream's host_header when set, else the service host.
func hostHeaderFor(u *Upstream, serviceHost string) string {
	if u != nil && u.HostHeader != "" {
		if h, _, err := net.SplitHostPort(u.HostHeader); err == nil {
			return h
		}
		return u.HostHeader
	}
	return serviceHost
}
