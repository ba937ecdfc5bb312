// Package telemetry is the payload of the cluster link's analytics
// telemetry frames (schema "gantry.analytics.v1", protocol version 2, see
// package wire): closed per-minute aggregates of a runtime's proxied
// requests, and the log-linear histogram both sides use for latencies and
// sizes.
//
// A batch carries only entity ids (service, route, consumer), status codes
// and numbers: never a path, query string, header, body, client address or
// credential. Both the runtime (which builds batches) and the control plane
// (which merges and stores them) import this package; it imports neither.
package telemetry

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Schema is the value of wire.Telemetry.Schema for analytics batches.
const Schema = "gantry.analytics.v1"

// OtherID is the service, route and consumer id of the overflow series: the
// requests of a minute that arrived after the runtime's series cap for that
// minute was reached. Their status code is kept.
const OtherID = "other"

// Limits a decoder enforces on a batch; a runtime never builds more.
const (
	// MaxMinutesPerBatch bounds Batch.Minutes.
	MaxMinutesPerBatch = 120
	// MaxSeriesPerMinute bounds Minute.Series.
	MaxSeriesPerMinute = 100_000
	// MaxIDLen bounds an id's length in bytes (UUIDs are 36).
	MaxIDLen = 64
)

// ErrInvalid is wrapped by every validation error of [Batch.Validate].
var ErrInvalid = errors.New("invalid analytics batch")

// Batch is the payload of one analytics telemetry frame: closed minutes,
// oldest first. A minute of one runtime may be split over several batches
// (for example around a restart); the control plane adds them up.
type Batch struct {
	// Minutes are closed minute buckets; at most MaxMinutesPerBatch.
	Minutes []Minute `json:"minutes"`
}

// Minute is one runtime's traffic in one wall-clock minute (UTC).
type Minute struct {
	// Start is the minute's first second, Unix seconds; a multiple of 60.
	Start int64 `json:"start"`
	// Series are the minute's aggregates, one per (service, route,
	// consumer, status); at most MaxSeriesPerMinute.
	Series []Series `json:"series"`
	// OverflowRequests counts the requests recorded in the OtherID series
	// because the series cap of the minute was reached.
	OverflowRequests int64 `json:"overflow_requests,omitempty"`
}

// StartTime is Start as a time.
func (m *Minute) StartTime() time.Time { return time.Unix(m.Start, 0).UTC() }

// Series aggregates the requests of one minute that share a service, route,
// consumer and status code. Empty ids mean "none" (no route matched, no
// consumer identified); OtherID marks the overflow series.
type Series struct {
	Service  string `json:"service,omitempty"`
	Route    string `json:"route,omitempty"`
	Consumer string `json:"consumer,omitempty"`
	// Status is the response status code sent to the client, 100..599.
	Status int `json:"status"`
	// Count is the number of requests; > 0.
	Count int64 `json:"count"`
	// RequestBytes and ResponseBytes are summed body sizes in bytes.
	RequestBytes  int64 `json:"request_bytes"`
	ResponseBytes int64 `json:"response_bytes"`
	// LatencySum is the summed total latency in microseconds (for the
	// average; the histograms give percentiles).
	LatencySum int64 `json:"latency_sum"`
	// Latency is the total latency (request received to response sent),
	// Upstream the time waiting for the upstream's response head (only
	// requests that reached an upstream), Gateway total minus upstream;
	// all in microseconds.
	Latency  Histogram `json:"latency"`
	Upstream Histogram `json:"upstream_latency"`
	Gateway  Histogram `json:"gateway_latency"`
	// RequestSize and ResponseSize are body sizes in bytes.
	RequestSize  Histogram `json:"request_size"`
	ResponseSize Histogram `json:"response_size"`
}

// Validate checks the bounds and invariants a control plane relies on
// before storing a batch. Every error wraps ErrInvalid.
func (b *Batch) Validate() error {
	if len(b.Minutes) > MaxMinutesPerBatch {
		return fmt.Errorf("%w: %d minutes, at most %d", ErrInvalid, len(b.Minutes), MaxMinutesPerBatch)
	}
	for i := range b.Minutes {
		m := &b.Minutes[i]
		if m.Start <= 0 || m.Start%60 != 0 {
			return fmt.Errorf("%w: minute %d starts at %d, not a positive multiple of 60", ErrInvalid, i, m.Start)
		}
		if len(m.Series) > MaxSeriesPerMinute {
			return fmt.Errorf("%w: minute %d has %d series, at most %d", ErrInvalid, i, len(m.Series), MaxSeriesPerMinute)
		}
		if m.OverflowRequests < 0 {
			return fmt.Errorf("%w: minute %d: negative overflow_requests", ErrInvalid, i)
		}
		for j := range m.Series {
			if err := m.Series[j].validate(); err != nil {
				return fmt.Errorf("%w: minute %d, series %d: %w", ErrInvalid, i, j, err)
			}
		}
	}
	return nil
}

func (s *Series) validate() error {
	for _, id := range []string{s.Service, s.Route, s.Consumer} {
		if len(id) > MaxIDLen {
			return fmt.Errorf("id of %d bytes, at most %d", len(id), MaxIDLen)
		}
	}
	if s.Status < 100 || s.Status > 599 {
		return fmt.Errorf("status %d out of 100..599", s.Status)
	}
	if s.Count <= 0 || s.RequestBytes < 0 || s.ResponseBytes < 0 || s.LatencySum < 0 {
		return errors.New("count must be positive and sums non-negative")
	}
	for _, h := range []*Histogram{&s.Latency, &s.Gateway, &s.RequestSize, &s.ResponseSize} {
		if h.Count() != uint64(s.Count) {
			return fmt.Errorf("a histogram holds %d values for %d requests", h.Count(), s.Count)
		}
	}
	if s.Upstream.Count() > uint64(s.Count) {
		return fmt.Errorf("upstream histogram holds %d values for %d requests", s.Upstream.Count(), s.Count)
	}
	return nil
}

// Decode parses and validates a batch payload.
func Decode(payload []byte) (*Batch, error) {
	var b Batch
	if err := json.Unmarshal(payload, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return &b, nil
}
