package analytics

import (
	"context"
	"math"
	"time"

	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// Traffic is a group's traffic over the last 24 hours.
type Traffic struct {
	// Requests counts the requests of the 24 hour buckets ending with the current hour.
	Requests int64
	// ErrorRate is the share (0–1) of those answered 4XX or 5XX; NaN without requests.
	ErrorRate float64
}

// Traffic24h returns the traffic of each group over the 24 hour buckets ending with the current
// one (time_range=24h), read with one query for all groups. Groups without requests are absent.
func (s *Store) Traffic24h(ctx context.Context, groupIDs []string) (map[string]Traffic, error) {
	out := make(map[string]Traffic, len(groupIDs))
	if len(groupIDs) == 0 {
		return out, nil
	}
	end := floor(s.now().Unix(), hourSecs) + hourSecs
	rows, err := s.Query(ctx, Query{GroupIDs: groupIDs, Start: time.Unix(end-24*hourSecs, 0), End: time.Unix(end, 0), Granularity: Hour,
		Dimensions: []Dimension{DimControlPlane}, Metrics: []Metric{RequestCount, ErrorRate}})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Values[0] > 0 {
			out[r.Dims[0]] = Traffic{Requests: int64(math.Round(r.Values[0])), ErrorRate: r.Values[1]}
		}
	}
	return out, nil
}

// IngestAnalytics stores a batch for the cluster link (cluster.Ingester): nil means the batch
// may be acknowledged (stored, a duplicate, or discarded for good because its group is gone).
func (s *Store) IngestAnalytics(ctx context.Context, groupID, nodeID string, seq int64, b *telemetry.Batch) error {
	res, err := s.Ingest(ctx, groupID, nodeID, seq, b)
	if err != nil {
		return err
	}
	switch res {
	case Duplicate:
		s.log.DebugContext(ctx, "analytics batch already stored", "group", groupID, "node", nodeID, "seq", seq)
	case GroupGone:
		s.log.InfoContext(ctx, "analytics batch of a deleted group discarded", "group", groupID, "node", nodeID, "seq", seq)
	}
	return nil
}
