// Package analytics is the runtime half of group analytics (protocol
// version 2, capability "analytics"): every request the proxy answers is
// added to an in-memory aggregate keyed by (minute, service, route,
// consumer, status); every flush interval the aggregate (the closed
// minutes, and the open minute's requests so far) is collected into
// telemetry.Batch payloads, numbered, kept in a bounded [Outbox] until the
// control plane acknowledges them, and spilled to the cache directory
// across a restart. A minute may so reach the control plane in several
// parts, which it adds up.
//
// # Hot path
//
// [Aggregator.Record] costs about 0.1 µs and allocates nothing in steady
// state (TestRecordAllocs, BenchmarkRecord). The aggregate is split into
// shards, each a mutex and a map per open minute; a request goes to the
// shard its (route, consumer, status) hashes to, or, when that shard is
// busy, to the next one, so that one hot route does not serialize every
// core on one lock. A key may therefore sit in two shards; collection adds
// them up.
//
// Map keys hold ids cloned when a series is inserted, never the caller's
// strings (which may live in pooled request memory), and an existing key
// is never assigned to again (Go would replace the stored key with the
// lookup key).
//
// # Bounds and memory
//
// A minute holds at most SeriesCap series slots (a key that landed in two
// shards takes two); the requests of a minute past the cap are added to
// the overflow series of their status (service, route and consumer
// telemetry.OtherID), counted in Minute.OverflowRequests and in
// [Aggregator.Overflowed]: never dropped. The overflow series are at most
// one per status code and do not count against the cap.
//
// A series costs about 300 bytes of fixed state (counters, five histogram
// headers, its cloned ids and its map entry) plus 256 bytes for every
// power-of-two octave its values touch in each of its five histograms
// (values below 64 share one octave; see telemetry.BucketOf). Latencies
// and sizes of one route and status typically touch 8 to 16 octaves in
// all, so a series takes 2.5 to 4.5 KiB (TestSeriesMemory measures 4.4
// KiB for series of 20 requests whose latencies spread over three
// octaves); the worst case, every value of every histogram in a different
// octave, is 5 × 59 octaves = 75 KiB, reachable only by a series with at
// least 59 requests of wildly different latencies and sizes. With the
// default cap of 10,000 series a full minute takes about 45 MiB, and two
// minutes are open around a minute's boundary. Octave chunks and
// series are recycled through per-shard free lists when their minute is
// collected, so the steady state allocates nothing and memory stays at the
// peak of two open minutes.
package analytics

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// Defaults of [AggregatorOptions].
const (
	// DefaultSeriesCap is the default series cap per minute. At the
	// typical 2.5-4.5 KiB per series, a full minute takes 25-45 MiB, and
	// two minutes are open around a minute's boundary.
	DefaultSeriesCap = 10_000
	// MaxSeriesCap is the largest series cap: with one overflow series per
	// status code (at most 500), a minute stays within
	// telemetry.MaxSeriesPerMinute.
	MaxSeriesCap = telemetry.MaxSeriesPerMinute - 500
)

// Request is what the proxy knows about one answered request. Its strings
// are only read during Record; they may point to memory the caller reuses
// afterwards.
type Request struct {
	// End is when the response was finished; its wall-clock UTC minute is
	// the request's minute.
	End time.Time
	// Service and Route are the matched entities' ids; empty when no
	// route matched. Consumer is the id of the consumer a plugin
	// identified; empty when none. Ids longer than telemetry.MaxIDLen
	// bytes are cut to that length.
	Service, Route, Consumer string
	// Status is the status code sent to the client; one outside 100..599
	// (a request that ended without a response) is counted as 500.
	Status int
	// RequestBytes and ResponseBytes are the body sizes in bytes; negative
	// values count as 0.
	RequestBytes, ResponseBytes int64
	// Latency is the total latency: request received to response
	// finished.
	Latency time.Duration
	// Upstream is the time from sending the request upstream to the
	// response head; only read when Upstreamed.
	Upstream time.Duration
	// Upstreamed says whether an upstream answered (Upstream is valid).
	Upstreamed bool
}

