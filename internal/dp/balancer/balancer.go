// Package balancer picks the target of an upstream for each proxied request,
// with Kong's upstream algorithms: weighted round-robin, least-connections and
// consistent hashing over a ring of slots.
//
// A Balancer is built once per upstream per compiled configuration and is
// immutable apart from its selection state (round-robin weights and
// least-connection counters), so it is safe for concurrent use. Health is not
// owned here: each target carries a Health view (see package health) that the
// balancer consults on every pick, so health state outlives configuration
// swaps while balancers are rebuilt.
package balancer

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/textproto"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
)

// Algorithm names an upstream's balancing algorithm, spelled as Kong's
// upstream `algorithm` field.
type Algorithm string

// The algorithms Kong's upstream schema accepts. AlgorithmLatency is accepted
// by the schema but not implemented by this package: New rejects it.
const (
	AlgorithmRoundRobin        Algorithm = "round-robin"
	AlgorithmLeastConnections  Algorithm = "least-connections"
	AlgorithmConsistentHashing Algorithm = "consistent-hashing"
	AlgorithmLatency           Algorithm = "latency"
)

// Limits and defaults of Kong's upstream and target schemas.
const (
	// DefaultSlots is the default ring size of an upstream (`slots`).
	DefaultSlots = 10000
	// MinSlots and MaxSlots bound `slots`.
	MinSlots = 10
	MaxSlots = 65536
	// MaxWeight bounds a target's `weight`; 0 takes the target out of rotation.
	MaxWeight = 65535
	// DefaultTargetPort is the port Kong gives a target written without one.
	DefaultTargetPort = 8000

	// minRingPoints is the smallest ring Kong's consistent-hashing builds:
	// smaller `slots` values fall back to this size, as Kong does.
	minRingPoints = 1000
	// pointsPerTarget is how many ring points an average-weight target gets.
	pointsPerTarget = 160
	// maxTrackedTries is how many distinct targets one Attempt remembers as
	// tried; targets past this index may be picked again on retries.
	maxTrackedTries = 256
)

// Errors returned by Pick. Both mean the proxy answers 503, as Kong does.
var (
	// ErrNoHealthyTarget means every target is unhealthy or has weight 0.
	ErrNoHealthyTarget = errors.New("balancer: no healthy target")
	// ErrBalancerUnhealthy means the healthy share of the upstream's weight
	// is below its `healthchecks.threshold`.
	ErrBalancerUnhealthy = errors.New("balancer: upstream is below its health threshold")
)

// Health is the view of one target's health the balancer reads on each pick.
// Implementations must be safe for concurrent use and fast (an atomic load).
// *health.Target implements it.
type Health interface {
	// Healthy reports whether the target may receive traffic.
	Healthy() bool
}

// TargetConfig describes one target of an upstream, mirroring Kong's target
// entity.
type TargetConfig struct {
	// Address is the target as "host:port" (see NormalizeTarget). It is the
	// target's identity within the upstream and must be unique.
	Address string
	// Weight is the target's share of traffic, 0..MaxWeight. Weight 0 keeps
	// the target configured but out of rotation, as in Kong.
	Weight int
	// Health reports the target's health; nil means always healthy.
	Health Health
}

// Target is one target of a built Balancer. Its exported fields are set by
// New and must be treated as read-only.
type Target struct {
	// Address is the target's "host:port".
	Address string
	// Host and Port are Address split.
	Host string
	Port int
	// Weight is the configured weight, 0..MaxWeight.
	Weight int
	// Health is the target's health view; nil means always healthy.
	Health Health

	index int
	// active counts picks not yet released with Done; kept only by
	// least-connections balancers.
	active atomic.Int64
}

// Active reports how many picks of this target have not been released with
// Done. It is maintained only by least-connections balancers.
func (t *Target) Active() int64 { return t.active.Load() }

// healthy reports whether t may take traffic now.
func (t *Target) healthy() bool {
	return t.Weight > 0 && (t.Health == nil || t.Health.Healthy())
}

// Options configures a Balancer. The field names mirror Kong's upstream
// entity; the compiler maps configuration onto it.
type Options struct {
	// Name is the upstream's name, used in errors.
	Name string
	// Algorithm defaults to round-robin; latency is not supported.
	Algorithm Algorithm
	// Slots is the consistent-hashing ring size, MinSlots..MaxSlots; 0 means
	// DefaultSlots. As in Kong, rings smaller than 1000 points are built with
	// 1000 points.
	Slots int
	// Hash configures the consistent-hashing inputs.
	Hash HashOptions
	// Threshold is `healthchecks.threshold`, a percentage 0..100: when the
	// healthy share of the total weight falls below it, Pick fails with
	// ErrBalancerUnhealthy. 0 disables the check.
	Threshold float64
	// Targets are the upstream's targets, in any order.
	Targets []TargetConfig
}

