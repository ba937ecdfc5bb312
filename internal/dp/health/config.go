package health

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Config mirrors an upstream's `healthchecks` record in Kong. Fields are
// taken as given: the compiler passes the entity with Kong's defaults
// already filled in (see DefaultConfig). Kong's durations are seconds; the
// compiler converts them with Seconds.
type Config struct {
	Active  ActiveConfig
	Passive PassiveConfig
	// Threshold is the percentage (0..100) of the upstream's weight that must
	// be healthy for the upstream to report HEALTHY.
	Threshold float64
}

// ActiveConfig mirrors `healthchecks.active`.
type ActiveConfig struct {
	// Type is "http", "https" or "tcp" ("" means http). Kong's "grpc" and
	// "grpcs" are accepted but not probed yet: active checks are then off.
	Type string
	// HTTPPath is the probed path ("" means "/").
	HTTPPath string
	// Timeout bounds one probe, connect to status line (0 means 1s).
	Timeout time.Duration
	// Concurrency is how many targets of the upstream are probed at once
	// (0 means 10).
	Concurrency int
	// HTTPSVerifyCertificate checks the target's certificate on https probes.
	HTTPSVerifyCertificate bool
	// HTTPSSNI is the SNI of https probes ("" means the target host).
	HTTPSSNI string
	// Headers are extra request headers of http(s) probes.
	Headers   map[string][]string
	Healthy   ActiveHealthy
	Unhealthy ActiveUnhealthy
}

// ActiveHealthy mirrors `healthchecks.active.healthy`.
type ActiveHealthy struct {
	// Interval between probes of healthy targets; 0 never probes them.
	Interval time.Duration
	// Successes is how many consecutive successes make an unhealthy target
	// healthy; 0 disables the transition.
	Successes int
	// HTTPStatuses count as successes.
	HTTPStatuses []int
}

// ActiveUnhealthy mirrors `healthchecks.active.unhealthy`.
type ActiveUnhealthy struct {
	// Interval between probes of unhealthy targets; 0 never probes them.
	Interval time.Duration
	// HTTPFailures, TCPFailures and Timeouts are how many consecutive
	// failures of each kind make a healthy target unhealthy; 0 disables that
	// counter.
	HTTPFailures, TCPFailures, Timeouts int
	// HTTPStatuses count as HTTP failures.
	HTTPStatuses []int
}

// PassiveConfig mirrors `healthchecks.passive`: thresholds applied to the
// outcomes the proxy reports for real traffic.
type PassiveConfig struct {
	// Type is "http", "https" or "tcp"; informational here.
	Type      string
	Healthy   PassiveHealthy
	Unhealthy PassiveUnhealthy
}

// PassiveHealthy mirrors `healthchecks.passive.healthy`.
type PassiveHealthy struct {
	Successes    int
	HTTPStatuses []int
}

// PassiveUnhealthy mirrors `healthchecks.passive.unhealthy`.
type PassiveUnhealthy struct {
	HTTPFailures, TCPFailures, Timeouts int
	HTTPStatuses                        []int
}

// DefaultConfig returns Kong's upstream health-check defaults: every interval
// and threshold 0, so checks are off until configured.
func DefaultConfig() Config {
	return Config{
		Active: ActiveConfig{
			Type:                   "http",
			HTTPPath:               "/",
			Timeout:                time.Second,
			Concurrency:            10,
			HTTPSVerifyCertificate: true,
			Healthy:                ActiveHealthy{HTTPStatuses: []int{200, 302}},
			Unhealthy:              ActiveUnhealthy{HTTPStatuses: []int{429, 404, 500, 501, 502, 503, 504, 505}},
		},
		Passive: PassiveConfig{
			Type: "http",
			Healthy: PassiveHealthy{HTTPStatuses: []int{
				200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
				300, 301, 302, 303, 304, 305, 306, 307, 308,
			}},
			Unhealthy: PassiveUnhealthy{HTTPStatuses: []int{429, 500, 503}},
		},
	}
}

// Seconds converts Kong's fractional seconds to a Duration.
func Seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Upstream is one upstream as the registry needs it.
type Upstream struct {
	// ID is the upstream's identity (its entity id); health state is keyed
	// by (ID, target address) and survives updates while both stay.
	ID string
	// Name is the upstream's name, for logs and status.
	Name string
	// HostHeader is the upstream's `host_header`, sent as Host by http(s)
	// probes instead of the target host when set.
	HostHeader string
	// Checks is the upstream's `healthchecks`.
	Checks Config
	// Targets are the upstream's targets.
	Targets []TargetSpec
}

// TargetSpec is one target of an Upstream.
type TargetSpec struct {
	// Address is "host:port", unique within the upstream.
	Address string
	// Weight 0 keeps the target's state but never probes it, as Kong leaves
	// weight-0 targets out of its health checker.
	Weight int
}

// statusSet is a bitset over HTTP status codes 0..1023.
type statusSet [16]uint64