// AggregatorOptions configure an [Aggregator].
type AggregatorOptions struct {
	// SeriesCap bounds the series slots of one minute, 1..MaxSeriesCap;
	// 0 means DefaultSeriesCap.
	SeriesCap int
	// Shards is the number of shards, rounded up to a power of two; 0
	// means 4 per CPU, at least 8.
	Shards int
}

// Aggregator adds up requests per minute. It is safe for concurrent use;
// its zero value is not usable, create it with NewAggregator.
type Aggregator struct {
	// Immutable after NewAggregator.
	seed      maphash.Seed
	shards    []shard
	mask      uint64
	seriesCap int64

	// overflowed counts every request recorded in an overflow series.
	overflowed atomic.Int64

	slotsMu sync.Mutex // guards slots
	// slots counts the series slots of each open minute (by start),
	// across shards; a minute's counter is dropped when it is collected.
	slots map[int64]*atomic.Int64
}

// shard is one lock and the open minutes behind it.
type shard struct {
	mu sync.Mutex // guards the fields below
	// minutes are the open minutes of this shard, in no order; usually
	// one, two around a minute's boundary.
	minutes []*minuteAgg
	// free lists, refilled by Collect.
	freeMinutes []*minuteAgg
	freeSeries  []*series
	freeChunks  []*chunk
	// Pad shards to separate cache lines.
	_ [64]byte
}

// key identifies a series. Its strings are owned by the map (cloned on
// insert).
type key struct {
	service, route, consumer string
	status                   int
}

// minuteAgg is one shard's share of one minute.
type minuteAgg struct {
	start    int64
	series   map[key]*series
	slots    *atomic.Int64 // the minute's slot counter, shared by shards
	overflow int64         // requests recorded in overflow series
}

// The five histograms of a series, in telemetry.Series order.
const (
	hLatency = iota
	hUpstream
	hGateway
	hRequestSize
	hResponseSize
	numHists
)

// series is the running aggregate of one key in one minute of one shard.
type series struct {
	count, requestBytes, responseBytes, latencySum int64
	hists                                          [numHists]hist
}

// chunk counts the 64 buckets of one octave (telemetry bucket indexes
// 64·o .. 64·o+63).
type chunk [64]uint32

// hist is a dense-by-octave histogram: idx[i] is the octave chunk ch[i]
// counts; octaves appear in the order first seen.
type hist struct {
	idx []uint8
	ch  []*chunk
}

// NewAggregator checks opts and returns an empty Aggregator.
func NewAggregator(opts AggregatorOptions) (*Aggregator, error) {
	if opts.SeriesCap == 0 {
		opts.SeriesCap = DefaultSeriesCap
	}
	if opts.SeriesCap < 1 || opts.SeriesCap > MaxSeriesCap {
		return nil, fmt.Errorf("analytics: series cap %d out of 1..%d", opts.SeriesCap, MaxSeriesCap)
	}
	if opts.Shards < 0 {
		return nil, errors.New("analytics: negative shard count")
	}
	if opts.Shards == 0 {
		opts.Shards = max(8, 4*runtime.GOMAXPROCS(0))
	}
	n := 1
	for n < opts.Shards {
		n <<= 1
	}
	return &Aggregator{
		seed:      maphash.MakeSeed(),
		shards:    make([]shard, n),
		mask:      uint64(n - 1),
		seriesCap: int64(opts.SeriesCap),
		slots:     make(map[int64]*atomic.Int64),
	}, nil
}

// SeriesCap returns the series cap per minute.
func (a *Aggregator) SeriesCap() int { return int(a.seriesCap) }

// Overflowed returns how many requests were recorded in overflow series
// since the Aggregator was created.
func (a *Aggregator) Overflowed() int64 { return a.overflowed.Load() }

