package analytics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-gw/gantry/internal/dp/cache"
	"github.com/gantry-gw/gantry/internal/wire"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// Defaults and limits of [OutboxOptions].
const (
	// DefaultFlushInterval is how often the aggregates are collected.
	DefaultFlushInterval = 10 * time.Second
	// DefaultBuffer is how much unacknowledged data the outbox keeps, in
	// minutes of traffic: the batches of the newest DefaultBuffer
	// wall-clock minutes buffered.
	DefaultBuffer = 60
	// MinBuffer is the smallest accepted buffer, in minutes.
	MinBuffer = 1
	// MaxSeriesPerBatch bounds the series of one batch (a minute with
	// more is split over several batches), so that a frame stays far
	// below the cluster link's 16 MiB: a series is 200 bytes to a few KiB
	// of JSON, and compresses about tenfold.
	MaxSeriesPerBatch = 10_000
)

// Batch is one numbered analytics batch waiting for its acknowledgement.
// It is immutable once in the outbox.
type Batch struct {
	// Seq numbers the batch for the control plane; > 0, unique per node
	// id and increasing, across restarts too.
	Seq int64
	// Minutes is the number of Minute entries in the batch (a minute
	// flushed in several parts is in several batches).
	Minutes int
	// First and Last are the starts of its oldest and newest minute, Unix
	// seconds.
	First, Last int64
	// Gzip is the gzip'd JSON of the telemetry.Batch.
	Gzip []byte
}

// Payload returns the batch's telemetry.Batch as JSON.
func (b *Batch) Payload() ([]byte, error) {
	return wire.Gunzip(b.Gzip, 0)
}

