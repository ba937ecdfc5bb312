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

// parseUpstream reads one upstream entity and its targets.
func parseUpstream(d doc, targets []doc) (*upstreamSpec, []fieldError) {
	var errs fieldErrors
	s := &upstreamSpec{}
	s.id = errs.str(d, "id")
	s.name = errs.str(d, "name")
	s.hostHeader = errs.str(d, "host_header")
	if s.name == "" {
		errs.add("name", "required field missing")
	}
	algo := errs.str(d, "algorithm")
	slots := errs.integer(d, "slots", balancer.DefaultSlots)
	hash := balancer.HashOptions{
		On:                 hashOn(errs.str(d, "hash_on")),
		Fallback:           hashOn(errs.str(d, "hash_fallback")),
		OnHeader:           errs.str(d, "hash_on_header"),
		FallbackHeader:     errs.str(d, "hash_fallback_header"),
		OnCookie:           errs.str(d, "hash_on_cookie"),
		OnCookiePath:       errs.str(d, "hash_on_cookie_path"),
		OnQueryArg:         errs.str(d, "hash_on_query_arg"),
		FallbackQueryArg:   errs.str(d, "hash_fallback_query_arg"),
		OnURICapture:       errs.str(d, "hash_on_uri_capture"),
		FallbackURICapture: errs.str(d, "hash_fallback_uri_capture"),
	}
	if algo == "" && hash.On != "" {
		algo = string(balancer.AlgorithmConsistentHashing)
	}
	checks, cerrs := parseHealthchecks(d)
	errs = append(errs, cerrs...)
	s.opts = balancer.Options{Name: s.name, Algorithm: balancer.Algorithm(algo), Slots: slots, Hash: hash, Threshold: checks.Threshold}
	s.health = health.Upstream{ID: s.id, Name: s.name, HostHeader: s.hostHeader, Checks: checks}
	for _, t := range targets {
		raw := errs.str(t, "target")
		addr, err := balancer.NormalizeTarget(raw)
		if err != nil {
			errs.add("targets", fmt.Sprintf("target %q: %v", raw, err))
			continue
		}
		w := errs.integer(t, "weight", 100)
		s.opts.Targets = append(s.opts.Targets, balancer.TargetConfig{Address: addr, Weight: w})
		s.health.Targets = append(s.health.Targets, health.TargetSpec{Address: addr, Weight: w})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// Build once without health to validate; the real balancer is built
	// after the registry update.
	if _, err := balancer.New(s.opts); err != nil {
		return nil, fieldErrors{{"", err.Error()}}
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

// parseHealthchecks reads upstream.healthchecks over Kong's defaults and
// checks what the health registry would refuse, so that a bad upstream is
// reported per entity before any shared state changes.
func parseHealthchecks(d doc) (health.Config, fieldErrors) {
	var errs fieldErrors
	c := health.DefaultConfig()
	hc, err := d.record("healthchecks")
	if err != nil {
		errs.add("healthchecks", err.Error())
		return c, errs
	}
	if hc == nil {
		return c, nil
	}
	c.Threshold = errs.number(hc, "threshold", 0)
	if c.Threshold < 0 || c.Threshold > 100 {
		errs.add("healthchecks.threshold", "value should be between 0 and 100")
	}
	if a := errs.rec(hc, "active"); a != nil {
		if t := errs.str(a, "type"); t != "" {
			c.Active.Type = t
		}
		switch c.Active.Type {
		case "http", "https", "tcp", "grpc", "grpcs":
		default:
			errs.add("healthchecks.active.type", fmt.Sprintf("unknown type %q", c.Active.Type))
		}
		if p := errs.str(a, "http_path"); p != "" {
			if p[0] != '/' {
				errs.add("healthchecks.active.http_path", "should start with: /")
			}
			c.Active.HTTPPath = p
		}
		c.Active.Timeout = health.Seconds(errs.number(a, "timeout", 1))
		c.Active.Concurrency = errs.integer(a, "concurrency", 10)
		c.Active.HTTPSVerifyCertificate = errs.boolean(a, "https_verify_certificate", true)
		c.Active.HTTPSSNI = errs.str(a, "https_sni")
		if hm, err := a.headerMap("headers"); err != nil {
			errs.add("healthchecks.active.headers", err.Error())
		} else {
			c.Active.Headers = hm
		}
		if h := errs.rec(a, "healthy"); h != nil {
			c.Active.Healthy.Interval = health.Seconds(errs.number(h, "interval", 0))
			c.Active.Healthy.Successes = errs.integer(h, "successes", 0)
			c.Active.Healthy.HTTPStatuses = errs.statuses(h, "http_statuses", c.Active.Healthy.HTTPStatuses)
		}
		if u := errs.rec(a, "unhealthy"); u != nil {
			c.Active.Unhealthy.Interval = health.Seconds(errs.number(u, "interval", 0))
			c.Active.Unhealthy.HTTPFailures = errs.integer(u, "http_failures", 0)
			c.Active.Unhealthy.TCPFailures = errs.integer(u, "tcp_failures", 0)
			c.Active.Unhealthy.Timeouts = errs.integer(u, "timeouts", 0)
			c.Active.Unhealthy.HTTPStatuses = errs.statuses(u, "http_statuses", c.Active.Unhealthy.HTTPStatuses)
		}
	}
	if p := errs.rec(hc, "passive"); p != nil {
		if t := errs.str(p, "type"); t != "" {
			c.Passive.Type = t
		}
		if h := errs.rec(p, "healthy"); h != nil {
			c.Passive.Healthy.Successes = errs.integer(h, "successes", 0)
			c.Passive.Healthy.HTTPStatuses = errs.statuses(h, "http_statuses", c.Passive.Healthy.HTTPStatuses)
		}
		if u := errs.rec(p, "unhealthy"); u != nil {
			c.Passive.Unhealthy.HTTPFailures = errs.integer(u, "http_failures", 0)
			c.Passive.Unhealthy.TCPFailures = errs.integer(u, "tcp_failures", 0)
			c.Passive.Unhealthy.Timeouts = errs.integer(u, "timeouts", 0)
			c.Passive.Unhealthy.HTTPStatuses = errs.statuses(u, "http_statuses", c.Passive.Unhealthy.HTTPStatuses)
		}
	}
	a, p := c.Active, c.Passive
	for _, n := range []int{a.Concurrency, a.Healthy.Successes, a.Unhealthy.HTTPFailures, a.Unhealthy.TCPFailures,
		a.Unhealthy.Timeouts, p.Healthy.Successes, p.Unhealthy.HTTPFailures, p.Unhealthy.TCPFailures, p.Unhealthy.Timeouts} {
		if n < 0 {
			errs.add("healthchecks", "counters and concurrency must not be negative")
			break
		}
	}
	if a.Timeout < 0 || a.Healthy.Interval < 0 || a.Unhealthy.Interval < 0 {
		errs.add("healthchecks.active", "timeout and intervals must not be negative")
	}
	return c, errs
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