// Record adds one request to its minute. It never allocates in steady
// state and never blocks for long: the critical section is a map lookup
// and a few increments.
func (a *Aggregator) Record(r *Request) {
	k := key{service: clip(r.Service), route: clip(r.Route), consumer: clip(r.Consumer), status: r.Status}
	if k.status < 100 || k.status > 599 {
		k.status = 500
	}
	sec := r.End.Unix()
	start := sec - sec%60
	if sec < 0 && sec%60 != 0 {
		start -= 60
	}
	h := maphash.String(a.seed, k.route) ^ (maphash.String(a.seed, k.consumer) * 0x9e3779b97f4a7c15) ^ uint64(k.status)
	i := h & a.mask
	sh := &a.shards[i]
	if !sh.mu.TryLock() {
		// Busy: the neighbour, if free, takes this request; otherwise
		// wait for the home shard.
		if alt := &a.shards[(i+1)&a.mask]; alt.mu.TryLock() {
			sh = alt
		} else {
			sh.mu.Lock()
		}
	}
	sh.record(a, r, start, &k)
	sh.mu.Unlock()
}

// clip cuts an id to telemetry.MaxIDLen bytes without allocating.
func clip(id string) string {
	if len(id) > telemetry.MaxIDLen {
		return id[:telemetry.MaxIDLen]
	}
	return id
}

// record adds r under sh.mu.
func (sh *shard) record(a *Aggregator, r *Request, start int64, k *key) {
	m := sh.minute(a, start)
	s := m.series[*k]
	if s == nil {
		s = sh.insert(a, m, k)
	}
	s.count++
	s.requestBytes += max(r.RequestBytes, 0)
	s.responseBytes += max(r.ResponseBytes, 0)
	lat := max(r.Latency.Microseconds(), 0)
	s.latencySum += lat
	gw := lat
	if r.Upstreamed {
		up := min(max(r.Upstream.Microseconds(), 0), lat)
		s.hists[hUpstream].add(sh, uint64(up))
		gw = lat - up
	}
	s.hists[hLatency].add(sh, uint64(lat))
	s.hists[hGateway].add(sh, uint64(gw))
	s.hists[hRequestSize].add(sh, uint64(max(r.RequestBytes, 0)))
	s.hists[hResponseSize].add(sh, uint64(max(r.ResponseBytes, 0)))
}

// minute returns the shard's aggregate of the minute starting at start,
// opening it when needed.
func (sh *shard) minute(a *Aggregator, start int64) *minuteAgg {
	for _, m := range sh.minutes {
		if m.start == start {
			return m
		}
	}
	var m *minuteAgg
	if n := len(sh.freeMinutes); n > 0 {
		m = sh.freeMinutes[n-1]
		sh.freeMinutes = sh.freeMinutes[:n-1]
	} else {
		m = &minuteAgg{series: make(map[key]*series)}
	}
	m.start, m.overflow = start, 0
	m.slots = a.slotCounter(start)
	sh.minutes = append(sh.minutes, m)
	return m
}

// slotCounter returns the shared series counter of the minute at start.
func (a *Aggregator) slotCounter(start int64) *atomic.Int64 {
	a.slotsMu.Lock()
	defer a.slotsMu.Unlock()
	c := a.slots[start]
	if c == nil {
		c = new(atomic.Int64)
		a.slots[start] = c
	}
	return c
}

// insert adds the series of k to m, or returns the overflow series of its
// status when the minute is full. The stored key's ids are clones.
func (sh *shard) insert(a *Aggregator, m *minuteAgg, k *key) *series {
	if m.slots.Load() >= a.seriesCap || m.slots.Add(1) > a.seriesCap {
		// Full (or filled by a concurrent insert just now; the slot taken
		// by Add is not given back, which can only make the cap tighter).
		m.overflow++
		a.overflowed.Add(1)
		ok := key{service: telemetry.OtherID, route: telemetry.OtherID, consumer: telemetry.OtherID, status: k.status}
		if s := m.series[ok]; s != nil {
			return s
		}
		s := sh.newSeries()
		m.series[ok] = s
		return s
	}
	s := sh.newSeries()
	m.series[key{service: cloneID(k.service), route: cloneID(k.route), consumer: cloneID(k.consumer), status: k.status}] = s
	return s
}

