package analytics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// JobStats says what one run of the job did.
type JobStats struct {
	// Skipped: another process held the job's lock; nothing was done.
	Skipped bool
	// Hours and Days are how many hour and day buckets (of any group) were rolled up.
	Hours, Days int
	// Deleted counts rows removed by retention, per table.
	Deleted map[string]int64
}

// Run runs RunJob every RollupInterval until ctx ends; failures are logged and retried on the
// next tick. It returns nil when ctx ends.
func (s *Store) Run(ctx context.Context) error {
	if s.opts.RollupInterval == 0 {
		return nil
	}
	t := time.NewTicker(s.opts.RollupInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.RunJob(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "analytics rollup failed; retrying on the next run", "err", err)
		}
	}
}

// RunJob rolls every closed dirty hour up from its minutes and every closed dirty day (whose hours
// are all rolled) from its hours, then applies retention: minutes older than the start of the
// hour MinuteRetention ago, hours older than the start of the day HourRetention ago and days older
// than the start of the day DayRetention ago are deleted, except buckets still marked dirty; and
// batch records older than BatchRetention. On PostgreSQL it runs only if no other process is
// running it (Skipped is then set). Each bucket is rolled in its own transaction.
func (s *Store) RunJob(ctx context.Context) (JobStats, error) {
	stats := JobStats{Deleted: map[string]int64{}}
	ran, err := s.st.Exclusive(ctx, "analytics-rollup", func(ctx context.Context, conn *sql.Conn) error {
		return s.runJob(ctx, conn, &stats)
	})
	if err != nil {
		return stats, fmt.Errorf("analytics job: %w", err)
	}
	stats.Skipped = !ran
	return stats, nil
}

// runJob is RunJob's work, on the connection that holds the job's lock.
func (s *Store) runJob(ctx context.Context, conn *sql.Conn, stats *JobStats) error {
	now := s.now().Unix()
	grace := int64(s.opts.RollupGrace.Seconds())

	hours, err := s.dirtyBuckets(ctx, conn, "hour", now-grace-hourSecs)
	if err != nil {
		return err
	}
	for _, d := range hours {
		if err := s.rollHour(ctx, conn, d); err != nil {
			return err
		}
		stats.Hours++
	}
	days, err := s.dirtyBuckets(ctx, conn, "day", now-grace-daySecs)
	if err != nil {
		return err
	}
	for _, d := range days {
		rolled, err := s.rollDay(ctx, conn, d)
		if err != nil {
			return err
		}
		if rolled {
			stats.Days++
		}
	}
	if err := s.retention(ctx, conn, now, stats.Deleted); err != nil {
		return err
	}
	if stats.Hours+stats.Days > 0 {
		s.log.DebugContext(ctx, "analytics rolled up", "hours", stats.Hours, "days", stats.Days, "deleted", stats.Deleted)
	}
	return nil
}

// dirtyMark is one row of analytics_dirty.
type dirtyMark struct {
	group   string
	bucket  int64
	version int64
}

