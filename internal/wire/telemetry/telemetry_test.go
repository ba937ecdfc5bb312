package telemetry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func series(status int, n int) Series {
	s := Series{Service: "s1", Route: "r1", Status: status, Count: int64(n)}
	for range n {
		s.Latency.Add(1500)
		s.Gateway.Add(100)
		s.Upstream.Add(1400)
		s.RequestSize.Add(0)
		s.ResponseSize.Add(20)
	}
	return s
}

func TestBatchRoundTripAndValidate(t *testing.T) {
	good := Batch{Minutes: []Minute{{Start: 1_800_000_000 - 1_800_000_000%60, Series: []Series{series(200, 3), series(404, 1)}}}}
	payload, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Minutes[0].Series[0]; got.Count != 3 || got.Latency.Count() != 3 || got.Latency.Quantile(0.5) != BucketValue(BucketOf(1500)) {
		t.Errorf("decoded %+v", got)
	}
	tests := []struct {
		name string
		mod  func(b *Batch)
		want string
	}{
		{"unaligned minute", func(b *Batch) { b.Minutes[0].Start++ }, "multiple of 60"},
		{"status out of range", func(b *Batch) { b.Minutes[0].Series[0].Status = 600 }, "status 600"},
		{"zero count", func(b *Batch) { b.Minutes[0].Series[1].Count = 0 }, "count must be positive"},
		{"histogram count mismatch", func(b *Batch) { b.Minutes[0].Series[0].Latency.Add(1) }, "histogram holds 4 values for 3"},
		{"more upstream values than requests", func(b *Batch) { b.Minutes[0].Series[1].Upstream.Add(1) }, "upstream histogram"},
		{"long id", func(b *Batch) { b.Minutes[0].Series[0].Consumer = strings.Repeat("x", MaxIDLen+1) }, "id of 65 bytes"},
		{"too many minutes", func(b *Batch) { b.Minutes = make([]Minute, MaxMinutesPerBatch+1) }, "minutes, at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Batch
			if err := json.Unmarshal(payload, &b); err != nil {
				t.Fatal(err)
			}
			tt.mod(&b)
			err := b.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := Decode([]byte(`{"minutes":[{"start":60,"series":[{"status":200,"count":1,"latency":[1,2,3]}]}]}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad histogram: %v", err)
	}
}