// cloneID copies id into memory of its own ("" stays "").
func cloneID(id string) string {
	if id == "" {
		return ""
	}
	return string([]byte(id))
}

func (sh *shard) newSeries() *series {
	if n := len(sh.freeSeries); n > 0 {
		s := sh.freeSeries[n-1]
		sh.freeSeries = sh.freeSeries[:n-1]
		return s
	}
	return new(series)
}

func (sh *shard) newChunk() *chunk {
	if n := len(sh.freeChunks); n > 0 {
		c := sh.freeChunks[n-1]
		sh.freeChunks = sh.freeChunks[:n-1]
		return c
	}
	return new(chunk)
}

// add counts v once.
func (h *hist) add(sh *shard, v uint64) {
	b := telemetry.BucketOf(v)
	o := uint8(b >> 6)
	for i, x := range h.idx {
		if x == o {
			h.ch[i][b&63]++
			return
		}
	}
	c := sh.newChunk()
	c[b&63] = 1
	h.idx = append(h.idx, o)
	h.ch = append(h.ch, c)
}

// appendTo adds h's counts to t, octave by octave in increasing order, so
// that an empty t is filled by appends.
func (h *hist) appendTo(t *telemetry.Histogram) {
	// Insertion sort of the (few) octaves, in place.
	for i := 1; i < len(h.idx); i++ {
		for j := i; j > 0 && h.idx[j] < h.idx[j-1]; j-- {
			h.idx[j], h.idx[j-1] = h.idx[j-1], h.idx[j]
			h.ch[j], h.ch[j-1] = h.ch[j-1], h.ch[j]
		}
	}
	for i, c := range h.ch {
		base := int(h.idx[i]) << 6
		for j, n := range c {
			if n != 0 {
				t.AddBucket(base+j, uint64(n))
			}
		}
	}
}

// Collect takes the minutes that ended by now (start + 60 s <= now) out
// of the aggregate and, when all is set, the requests of the open minutes
// so far too (their series stay, emptied, so that the series cap keeps
// counting per minute). It returns them oldest first with their series
// sorted by (service, route, consumer, status). A minute collected in
// parts (open, then closed; or recorded again after it was taken out, by
// a request that ended just before the boundary and was recorded after
// the collection) comes out in several Collects; the control plane adds
// the parts up.
func (a *Aggregator) Collect(now time.Time, all bool) []telemetry.Minute {
	cut := now.Unix()
	var parts []part
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.Lock()
		keep := sh.minutes[:0]
		for _, m := range sh.minutes {
			switch {
			case m.start+60 <= cut:
				p := part{sh: sh, start: m.start, overflow: m.overflow, whole: m}
				for k, s := range m.series {
					if s.count > 0 {
						p.series = append(p.series, keyed{k, s})
					}
				}
				parts = append(parts, p)
			case all:
				// Swap each series' data into a detached series, leaving
				// the key in place, empty.
				p := part{sh: sh, start: m.start, overflow: m.overflow}
				m.overflow = 0
				for k, s := range m.series {
					if s.count == 0 {
						continue
					}
					d := sh.newSeries()
					*d, *s = *s, *d
					p.series = append(p.series, keyed{k, d})
				}
				parts = append(parts, p)
				keep = append(keep, m)
			default:
				keep = append(keep, m)
			}
		}
		clear(sh.minutes[len(keep):])
		sh.minutes = keep
		sh.mu.Unlock()
	}
	if len(parts) == 0 {
		return nil
	}
	byStart := make(map[int64]*collected)
	for _, p := range parts {
		c := byStart[p.start]
		if c == nil {
			c = &collected{series: make(map[key]*telemetry.Series)}
			byStart[p.start] = c
		}
		c.overflow += p.overflow
		for _, ks := range p.series {
			c.add(ks.k, ks.s)
		}
	}
	a.slotsMu.Lock()
	for _, p := range parts {
		if p.whole != nil {
			delete(a.slots, p.start)
		}
	}
	a.slotsMu.Unlock()
	// Give the memory back to the shards it came from.
	for _, p := range parts {
		p.sh.mu.Lock()
		if p.whole != nil {
			p.sh.recycle(p.whole)
		} else {
			for _, ks := range p.series {
				p.sh.recycleSeries(ks.s)
			}
		}
		p.sh.mu.Unlock()
	}
	out := make([]telemetry.Minute, 0, len(byStart))
	for start, c := range byStart {
		if len(c.series) == 0 && c.overflow == 0 {
			continue
		}
		m := telemetry.Minute{Start: start, OverflowRequests: c.overflow, Series: make([]telemetry.Series, 0, len(c.series))}
		for _, s := range c.series {
			m.Series = append(m.Series, *s)
		}
		slices.SortFunc(m.Series, compareSeries)
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(x, y telemetry.Minute) int { return cmp.Compare(x.Start, y.Start) })
	return out
}

