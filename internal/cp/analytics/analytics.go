// Package analytics keeps the control plane's group analytics: it stores the per-minute
// aggregates runtime instances send over the cluster link (wire/telemetry batches), merged per
// group, node, service, route, consumer and status code; rolls minutes up into hours and hours
// into days; deletes each level after its retention; and answers queries over any of them.
//
// Tables (migration 0004): analytics_minutes, analytics_hours and analytics_days share one shape
// keyed (group, bucket, node, service, route, consumer, status) for range scans by group and time;
// analytics_batches remembers (node, seq) of stored batches so a resend is never counted twice;
// analytics_dirty marks the hours and days whose rollup is missing or stale.
//
// Consistency: ingest is one transaction per batch (dedupe row, minute rows, dirty marks). A
// minute that arrives split over several batches is added up, histograms merged. An hour is
// rolled once it has closed (plus RollupGrace), a day once it has closed and none of its hours is
// dirty; late data marks its hour again and the hour and its day are rolled again. Queries read
// the rolled-up level where it is current and the finer level for buckets still marked dirty, so
// answers never wait for the rollup job. Retention never deletes the rows of a bucket still
// marked dirty, and ingest discards minutes whose hour may already have lost rows to retention.
//
// Several control plane processes may ingest at once; the rollup and retention job runs in one
// of them at a time (a PostgreSQL advisory lock).
package analytics

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
)

// Retention and job defaults of Options.
const (
	// DefaultMinuteRetention keeps minute rows 48 hours.
	DefaultMinuteRetention = 48 * time.Hour
	// DefaultHourRetention keeps hour rows 90 days.
	DefaultHourRetention = 90 * 24 * time.Hour
	// DefaultDayRetention keeps day rows 2 years (730 days).
	DefaultDayRetention = 730 * 24 * time.Hour
	// DefaultRollupInterval is how often the rollup and retention job runs.
	DefaultRollupInterval = time.Minute
	// DefaultRollupGrace is how long after an hour (or day) has ended the job waits before
	// rolling it up, so that the batches runtimes flush every few seconds have arrived.
	DefaultRollupGrace = 2 * time.Minute
	// FutureTolerance is how far ahead of the control plane's clock a minute may start and still
	// be stored (runtime clocks may run ahead a little); later ones are discarded.
	FutureTolerance = time.Hour
)

// Bucket sizes of the three levels, in seconds.
const (
	minuteSecs = 60
	hourSecs   = 3600
	daySecs    = 86400
)

// Options configure New.
type Options struct {
	// Store is the database; required. Its migrations must include 0004_analytics.
	Store *sqlstore.Store
	// Logger receives ingest refusals and job failures; defaults to discarding them.
	Logger *slog.Logger
	// Now returns the current time; defaults to time.Now. Ingest cut-offs, rollups and
	// retention all read it, so tests control time with it.
	Now func() time.Time
	// MinuteRetention, HourRetention and DayRetention are how long rows of each level are kept;
	// zero takes the defaults. MinuteRetention is at least 2 hours, HourRetention at least
	// MinuteRetention plus a day (a day is re-rolled from its hours only while they all exist),
	// DayRetention at least a day.
	MinuteRetention, HourRetention, DayRetention time.Duration
	// BatchRetention is how long a stored batch's (node, seq) is remembered for deduplication;
	// zero means MinuteRetention plus an hour. It is at least MinuteRetention: a resend arriving
	// later carries only minutes older than MinuteRetention, which ingest discards anyway.
	BatchRetention time.Duration
	// RollupInterval is how often Run runs the rollup and retention job; zero takes
	// DefaultRollupInterval.
	RollupInterval time.Duration
	// RollupGrace: see DefaultRollupGrace. Negative means none.
	RollupGrace time.Duration
}

// Store is the analytics side of the database. Build it with New. Safe for concurrent use.
type Store struct {
	st   *sqlstore.Store
	log  *slog.Logger
	now  func() time.Time
	opts Options // immutable after New, defaults applied
}

// ErrInvalid is wrapped by the errors of calls with invalid arguments (queries, batches).
var ErrInvalid = errors.New("invalid analytics request")

// New checks opts and applies defaults.
func New(opts Options) (*Store, error) {
	if opts.Store == nil {
		return nil, errors.New("analytics: Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.MinuteRetention, DefaultMinuteRetention)
	def(&opts.HourRetention, DefaultHourRetention)
	def(&opts.DayRetention, DefaultDayRetention)
	def(&opts.BatchRetention, opts.MinuteRetention+time.Hour)
	def(&opts.RollupInterval, DefaultRollupInterval)
	def(&opts.RollupGrace, DefaultRollupGrace)
	opts.RollupGrace = max(opts.RollupGrace, 0)
	switch {
	case opts.MinuteRetention < 2*time.Hour:
		return nil, fmt.Errorf("analytics: minute retention %s is shorter than 2h", opts.MinuteRetention)
	case opts.HourRetention < opts.MinuteRetention+24*time.Hour:
		return nil, fmt.Errorf("analytics: hour retention %s must be at least the minute retention (%s) plus 24h", opts.HourRetention, opts.MinuteRetention)
	case opts.DayRetention < 24*time.Hour:
		return nil, fmt.Errorf("analytics: day retention %s is shorter than 24h", opts.DayRetention)
	case opts.BatchRetention < opts.MinuteRetention:
		return nil, fmt.Errorf("analytics: batch retention %s is shorter than the minute retention %s", opts.BatchRetention, opts.MinuteRetention)
	case opts.RollupInterval < 0:
		return nil, fmt.Errorf("analytics: negative rollup interval %s", opts.RollupInterval)
	}
	return &Store{st: opts.Store, log: opts.Logger.With("component", "analytics"), now: opts.Now, opts: opts}, nil
}

// floor rounds the Unix time t down to a multiple of step seconds.
func floor(t, step int64) int64 {
	r := t % step
	if r < 0 {
		r += step
	}
	return t - r
}
