package analytics

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// Histogram columns, in the order of row.hists.
const (
	histLatency = iota
	histUpstream
	histGateway
	histRequestSize
	histResponseSize
	numHists
)

// histColumns are the histogram columns of the analytics tables, indexed like row.hists.
var histColumns = [numHists]string{"latency", "upstream", "gateway", "request_size", "response_size"}

// seriesKey identifies a row within one (group, bucket).
type seriesKey struct {
	node, service, route, consumer string
	status                         int
}

// row is one row of any of the three levels: counts, sums and histograms of the requests of one
// series in one bucket.
type row struct {
	requests, requestBytes, responseBytes int64
	latencySum                            int64 // microseconds
	hists                                 [numHists]telemetry.Histogram
}

// add merges o into r.
func (r *row) add(o *row) {
	r.requests += o.requests
	r.requestBytes += o.requestBytes
	r.responseBytes += o.responseBytes
	r.latencySum += o.latencySum
	for i := range r.hists {
		r.hists[i].Merge(&o.hists[i])
	}
}

// addSeries merges a batch series into r.
func (r *row) addSeries(s *telemetry.Series) {
	r.requests += s.Count
	r.requestBytes += s.RequestBytes
	r.responseBytes += s.ResponseBytes
	r.latencySum += s.LatencySum
	r.hists[histLatency].Merge(&s.Latency)
	r.hists[histUpstream].Merge(&s.Upstream)
	r.hists[histGateway].Merge(&s.Gateway)
	r.hists[histRequestSize].Merge(&s.RequestSize)
	r.hists[histResponseSize].Merge(&s.ResponseSize)
}

// decodeHists reads the histogram blobs of a stored row.
func (r *row) decodeHists(blobs *[numHists][]byte) error {
	for i := range blobs {
		if _, err := r.hists[i].ReadBinary(blobs[i]); err != nil {
			return fmt.Errorf("stored %s histogram: %w", histColumns[i], err)
		}
	}
	return nil
}

// rowColumns are the columns every level's table has, in insert order.
const rowColumns = `group_id, bucket, node_id, service_id, route_id, consumer_id, status, requests, request_bytes, response_bytes, latency_sum, latency, upstream, gateway, request_size, response_size`

const numRowColumns = 16

// insertChunk is how many rows one INSERT statement carries (16 parameters each; well below
// SQLite's 32,766 and PostgreSQL's 65,535 parameters).
const insertChunk = 200

// keyedRow is a row with its full key, for inserting.
type keyedRow struct {
	bucket int64
	key    seriesKey
	row    *row
}

// insertRows writes rows into table with multi-row INSERT statements.
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, table, groupID string, rows []keyedRow) error {
	if len(rows) == 0 {
		return nil
	}
	var full string
	args := make([]any, 0, min(len(rows), insertChunk)*numRowColumns)
	for len(rows) > 0 {
		n := min(len(rows), insertChunk)
		args = args[:0]
		for i := range rows[:n] {
			kr := &rows[i]
			var blobs [numHists][]byte
			for h := range kr.row.hists {
				blobs[h] = kr.row.hists[h].AppendBinary(make([]byte, 0, 8+4*len(kr.row.hists[h].Bins())))
			}
			args = append(args, groupID, kr.bucket, kr.key.node, kr.key.service, kr.key.route, kr.key.consumer, kr.key.status,
				kr.row.requests, kr.row.requestBytes, kr.row.responseBytes, kr.row.latencySum,
				blobs[0], blobs[1], blobs[2], blobs[3], blobs[4])
		}
		var q string
		if n == insertChunk && full != "" {
			q = full
		} else {
			q = s.insertSQL(table, n)
			if n == insertChunk {
				full = q
			}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

func (s *Store) insertSQL(table string, n int) string {
	var b strings.Builder
	b.Grow(64 + n*50)
	b.WriteString("INSERT INTO " + table + " (" + rowColumns + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
	}
	return s.st.Rebind(b.String())
}