// part is one shard's share of one minute, taken by Collect.
type part struct {
	sh       *shard
	start    int64
	overflow int64
	// series are the non-empty series taken: the minute's own when whole
	// is set (the closed minute, taken out), else detached copies.
	series []keyed
	whole  *minuteAgg
}

type keyed struct {
	k key
	s *series
}

func compareSeries(x, y telemetry.Series) int {
	return cmp.Or(cmp.Compare(x.Service, y.Service), cmp.Compare(x.Route, y.Route),
		cmp.Compare(x.Consumer, y.Consumer), cmp.Compare(x.Status, y.Status))
}

// collected is one minute being assembled from its shards.
type collected struct {
	series   map[key]*telemetry.Series
	overflow int64
}

func (c *collected) add(k key, s *series) {
	t := c.series[k]
	if t == nil {
		t = &telemetry.Series{Service: k.service, Route: k.route, Consumer: k.consumer, Status: k.status}
		c.series[k] = t
	}
	t.Count += s.count
	t.RequestBytes += s.requestBytes
	t.ResponseBytes += s.responseBytes
	t.LatencySum += s.latencySum
	s.hists[hLatency].appendTo(&t.Latency)
	s.hists[hUpstream].appendTo(&t.Upstream)
	s.hists[hGateway].appendTo(&t.Gateway)
	s.hists[hRequestSize].appendTo(&t.RequestSize)
	s.hists[hResponseSize].appendTo(&t.ResponseSize)
}

// recycle empties m into the shard's free lists; under sh.mu.
func (sh *shard) recycle(m *minuteAgg) {
	for _, s := range m.series {
		sh.recycleSeries(s)
	}
	clear(m.series)
	m.slots = nil
	sh.freeMinutes = append(sh.freeMinutes, m)
}

// recycleSeries empties s into the shard's free lists; under sh.mu.
func (sh *shard) recycleSeries(s *series) {
	for i := range s.hists {
		h := &s.hists[i]
		for _, c := range h.ch {
			clear(c[:])
			sh.freeChunks = append(sh.freeChunks, c)
		}
		clear(h.ch)
		h.idx, h.ch = h.idx[:0], h.ch[:0]
	}
	s.count, s.requestBytes, s.responseBytes, s.latencySum = 0, 0, 0, 0
	sh.freeSeries = append(sh.freeSeries, s)
}

// OpenSeries returns the number of series slots in the open minutes.
func (a *Aggregator) OpenSeries() int64 {
	a.slotsMu.Lock()
	defer a.slotsMu.Unlock()
	var n int64
	for _, c := range a.slots {
		n += c.Load()
	}
	return n
}