// Balancer picks targets for one upstream. It is safe for concurrent use.
type Balancer struct {
	// Immutable after New.
	name        string
	algorithm   Algorithm
	targets     []Target
	totalWeight int64
	threshold   float64
	hash        hashConfig
	// ring maps each ring slot to 1+index of the target owning it (0 only
	// when no target has weight); used by consistent hashing.
	ring []uint16

	// rrMu guards rrCurrent, the smooth round-robin current weights (one per
	// target, same order as targets).
	rrMu      sync.Mutex
	rrCurrent []int64

	// lcStart rotates the scan start of least-connections so that ties are
	// spread over the tied targets instead of always hitting the first one.
	lcStart atomic.Uint32
}

// New builds a Balancer from opts. It fails on an unknown or unsupported
// algorithm, a bad slot count, a malformed or duplicate target, a weight
// out of range, or an incomplete hash configuration.
func New(opts Options) (*Balancer, error) {
	algo := opts.Algorithm
	if algo == "" {
		algo = AlgorithmRoundRobin
	}
	switch algo {
	case AlgorithmRoundRobin, AlgorithmLeastConnections, AlgorithmConsistentHashing:
	case AlgorithmLatency:
		return nil, fmt.Errorf("balancer %q: algorithm %q is not supported", opts.Name, algo)
	default:
		return nil, fmt.Errorf("balancer %q: unknown algorithm %q", opts.Name, algo)
	}
	slots := opts.Slots
	if slots == 0 {
		slots = DefaultSlots
	}
	if slots < MinSlots || slots > MaxSlots {
		return nil, fmt.Errorf("balancer %q: slots %d out of range %d..%d", opts.Name, slots, MinSlots, MaxSlots)
	}
	if opts.Threshold < 0 || opts.Threshold > 100 || math.IsNaN(opts.Threshold) {
		return nil, fmt.Errorf("balancer %q: threshold %v out of range 0..100", opts.Name, opts.Threshold)
	}
	if len(opts.Targets) > math.MaxUint16-1 {
		return nil, fmt.Errorf("balancer %q: %d targets, at most %d supported", opts.Name, len(opts.Targets), math.MaxUint16-1)
	}
	hc, err := newHashConfig(opts.Hash)
	if err != nil {
		return nil, fmt.Errorf("balancer %q: %w", opts.Name, err)
	}

	b := &Balancer{
		name:      opts.Name,
		algorithm: algo,
		targets:   make([]Target, len(opts.Targets)),
		threshold: opts.Threshold,
		hash:      hc,
		rrCurrent: make([]int64, len(opts.Targets)),
	}
	seen := make(map[string]bool, len(opts.Targets))
	for i, tc := range opts.Targets {
		host, portStr, err := net.SplitHostPort(tc.Address)
		if err != nil {
			return nil, fmt.Errorf("balancer %q: target %q: %w", opts.Name, tc.Address, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 || host == "" {
			return nil, fmt.Errorf("balancer %q: target %q: invalid host or port", opts.Name, tc.Address)
		}
		if tc.Weight < 0 || tc.Weight > MaxWeight {
			return nil, fmt.Errorf("balancer %q: target %q: weight %d out of range 0..%d", opts.Name, tc.Address, tc.Weight, MaxWeight)
		}
		if seen[tc.Address] {
			return nil, fmt.Errorf("balancer %q: duplicate target %q", opts.Name, tc.Address)
		}
		seen[tc.Address] = true
		t := &b.targets[i]
		t.Address, t.Host, t.Port, t.Weight, t.Health, t.index = tc.Address, host, port, tc.Weight, tc.Health, i
		b.totalWeight += int64(tc.Weight)
	}
	if algo == AlgorithmConsistentHashing {
		b.ring = buildRing(b.targets, b.totalWeight, slots)
	}
	return b, nil
}

// NormalizeTarget turns a Kong target string ("host", "host:port", "ip",
// "[ipv6]:port", bare IPv6) into "host:port", adding DefaultTargetPort when
// the port is missing, as Kong's target DAO does.
func NormalizeTarget(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty target")
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, perr := strconv.Atoi(port)
		if perr != nil || p < 0 || p > 65535 || host == "" {
			return "", fmt.Errorf("invalid target %q", s)
		}
		return net.JoinHostPort(host, port), nil
	}
	host := s
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, strconv.Itoa(DefaultTargetPort)), nil
}