func newStatusSet(codes []int) (statusSet, error) {
	var s statusSet
	for _, c := range codes {
		if c < 100 || c > 999 {
			return s, fmt.Errorf("invalid HTTP status %d", c)
		}
		s[c>>6] |= 1 << (uint(c) & 63)
	}
	return s, nil
}

func (s *statusSet) has(code int) bool {
	return code >= 0 && code < 1024 && s[code>>6]&(1<<(uint(code)&63)) != 0
}

// thresholds are the counter limits of one side (active or passive).
type thresholds struct {
	successes, httpFailures, tcpFailures, timeouts int
	healthy, unhealthy                             statusSet
}

// checks is the compiled, immutable form of an upstream's Config.
type checks struct {
	upstreamID, upstreamName string
	// enabled is Kong's "using health checks": an active interval or a
	// passive failure threshold is set. When false every target is healthy
	// and reports are ignored.
	enabled bool
	// probing is true when active probes run on at least one side.
	probing bool

	probeType          string
	path               string
	timeout            time.Duration
	concurrency        int
	verify             bool
	sni                string
	hostHeader         string
	headers            http.Header
	healthyInterval    time.Duration
	unhealthyInterval  time.Duration
	threshold          float64
	active, passive    thresholds
	unsupportedProbing string
}

func compile(u Upstream) (*checks, error) {
	if u.ID == "" {
		return nil, errors.New("upstream id is required")
	}
	a, p := u.Checks.Active, u.Checks.Passive
	c := &checks{
		upstreamID:        u.ID,
		upstreamName:      u.Name,
		probeType:         a.Type,
		path:              a.HTTPPath,
		timeout:           a.Timeout,
		concurrency:       a.Concurrency,
		verify:            a.HTTPSVerifyCertificate,
		sni:               a.HTTPSSNI,
		hostHeader:        u.HostHeader,
		healthyInterval:   a.Healthy.Interval,
		unhealthyInterval: a.Unhealthy.Interval,
		threshold:         u.Checks.Threshold,
	}
	if c.probeType == "" {
		c.probeType = "http"
	}
	if c.path == "" {
		c.path = "/"
	}
	if c.timeout == 0 {
		c.timeout = time.Second
	}
	if c.concurrency == 0 {
		c.concurrency = 10
	}
	switch {
	case c.timeout < 0 || c.concurrency < 0 || c.healthyInterval < 0 || c.unhealthyInterval < 0:
		return nil, errors.New("healthchecks: negative timeout, concurrency or interval")
	case c.threshold < 0 || c.threshold > 100:
		return nil, fmt.Errorf("healthchecks: threshold %v out of range 0..100", c.threshold)
	case c.path[0] != '/':
		return nil, fmt.Errorf("healthchecks: http_path %q must start with /", c.path)
	}
	switch c.probeType {
	case "http", "https", "tcp":
	case "grpc", "grpcs":
		c.unsupportedProbing = c.probeType
	default:
		return nil, fmt.Errorf("healthchecks: unknown active type %q", c.probeType)
	}
	var err error
	if c.active, err = newThresholds(a.Healthy.Successes, a.Unhealthy.HTTPFailures, a.Unhealthy.TCPFailures,
		a.Unhealthy.Timeouts, a.Healthy.HTTPStatuses, a.Unhealthy.HTTPStatuses); err != nil {
		return nil, fmt.Errorf("healthchecks.active: %w", err)
	}
	if c.passive, err = newThresholds(p.Healthy.Successes, p.Unhealthy.HTTPFailures, p.Unhealthy.TCPFailures,
		p.Unhealthy.Timeouts, p.Healthy.HTTPStatuses, p.Unhealthy.HTTPStatuses); err != nil {
		return nil, fmt.Errorf("healthchecks.passive: %w", err)
	}
	if len(a.Headers) > 0 {
		c.headers = make(http.Header, len(a.Headers))
		for k, vs := range a.Headers {
			c.headers[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
		}
	}
	activeOn := c.healthyInterval > 0 || c.unhealthyInterval > 0
	c.probing = activeOn && c.unsupportedProbing == ""
	c.enabled = activeOn || c.passive.httpFailures > 0 || c.passive.tcpFailures > 0 || c.passive.timeouts > 0
	return c, nil
}

func newThresholds(successes, httpFailures, tcpFailures, timeouts int, healthy, unhealthy []int) (thresholds, error) {
	t := thresholds{successes: successes, httpFailures: httpFailures, tcpFailures: tcpFailures, timeouts: timeouts}
	if successes < 0 || httpFailures < 0 || tcpFailures < 0 || timeouts < 0 {
		return t, errors.New("negative threshold")
	}
	var err error
	if t.healthy, err = newStatusSet(healthy); err != nil {
		return t, err
	}
	if t.unhealthy, err = newStatusSet(unhealthy); err != nil {
		return t, err
	}
	return t, nil
}

// splitTarget validates a "host:port" address.
func splitTarget(addr string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("target %q: %w", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 || h == "" {
		return "", 0, fmt.Errorf("target %q: invalid host or port", addr)
	}
	return h, n, nil
}
