package analytics

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/sqlstore"
	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// minuteTraffic is the test traffic of minute i since t0: 1 to 5 fast requests, and every tenth
// minute one slow server error.
func minuteTraffic(i int) []sr {
	s := []sr{{svc: "a", route: "r", status: 200, n: 1 + i%5, latency: 1000, upstream: 800, reqSize: 10, respSize: 100}}
	if i%10 == 0 {
		s = append(s, sr{svc: "a", route: "r", status: 500, n: 1, latency: 100_000, upstream: 99_000, reqSize: 10, respSize: 10})
	}
	return s
}

func minuteCount(i int) int {
	n := 0
	for _, s := range minuteTraffic(i) {
		n += s.n
	}
	return n
}

func (f *fixture) count(table string, where string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.st.DB().QueryRow(f.st.Rebind(`SELECT COUNT(*) FROM `+table+` WHERE `+where), args...).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) runJob() JobStats {
	f.t.Helper()
	stats, err := f.an.RunJob(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return stats
}

// TestRollupsAndRetention injects 3 days of minute data through Ingest, one batch per hour with
// the clock at the end of that hour, running the job every 6 hours as a control plane would; then
// checks hour and day totals and percentiles, late data, and retention per level.
func TestRollupsAndRetention(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *sqlstore.Store) {
		f := newFixture(t, st, func(o *Options) { o.HourRetention = 72 * time.Hour })
		const days = 3
		for h := range days * 24 {
			b := &telemetry.Batch{}
			for m := range 60 {
				i := h*60 + m
				b.Minutes = append(b.Minutes, batch(t0.Add(time.Duration(i)*time.Minute), minuteTraffic(i)...).Minutes...)
			}
			f.clock.Set(t0.Add(time.Duration(h+1)*time.Hour + 30*time.Second))
			if res := f.ingest(f.group, "n1", int64(h+1), b); res != Stored {
				t.Fatalf("hour %d: %v", h, res)
			}
			if h%6 == 5 {
				f.runJob()
			}
		}
		f.clock.Set(t0.Add(days*24*time.Hour + 5*time.Minute))
		stats := f.runJob()
		if stats.Skipped || f.count("analytics_dirty", "level = 'hour'") != 0 || f.count("analytics_dirty", "level = 'day'") != 0 {
			t.Fatalf("job %+v left dirty marks", stats)
		}
		wantHour := func(h int) float64 {
			n := 0
			for m := range 60 {
				n += minuteCount(h*60 + m)
			}
			return float64(n)
		}
		checkHours := func(from, to int) {
			t.Helper()
			rows := f.query(Query{Start: t0, End: t0.Add(days * 24 * time.Hour), Granularity: Hour, ByTime: true, Metrics: []Metric{RequestCount}})
			if len(rows) != days*24 {
				t.Fatalf("%d hour rows", len(rows))
			}
			for h, r := range rows {
				want := 0.0
				if h >= from && h < to {
					want = wantHour(h)
				}
				if r.Values[0] != want {
					t.Fatalf("hour %d: %v requests, want %v", h, r.Values[0], want)
				}
			}
		}
		checkDays := func(extra float64) {
			t.Helper()
			rows := f.query(Query{Start: t0, End: t0.Add(days * 24 * time.Hour), Granularity: Day, ByTime: true,
				Metrics: []Metric{RequestCount, ResponseLatencyP50, ResponseLatencyP99, ServerErrorRate}})
			for d, r := range rows {
				want := 0.0
				for h := d * 24; h < d*24+24; h++ {
					want += wantHour(h)
				}
				if d == 2 {
					want += extra
				}
				// 1 in 31 requests is a slow 500: p99 is 100 ms, p50 1 ms.
				if r.Values[0] != want || !near(r.Values[1], 1) || !near(r.Values[2], 100) || r.Values[3] != 144/want {
					t.Fatalf("day %d: %v, want %v requests, p50 1 ms, p99 100 ms, 5XX rate %v", d, r.Values, want, 144/want)
				}
			}
			if len(rows) != days {
				t.Fatalf("%d day rows", len(rows))
			}
		}
		checkHours(0, days*24)
		checkDays(0)
		// Minute retention: minutes before the hour 48 h ago are gone, hours and days stay.
		cut := t0.Add(24 * time.Hour).Unix()
		if n := f.count("analytics_minutes", "bucket < ?", cut); n != 0 {
			t.Errorf("%d minute rows older than the minute retention", n)
		}
		if n := f.count("analytics_minutes", "bucket >= ?", cut); n != 48*60+48*6 {
			t.Errorf("%d minute rows within the minute retention, want %d", n, 48*60+48*6)
		}
		if n := f.count("analytics_hours", "1 = 1"); n != days*24*2 {
			t.Errorf("%d hour rows, want %d", n, days*24*2)
		}
		if n := f.count("analytics_days", "1 = 1"); n != days*2 {
			t.Errorf("%d day rows, want %d", n, days*2)
		}
		if total(f.query(Query{Start: t0, End: t0.Add(time.Hour), Granularity: Minute, Metrics: []Metric{RequestCount}})) != 0 {
			t.Error("minute query of a deleted hour has data")
		}

		// Late data for a rolled hour shows at once (its hour is read from minutes while dirty)
		// and is rolled again by the next run.
		late := t0.Add(60*time.Hour + 7*time.Minute)
		f.ingest(f.group, "n2", 1, batch(late, sr{svc: "a", status: 200, n: 7, latency: 1000, reqSize: 1, respSize: 1}))
		lateHour := Query{Start: late.Truncate(time.Hour), End: late.Truncate(time.Hour).Add(time.Hour), Granularity: Hour, Metrics: []Metric{RequestCount}}
		if got := total(f.query(lateHour)); got != wantHour(60)+7 {
			t.Fatalf("late data before the rollup: %v, want %v", got, wantHour(60)+7)
		}
		checkDays(7)
		f.clock.Set(f.clock.Now().Add(5 * time.Minute))
		if stats := f.runJob(); stats.Hours != 1 || stats.Days != 1 {
			t.Errorf("re-roll of late data: %+v, want 1 hour and 1 day", stats)
		}
		if got := total(f.query(lateHour)); got != wantHour(60)+7 {
			t.Fatalf("late data after the rollup: %v", got)
		}
		checkDays(7)

		// Two days later: hours older than the hour retention (72h, from the start of that day)
		// are gone, days stay.
		f.clock.Set(t0.Add(5*24*time.Hour + 5*time.Minute))
		f.runJob()
		if n := f.count("analytics_hours", "bucket < ?", t0.Add(2*24*time.Hour).Unix()); n != 0 {
			t.Errorf("%d hour rows older than the hour retention", n)
		}
		if n := f.count("analytics_minutes", "1 = 1"); n != 0 {
			t.Errorf("%d minute rows after 5 days", n)
		}
		// Batch records are kept 49 h (minute retention plus an hour): the last two stay.
		if n, all := f.count("analytics_batches", "received_at < ?", t0.Add(72*time.Hour).Unix()), f.count("analytics_batches", "1 = 1"); n != 0 || all != 2 {
			t.Errorf("%d batch records past their retention, %d in all (want 0 and 2)", n, all)
		}
		checkDays(7)
	})
}

// TestJobRunsOnce runs the job while another store (process) on the same database is inside it:
// the job then skips, and runs once that one is done.
func TestJobRunsOnce(t *testing.T) {
	st := storetest.Open(t, "postgres")
	f := newFixture(t, st, nil)
	ctx := context.Background()
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := st.Exclusive(ctx, "analytics-rollup", func(context.Context, *sql.Conn) error {
			close(inside)
			<-release
			return nil
		})
		done <- err
	}()
	<-inside
	f.ingest(f.group, "n1", 1, batch(t0.Add(10*time.Hour), sr{svc: "a", status: 200, n: 1, latency: 1}))
	if stats := f.runJob(); !stats.Skipped || stats.Hours != 0 {
		t.Fatalf("job ran while another process held the lock: %+v", stats)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stats := f.runJob(); stats.Skipped || stats.Hours != 1 {
		t.Fatalf("job after the lock was released: %+v", stats)
	}
}
