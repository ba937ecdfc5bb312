package analytics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// IngestResult says what Ingest did with a batch. Every outcome but an error means the batch
// must be acknowledged: it is stored, or will never be.
type IngestResult int

// Outcomes of Ingest.
const (
	// Stored: the batch's minutes were added (minutes outside the accepted window dropped).
	Stored IngestResult = iota
	// Duplicate: a batch with this node id and seq was stored before; nothing was added.
	Duplicate
	// GroupGone: the group does not exist (any more); the batch is discarded.
	GroupGone
)

// Ingest stores one analytics batch of a node of a group, in one transaction: it records
// (nodeID, seq), adds every minute's series to the minute rows of (group, minute, node) (merging
// with what earlier batches stored for the same minute) and marks the minutes' hours dirty. A
// batch whose (nodeID, seq) was stored before changes nothing. Minutes older than the accepted
// window (the start of the hour after now minus MinuteRetention) or more than FutureTolerance
// ahead are dropped. seq must be positive; b must have passed telemetry's validation.
func (s *Store) Ingest(ctx context.Context, groupID, nodeID string, seq int64, b *telemetry.Batch) (IngestResult, error) {
	if seq <= 0 {
		return 0, fmt.Errorf("%w: batch seq %d is not positive", ErrInvalid, seq)
	}
	if nodeID == "" || groupID == "" {
		return 0, fmt.Errorf("%w: group and node ids are required", ErrInvalid)
	}
	now := s.now().Unix()
	lo := floor(now-int64(s.opts.MinuteRetention.Seconds()), hourSecs) + hourSecs
	hi := now + int64(FutureTolerance.Seconds())

	// Merge the batch per minute first: a batch may repeat a series key.
	type minute struct {
		start int64
		rows  map[seriesKey]*row
	}
	var minutes []minute
	dropped := 0
	for i := range b.Minutes {
		m := &b.Minutes[i]
		if m.Start < lo || m.Start > hi {
			dropped++
			continue
		}
		var cur *minute
		for j := range minutes {
			if minutes[j].start == m.Start {
				cur = &minutes[j]
			}
		}
		if cur == nil {
			minutes = append(minutes, minute{start: m.Start, rows: make(map[seriesKey]*row, len(m.Series))})
			cur = &minutes[len(minutes)-1]
		}
		for j := range m.Series {
			se := &m.Series[j]
			k := seriesKey{node: nodeID, service: se.Service, route: se.Route, consumer: se.Consumer, status: se.Status}
			r := cur.rows[k]
			if r == nil {
				r = &row{}
				cur.rows[k] = r
			}
			r.addSeries(se)
		}
	}
	slices.SortFunc(minutes, func(a, b minute) int { return int(a.start - b.start) })
	if dropped > 0 {
		s.log.DebugContext(ctx, "dropped analytics minutes outside the accepted window", "group", groupID, "node", nodeID, "seq", seq, "minutes", dropped)
	}

	result := Stored
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, s.st.Rebind(`SELECT 1 FROM runtime_groups WHERE id = ?`), groupID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			result = GroupGone
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up group: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.st.Rebind(`INSERT INTO analytics_batches (node_id, seq, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`), nodeID, seq, now)
		if err != nil {
			return fmt.Errorf("record batch: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			result = Duplicate
			return nil
		}
		var hours []int64
		for _, m := range minutes {
			if err := s.storeMinute(ctx, tx, groupID, nodeID, m.start, m.rows); err != nil {
				return err
			}
			if h := floor(m.start, hourSecs); !slices.Contains(hours, h) {
				hours = append(hours, h)
			}
		}
		// Marks are taken in increasing order, so concurrent ingests never deadlock on them.
		slices.Sort(hours)
		for _, h := range hours {
			if err := s.markDirty(ctx, tx, groupID, "hour", h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store analytics batch %d of node %s: %w", seq, nodeID, err)
	}
	return result, nil
}

// storeMinute adds rows to the minute rows of (group, start, node): rows whose key is already
// stored (the minute arrived split over several batches) are merged and rewritten, the others
// inserted.
func (s *Store) storeMinute(ctx context.Context, tx *sql.Tx, groupID, nodeID string, start int64, rows map[seriesKey]*row) error {
	merged, err := s.mergeStored(ctx, tx, groupID, nodeID, start, rows)
	if err != nil {
		return err
	}
	for _, m := range merged {
		if _, err := tx.ExecContext(ctx, s.st.Rebind(`DELETE FROM analytics_minutes WHERE group_id = ? AND bucket = ? AND node_id = ? AND service_id = ? AND route_id = ? AND consumer_id = ? AND status = ?`),
			groupID, start, nodeID, m.key.service, m.key.route, m.key.consumer, m.key.status); err != nil {
			return fmt.Errorf("replace merged minute row: %w", err)
		}
	}
	fresh := make([]keyedRow, 0, len(rows)+len(merged))
	for k, r := range rows {
		fresh = append(fresh, keyedRow{bucket: start, key: k, row: r})
	}
	fresh = append(fresh, merged...)
	return s.insertRows(ctx, tx, "analytics_minutes", groupID, fresh)
}

// mergeStored reads the stored rows of (group, start, node) whose key is also in rows, merges
// rows' data into them, removes those keys from rows and returns the merged rows.
func (s *Store) mergeStored(ctx context.Context, tx *sql.Tx, groupID, nodeID string, start int64, rows map[seriesKey]*row) ([]keyedRow, error) {
	existing, err := tx.QueryContext(ctx, s.st.Rebind(`SELECT service_id, route_id, consumer_id, status, requests, request_bytes, response_bytes, latency_sum,
		latency, upstream, gateway, request_size, response_size FROM analytics_minutes WHERE group_id = ? AND bucket = ? AND node_id = ?`), groupID, start, nodeID)
	if err != nil {
		return nil, fmt.Errorf("read stored minute: %w", err)
	}
	defer existing.Close()
	var merged []keyedRow
	for existing.Next() {
		k := seriesKey{node: nodeID}
		var old row
		var blobs [numHists][]byte
		if err := existing.Scan(&k.service, &k.route, &k.consumer, &k.status, &old.requests, &old.requestBytes, &old.responseBytes, &old.latencySum,
			&blobs[0], &blobs[1], &blobs[2], &blobs[3], &blobs[4]); err != nil {
			return nil, err
		}
		r, ok := rows[k]
		if !ok {
			continue
		}
		if err := old.decodeHists(&blobs); err != nil {
			return nil, err
		}
		old.add(r)
		merged = append(merged, keyedRow{bucket: start, key: k, row: &old})
		delete(rows, k)
	}
	return merged, existing.Err()
}

// markDirty marks (group, level, bucket) for the rollup job, renewing the mark's version when it
// exists (which also locks it until the transaction ends, see rollup).
func (s *Store) markDirty(ctx context.Context, tx *sql.Tx, groupID, level string, bucket int64) error {
	_, err := tx.ExecContext(ctx, s.st.Rebind(`INSERT INTO analytics_dirty (group_id, level, bucket, version) VALUES (?, ?, ?, 1)
		ON CONFLICT (group_id, level, bucket) DO UPDATE SET version = analytics_dirty.version + 1`), groupID, level, bucket)
	if err != nil {
		return fmt.Errorf("mark %s %d dirty: %w", level, bucket, err)
	}
	return nil
}