// OutboxOptions configure an [Outbox].
type OutboxOptions struct {
	// Aggregator is where minutes are collected from; required.
	Aggregator *Aggregator
	// Cache, when set, is where the outbox spills at Close and is loaded
	// from at NewOutbox (file SpillFile); nil keeps it in memory only.
	Cache *cache.Cache
	// FlushInterval is how often Run collects the aggregates; 0 means
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// Buffer bounds the unacknowledged data kept, in minutes of traffic:
	// a batch whose minutes all lie before the newest Buffer minutes
	// buffered is dropped, oldest first. 0 means DefaultBuffer; at least
	// MinBuffer. Memory: each minute is buffered as one batch per flush
	// interval it had traffic in (the open minute's part so far, then the
	// rest), gzip'd; a minute of 10,000 series is about 1 MiB compressed
	// in all its parts together, a flush's part of it a share of that.
	Buffer int
	// Logger receives drops and spill errors; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Outbox turns collected minutes into numbered batches and keeps them
// until the control plane acknowledges them. It is safe for concurrent
// use.
type Outbox struct {
	// Immutable after NewOutbox.
	agg      *Aggregator
	cache    *cache.Cache
	interval time.Duration
	buffer   int
	log      *slog.Logger
	now      func() time.Time
	// ready has room for one signal: set when a batch is added.
	ready chan struct{}

	// flushMu serializes Flush, so that batches are numbered in the order
	// their minutes were collected.
	flushMu sync.Mutex

	mu sync.Mutex // guards batches, minutes, newest and nextSeq
	// batches are the unacknowledged batches, oldest (lowest Seq) first.
	batches []*Batch
	// minutes is the sum of Minutes over batches.
	minutes int
	// newest is the start of the newest minute ever buffered, Unix
	// seconds; the buffer's window ends with it.
	newest int64
	// nextSeq is the Seq of the next batch.
	nextSeq int64

	// Counters for metrics, since the Outbox was created.
	added, dropped, sent, acked atomic.Int64
}

// NewOutbox checks opts, loads what a previous run spilled (a spill that
// does not verify is logged and ignored) and returns the Outbox.
func NewOutbox(ctx context.Context, opts OutboxOptions) (*Outbox, error) {
	if opts.Aggregator == nil {
		return nil, errors.New("analytics: OutboxOptions.Aggregator is required")
	}
	if opts.FlushInterval < 0 {
		return nil, fmt.Errorf("analytics: negative flush interval %s", opts.FlushInterval)
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Buffer == 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Buffer < MinBuffer {
		return nil, fmt.Errorf("analytics: buffer of %d minutes, at least %d", opts.Buffer, MinBuffer)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	o := &Outbox{
		agg: opts.Aggregator, cache: opts.Cache, interval: opts.FlushInterval, buffer: opts.Buffer,
		log: opts.Logger.With("component", "analytics"), now: opts.Now, ready: make(chan struct{}, 1),
	}
	var next int64
	if o.cache != nil {
		sp, err := o.loadSpill(ctx)
		switch {
		case err != nil:
			o.log.Error("analytics spill refused, starting with an empty outbox", "error", err)
		case sp != nil:
			o.batches, next = sp.batches, sp.nextSeq
			for _, b := range o.batches {
				o.minutes += b.Minutes
				o.newest = max(o.newest, b.Last)
			}
			o.log.Info("analytics batches loaded from the cache", "batches", len(o.batches), "minutes", o.minutes)
			o.trim()
		}
	}
	// A counter lost with a refused spill must not hand out a number the
	// control plane has seen: the clock in microseconds is ahead of any
	// counter that grows by a few per minute.
	o.nextSeq = max(next, o.now().UnixMicro())
	if len(o.batches) > 0 {
		o.signal()
	}
	return o, nil
}

// FlushInterval returns how often Run collects.
func (o *Outbox) FlushInterval() time.Duration { return o.interval }

// Run collects the aggregates every flush interval until ctx ends: the
// closed minutes, and the open minute's requests so far (its later
// requests come in later batches; the control plane adds the parts up),
// so that the control plane is at most one flush interval behind.
func (o *Outbox) Run(ctx context.Context) {
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.Flush(true)
		}
	}
}

// Close flushes every minute, the open one too, and spills the outbox to
// the cache. Call it once requests have stopped.
func (o *Outbox) Close(ctx context.Context) error {
	o.Flush(true)
	if o.cache == nil {
		return nil
	}
	return o.spill(ctx)
}

// Flush collects the closed minutes (every minute when all is set) from
// the aggregator into numbered batches. It reports how many batches were
// added.
func (o *Outbox) Flush(all bool) int {
	o.flushMu.Lock()
	defer o.flushMu.Unlock()
	minutes := o.agg.Collect(o.now(), all)
	if len(minutes) == 0 {
		return 0
	}
	parts := split(minutes)
	added := 0
	for _, b := range parts {
		if err := b.Validate(); err != nil {
			// A bug in the aggregator; the control plane would refuse the
			// batch forever, so it is not buffered.
			o.log.Error("analytics batch invalid, not sent", "error", err)
			o.dropped.Add(1)
			continue
		}
		gz, err := wire.EncodeGzipJSON(b)
		if err != nil {
			o.log.Error("analytics batch not encoded", "error", err)
			o.dropped.Add(1)
			continue
		}
		o.mu.Lock()
		last := b.Minutes[len(b.Minutes)-1].Start
		o.batches = append(o.batches, &Batch{Seq: o.nextSeq, Minutes: len(b.Minutes), First: b.Minutes[0].Start, Last: last, Gzip: gz})
		o.nextSeq++
		o.minutes += len(b.Minutes)
		o.newest = max(o.newest, last)
		o.trim()
		o.mu.Unlock()
		o.added.Add(1)
		added++
	}
	if added > 0 {
		o.signal()
	}
	return added
}

// split packs minutes into batches of at most telemetry.MaxMinutesPerBatch
// minutes and MaxSeriesPerBatch series, cutting a minute with more series
// into parts (its overflow count goes with the first part).
func split(minutes []telemetry.Minute) []*telemetry.Batch {
	var out []*telemetry.Batch
	cur := &telemetry.Batch{}
	room := MaxSeriesPerBatch
	for _, m := range minutes {
		series := m.Series
		first := true
		for first || len(series) > 0 {
			if len(cur.Minutes) == telemetry.MaxMinutesPerBatch || (room == 0 && len(cur.Minutes) > 0) {
				out = append(out, cur)
				cur, room = &telemetry.Batch{}, MaxSeriesPerBatch
			}
			n := min(len(series), room)
			part := telemetry.Minute{Start: m.Start, Series: series[:n:n]}
			if first {
				part.OverflowRequests = m.OverflowRequests
			}
			cur.Minutes = append(cur.Minutes, part)
			series, room, first = series[n:], room-n, false
		}
	}
	if len(cur.Minutes) > 0 {
		out = append(out, cur)
	}
	return out
}

// trim drops the oldest batches while they hold only minutes before the
// buffer's window (the newest o.buffer minutes); under mu.
func (o *Outbox) trim() {
	for len(o.batches) > 0 && o.batches[0].Last <= o.newest-int64(o.buffer)*60 {
		b := o.batches[0]
		o.batches[0] = nil
		o.batches = o.batches[1:]
		o.minutes -= b.Minutes
		o.dropped.Add(1)
		o.log.Warn("analytics buffer full: dropped the oldest unacknowledged batch",
			"seq", b.Seq, "minute", time.Unix(b.First, 0).UTC(), "minutes", b.Minutes, "buffer_minutes", o.buffer)
	}
}

func (o *Outbox) signal() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled (it has room for one signal) whenever batches are
// added. The agent's sender waits on it.
func (o *Outbox) Ready() <-chan struct{} { return o.ready }

// Pending returns the unacknowledged batches, oldest first. The slice is
// the caller's; the batches are shared and immutable.
func (o *Outbox) Pending() []*Batch {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*Batch(nil), o.batches...)
}

// Ack forgets the batch seq, which the control plane stored. It reports
// whether the batch was still buffered (an ack for an unknown seq, a
// batch already acknowledged or dropped, is ignored).
func (o *Outbox) Ack(seq int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, b := range o.batches {
		if b.Seq == seq {
			o.batches = append(o.batches[:i], o.batches[i+1:]...)
			o.minutes -= b.Minutes
			o.acked.Add(1)
			return true
		}
	}
	return false
}

// NoteSent counts one batch sent to the control plane (for the metrics).
func (o *Outbox) NoteSent() { o.sent.Add(1) }

// Stats are the outbox's counters.
type Stats struct {
	// Batches and Minutes are buffered now.
	Batches, Minutes int
	// Added, Dropped, Sent and Acked count batches since the start;
	// Sent counts every send, resends too.
	Added, Dropped, Sent, Acked int64
}

// Stats returns the outbox's counters.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	st := Stats{Batches: len(o.batches), Minutes: o.minutes}
	o.mu.Unlock()
	st.Added, st.Dropped, st.Sent, st.Acked = o.added.Load(), o.dropped.Load(), o.sent.Load(), o.acked.Load()
	return st
}

// Aggregator returns the aggregator the outbox collects from.
func (o *Outbox) Aggregator() *Aggregator { return o.agg }