// Name returns the upstream name the balancer was built for.
func (b *Balancer) Name() string { return b.name }

// Algorithm returns the algorithm in use.
func (b *Balancer) Algorithm() Algorithm { return b.algorithm }

// Targets returns the balancer's targets in configuration order. The slice
// and its elements must not be modified.
func (b *Balancer) Targets() []Target { return b.targets }

// Attempt carries one request's selection state across retries. The zero
// value is a first try; reuse the same Attempt for every retry of the
// request so that retries avoid targets already tried. An Attempt must not
// be shared between requests or goroutines.
type Attempt struct {
	// Key is the consistent-hashing input of the request, usually from
	// Balancer.HashKey; other algorithms ignore it. Set it before the first
	// Pick; the hash is computed once.
	Key string

	hash   uint32
	hashed bool
	tries  int
	// tried is a bitset over target indexes below maxTrackedTries.
	tried [maxTrackedTries / 64]uint64
}

// Tries reports how many successful picks this attempt has made.
func (a *Attempt) Tries() int { return a.tries }

func (a *Attempt) wasTried(i int) bool {
	return i < maxTrackedTries && a.tried[i>>6]&(1<<(uint(i)&63)) != 0
}

func (a *Attempt) markTried(i int) {
	if i < maxTrackedTries {
		a.tried[i>>6] |= 1 << (uint(i) & 63)
	}
	a.tries++
}

// Pick chooses the target for the next try of the request described by a
// (nil means a single try with no retry memory). It skips unhealthy and
// weight-0 targets, and on a retry it prefers a target not tried yet,
// returning to a tried one only when no other healthy target exists.
//
// With least-connections every successful Pick counts as a connection begun
// and must be ended with Done; callers should call Done after every
// successful Pick whatever the algorithm. Pick does not allocate.
func (b *Balancer) Pick(a *Attempt) (*Target, error) {
	var local Attempt
	if a == nil {
		a = &local
	}
	if b.threshold > 0 && !b.aboveThreshold() {
		return nil, ErrBalancerUnhealthy
	}
	avoid := a.tries > 0
	for {
		var i int
		switch b.algorithm {
		case AlgorithmLeastConnections:
			i = b.pickLeastConnections(a, avoid)
		case AlgorithmConsistentHashing:
			if !a.hashed {
				a.hash, a.hashed = xxh32(a.Key), true
			}
			i = b.pickHash(a, avoid)
		default:
			i = b.pickRoundRobin(a, avoid)
		}
		if i >= 0 {
			a.markTried(i)
			t := &b.targets[i]
			if b.algorithm == AlgorithmLeastConnections {
				t.active.Add(1)
			}
			return t, nil
		}
		if !avoid {
			return nil, ErrNoHealthyTarget
		}
		// Every healthy target was tried already: a retry may go back to one.
		avoid = false
	}
}

// Done ends a pick made by Pick. It maintains least-connections counters and
// is a no-op for the other algorithms. Call it exactly once per successful
// Pick, when the exchange with that target ends (successfully or not).
func (b *Balancer) Done(t *Target) {
	if b.algorithm == AlgorithmLeastConnections && t != nil {
		t.active.Add(-1)
	}
}

// Healthy reports whether at least one target can take traffic and the
// upstream is at or above its health threshold.
func (b *Balancer) Healthy() bool {
	if b.threshold > 0 && !b.aboveThreshold() {
		return false
	}
	for i := range b.targets {
		if b.targets[i].healthy() {
			return true
		}
	}
	return false
}

// aboveThreshold reports whether the healthy share of the total weight is at
// least the configured threshold percentage.
func (b *Balancer) aboveThreshold() bool {
	if b.totalWeight == 0 {
		return false
	}
	var healthy int64
	for i := range b.targets {
		if b.targets[i].healthy() {
			healthy += int64(b.targets[i].Weight)
		}
	}
	return float64(healthy)*100 >= b.threshold*float64(b.totalWeight)
}