// dirtyBuckets returns the marks of a level whose bucket starts at or before maxStart.
func (s *Store) dirtyBuckets(ctx context.Context, conn *sql.Conn, level string, maxStart int64) ([]dirtyMark, error) {
	rows, err := conn.QueryContext(ctx, s.st.Rebind(`SELECT group_id, bucket, version FROM analytics_dirty WHERE level = ? AND bucket <= ? ORDER BY bucket, group_id`), level, maxStart)
	if err != nil {
		return nil, fmt.Errorf("read dirty %ss: %w", level, err)
	}
	defer rows.Close()
	var out []dirtyMark
	for rows.Next() {
		var d dirtyMark
		if err := rows.Scan(&d.group, &d.bucket, &d.version); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// inTx runs fn in a transaction on conn.
func (s *Store) inTx(ctx context.Context, conn *sql.Conn, fn func(tx *sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return s.st.MapError(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error is the one to report
		return s.st.MapError(err)
	}
	return s.st.MapError(tx.Commit())
}

// rollHour recomputes the hour rows of d from its minutes, marks its day dirty and removes the
// mark if no ingest renewed it meanwhile (a renewed mark keeps the hour for the next run).
func (s *Store) rollHour(ctx context.Context, conn *sql.Conn, d dirtyMark) error {
	return s.inTx(ctx, conn, func(tx *sql.Tx) error {
		if gone, err := s.markGone(ctx, tx, "hour", d); gone || err != nil {
			return err
		}
		rows, err := s.aggregate(ctx, tx, "analytics_minutes", d.group, d.bucket, d.bucket+hourSecs)
		if err != nil {
			return err
		}
		if err := s.replace(ctx, tx, "analytics_hours", d.group, d.bucket, rows); err != nil {
			return err
		}
		if err := s.markDirty(ctx, tx, d.group, "day", floor(d.bucket, daySecs)); err != nil {
			return err
		}
		return s.unmark(ctx, tx, "hour", d)
	})
}

// rollDay recomputes the day rows of d from its hours, unless one of its hours is still dirty
// (then rolled is false and the mark stays).
func (s *Store) rollDay(ctx context.Context, conn *sql.Conn, d dirtyMark) (rolled bool, err error) {
	err = s.inTx(ctx, conn, func(tx *sql.Tx) error {
		if gone, err := s.markGone(ctx, tx, "day", d); gone || err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.st.Rebind(`SELECT COUNT(*) FROM analytics_dirty WHERE group_id = ? AND level = 'hour' AND bucket >= ? AND bucket < ?`),
			d.group, d.bucket, d.bucket+daySecs).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		rows, err := s.aggregate(ctx, tx, "analytics_hours", d.group, d.bucket, d.bucket+daySecs)
		if err != nil {
			return err
		}
		if err := s.replace(ctx, tx, "analytics_days", d.group, d.bucket, rows); err != nil {
			return err
		}
		rolled = true
		return s.unmark(ctx, tx, "day", d)
	})
	return rolled, err
}

// markGone reports whether a mark no longer exists (its group was deleted, or another run
// rolled it).
func (s *Store) markGone(ctx context.Context, tx *sql.Tx, level string, d dirtyMark) (bool, error) {
	var v int64
	err := tx.QueryRowContext(ctx, s.st.Rebind(`SELECT version FROM analytics_dirty WHERE group_id = ? AND level = ? AND bucket = ?`), d.group, level, d.bucket).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	return false, err
}

// unmark deletes a dirty mark unless its version changed since it was read. On PostgreSQL an
// ingest that renewed the mark holds its row lock until it commits, so this waits for it and then
// sees the new version; the minutes it wrote are then rolled on the next run.
func (s *Store) unmark(ctx context.Context, tx *sql.Tx, level string, d dirtyMark) error {
	_, err := tx.ExecContext(ctx, s.st.Rebind(`DELETE FROM analytics_dirty WHERE group_id = ? AND level = ? AND bucket = ? AND version = ?`), d.group, level, d.bucket, d.version)
	if err != nil {
		return fmt.Errorf("clear dirty %s: %w", level, err)
	}
	return nil
}

// aggregate reads the rows of table for one group in [from, to) and merges them per series key.
func (s *Store) aggregate(ctx context.Context, tx *sql.Tx, table, groupID string, from, to int64) (map[seriesKey]*row, error) {
	rs, err := tx.QueryContext(ctx, s.st.Rebind(`SELECT node_id, service_id, route_id, consumer_id, status, requests, request_bytes, response_bytes, latency_sum,
		latency, upstream, gateway, request_size, response_size FROM `+table+` WHERE group_id = ? AND bucket >= ? AND bucket < ?`), groupID, from, to)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rs.Close()
	out := map[seriesKey]*row{}
	var blobs [numHists][]byte
	for rs.Next() {
		var k seriesKey
		var r row
		if err := rs.Scan(&k.node, &k.service, &k.route, &k.consumer, &k.status, &r.requests, &r.requestBytes, &r.responseBytes, &r.latencySum,
			&blobs[0], &blobs[1], &blobs[2], &blobs[3], &blobs[4]); err != nil {
			return nil, err
		}
		if err := r.decodeHists(&blobs); err != nil {
			return nil, err
		}
		if acc := out[k]; acc != nil {
			acc.add(&r)
		} else {
			out[k] = &r
		}
	}
	return out, rs.Err()
}

// replace makes rows the whole content of (group, bucket) in table.
func (s *Store) replace(ctx context.Context, tx *sql.Tx, table, groupID string, bucket int64, rows map[seriesKey]*row) error {
	if _, err := tx.ExecContext(ctx, s.st.Rebind(`DELETE FROM `+table+` WHERE group_id = ? AND bucket = ?`), groupID, bucket); err != nil {
		return fmt.Errorf("clear %s: %w", table, err)
	}
	krs := make([]keyedRow, 0, len(rows))
	for k, r := range rows {
		krs = append(krs, keyedRow{bucket: bucket, key: k, row: r})
	}
	return s.insertRows(ctx, tx, table, groupID, krs)
}

// retention deletes what has outlived its level's retention, per group so that each delete is a
// range scan of the primary key. Buckets still marked dirty are kept: they are rolled first.
func (s *Store) retention(ctx context.Context, conn *sql.Conn, now int64, deleted map[string]int64) error {
	groups, err := s.groupIDs(ctx, conn)
	if err != nil {
		return err
	}
	minuteCut := floor(now-int64(s.opts.MinuteRetention.Seconds()), hourSecs)
	hourCut := floor(now-int64(s.opts.HourRetention.Seconds()), daySecs)
	dayCut := floor(now-int64(s.opts.DayRetention.Seconds()), daySecs)
	for _, g := range groups {
		for _, del := range []struct {
			table, level string
			cut, step    int64
		}{
			{"analytics_minutes", "hour", minuteCut, hourSecs},
			{"analytics_hours", "day", hourCut, daySecs},
			{"analytics_days", "", dayCut, daySecs},
		} {
			q := `DELETE FROM ` + del.table + ` WHERE group_id = ? AND bucket < ?`
			args := []any{g, del.cut}
			if del.level != "" {
				q += ` AND (bucket - bucket % ?) NOT IN (SELECT bucket FROM analytics_dirty WHERE group_id = ? AND level = ?)`
				args = append(args, del.step, g, del.level)
			}
			res, err := conn.ExecContext(ctx, s.st.Rebind(q), args...)
			if err != nil {
				return fmt.Errorf("retention of %s: %w", del.table, err)
			}
			n, _ := res.RowsAffected()
			deleted[del.table] += n
		}
	}
	res, err := conn.ExecContext(ctx, s.st.Rebind(`DELETE FROM analytics_batches WHERE received_at < ?`), now-int64(s.opts.BatchRetention.Seconds()))
	if err != nil {
		return fmt.Errorf("retention of analytics_batches: %w", err)
	}
	n, _ := res.RowsAffected()
	deleted["analytics_batches"] += n
	return nil
}

// groupIDs lists every runtime group.
func (s *Store) groupIDs(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT id FROM runtime_groups ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