// pickRoundRobin runs one step of smooth weighted round-robin (the nginx
// algorithm) over the eligible targets: each gains its weight, the largest
// current weight wins and pays back the eligible total. Over any window of
// sum(weights) picks with stable health each target is picked exactly
// weight times, interleaved rather than in bursts. Returns -1 if none.
func (b *Balancer) pickRoundRobin(a *Attempt, avoid bool) int {
	b.rrMu.Lock()
	defer b.rrMu.Unlock()
	best := -1
	var total int64
	for i := range b.targets {
		t := &b.targets[i]
		if !t.healthy() || (avoid && a.wasTried(i)) {
			continue
		}
		w := int64(t.Weight)
		b.rrCurrent[i] += w
		total += w
		if best < 0 || b.rrCurrent[i] > b.rrCurrent[best] {
			best = i
		}
	}
	if best >= 0 {
		b.rrCurrent[best] -= total
	}
	return best
}

// pickLeastConnections picks the eligible target with the fewest active
// connections relative to its weight, comparing (active+1)/weight as Kong
// does, by cross-multiplication to stay in integers. Returns -1 if none.
func (b *Balancer) pickLeastConnections(a *Attempt, avoid bool) int {
	n := len(b.targets)
	if n == 0 {
		return -1
	}
	start := int(b.lcStart.Add(1) % uint32(n))
	best := -1
	var bestLoad, bestWeight int64
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		t := &b.targets[i]
		if !t.healthy() || (avoid && a.wasTried(i)) {
			continue
		}
		load, w := t.active.Load()+1, int64(t.Weight)
		if best < 0 || load*bestWeight < bestLoad*w {
			best, bestLoad, bestWeight = i, load, w
		}
	}
	return best
}

// pickHash finds the ring slot of the attempt's hash and walks the ring
// downwards (Kong's counter-clockwise walk) to the first eligible target.
// Returns -1 if none.
func (b *Balancer) pickHash(a *Attempt, avoid bool) int {
	points := uint32(len(b.ring))
	if points == 0 {
		return -1
	}
	idx := a.hash % points
	for range points {
		if owner := int(b.ring[idx]) - 1; owner >= 0 {
			if b.targets[owner].healthy() && !(avoid && a.wasTried(owner)) {
				return owner
			}
		}
		if idx == 0 {
			idx = points
		}
		idx--
	}
	return -1
}

// buildRing lays the targets out on a ring of max(slots, 1000) points the
// way Kong's consistent-hashing balancer does: targets sorted by host then
// port, each given floor(weight/total*n*160) points (at least one if its
// weight is positive) at xxh32("<host>::<port> <i>") modulo the ring size,
// with collisions pushed to further point numbers. The result is the same
// whatever order the targets were configured in. Empty slots are then
// filled with the owner of the nearest populated slot below them, which
// turns Kong's walk over empty slots into a single lookup.
func buildRing(targets []Target, totalWeight int64, slots int) []uint16 {
	points := slots
	if points < minRingPoints {
		points = minRingPoints
	}
	ring := make([]uint16, points)
	if totalWeight == 0 {
		return ring
	}
	order := make([]int, len(targets))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(x, y int) bool {
		a, b := &targets[order[x]], &targets[order[y]]
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Port < b.Port
	})
	n := float64(len(targets))
	placed := 0
	buf := make([]byte, 0, 64)
	for _, ti := range order {
		t := &targets[ti]
		if t.Weight == 0 {
			continue
		}
		entries := int(math.Floor(float64(t.Weight) / float64(totalWeight) * n * pointsPerTarget))
		if entries == 0 {
			entries = 1
		}
		// Kong gives up past `points` attempts per target; so do we, keeping
		// whatever points were placed, and never fill the ring completely so
		// that later targets still find free slots.
		for i := 1; i <= entries && i <= points && placed < points; i++ {
			buf = append(buf[:0], t.Host...)
			buf = append(buf, "::"...)
			buf = strconv.AppendInt(buf, int64(t.Port), 10)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(i), 10)
			slot := xxh32(string(buf)) % uint32(points)
			if ring[slot] == 0 {
				ring[slot] = uint16(ti + 1)
				placed++
			} else {
				entries++ // Collision: move the problem forward, as Kong does.
			}
		}
	}
	last := 0
	for i := points - 1; i >= 0; i-- {
		if ring[i] != 0 {
			last = i
			break
		}
	}
	cur := ring[last]
	for i := range ring {
		if ring[i] != 0 {
			cur = ring[i]
		} else {
			ring[i] = cur
		}
	}
	return ring
}

// canonicalHeader returns the canonical form of a header name once, so that
// request-time lookups index http.Header directly.
func canonicalHeader(name string) string {
	return textproto.CanonicalMIMEHeaderKey(name)
}
