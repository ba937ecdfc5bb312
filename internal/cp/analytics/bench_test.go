package analytics

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/cp/store/storetest"
	"github.com/gantry-gw/gantry/internal/wire/telemetry"
)

// benchSeries is n series of distinct services, each with a few hundred requests spread over
// several histogram buckets (as real traffic is).
func benchSeries(n int, prefix string) []telemetry.Series {
	out := make([]telemetry.Series, n)
	for i := range out {
		s := telemetry.Series{Service: fmt.Sprintf("%s-svc-%04d", prefix, i), Route: fmt.Sprintf("%s-route-%04d", prefix, i), Consumer: "c", Status: 200 + 100*(i%4)}
		for j := range 200 {
			lat := uint64(500 + (i*37+j*53)%20000)
			s.Count++
			s.LatencySum += int64(lat)
			s.RequestBytes += 100
			s.ResponseBytes += int64(1000 + j)
			s.Latency.Add(lat)
			s.Upstream.Add(lat * 9 / 10)
			s.Gateway.Add(lat / 10)
			s.RequestSize.Add(100)
			s.ResponseSize.Add(uint64(1000 + j))
		}
		out[i] = s
	}
	return out
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestMinute stores one minute of 100 instances x 1,000 series (100 batches through
// Ingest, as the cluster link would). One op is one minute of data; cpu-s/op is this process's
// CPU time (the control plane's; PostgreSQL's own server CPU is not included).
func BenchmarkIngestMinute(b *testing.B) {
	const instances, perInstance = 100, 1000
	for _, d := range storetest.Dialects {
		b.Run(d, func(b *testing.B) {
			f := newFixture(b, storetest.Open(b, d), nil)
			series := benchSeries(perInstance, "x")
			start := t0.Add(time.Hour)
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				m := start.Add(time.Duration(i) * time.Minute)
				f.clock.Set(m.Add(70 * time.Second))
				for n := range instances {
					batch := &telemetry.Batch{Minutes: []telemetry.Minute{{Start: m.Unix(), Series: series}}}
					if _, err := f.an.Ingest(context.Background(), f.group, fmt.Sprintf("node-%03d", n), int64(i+1), batch); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(instances*perInstance), "rows/op")
		})
	}
}

// BenchmarkQuery30Days answers a 30-day query at day granularity by gateway_service with
// request_count and response_latency_p99 over 1,000 services, from day rollups seeded through
// Ingest (one minute of 1,000 services per day) and the rollup job.
func BenchmarkQuery30Days(b *testing.B) {
	const services, days = 1000, 30
	for _, d := range storetest.Dialects {
		b.Run(d, func(b *testing.B) {
			f := newFixture(b, storetest.Open(b, d), func(o *Options) {
				o.MinuteRetention = (days + 2) * 24 * time.Hour
				o.HourRetention = (days + 3) * 24 * time.Hour
			})
			series := benchSeries(services, "q")
			f.clock.Set(t0.Add(days * 24 * time.Hour))
			for day := range days {
				m := t0.Add(time.Duration(day)*24*time.Hour + 12*time.Hour)
				if _, err := f.an.Ingest(context.Background(), f.group, "node-1", int64(day+1), &telemetry.Batch{Minutes: []telemetry.Minute{{Start: m.Unix(), Series: series}}}); err != nil {
					b.Fatal(err)
				}
			}
			f.clock.Set(t0.Add(days*24*time.Hour + 5*time.Minute))
			if stats := f.runJob(); stats.Days != days {
				b.Fatalf("seeding rolled %+v", stats)
			}
			q := Query{GroupIDs: []string{f.group}, Start: t0, End: t0.Add(days * 24 * time.Hour), Granularity: Day, ByTime: true,
				Dimensions: []Dimension{DimService}, Metrics: []Metric{RequestCount, ResponseLatencyP99}}
			b.ResetTimer()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/op") }()
			for range b.N {
				rows, err := f.an.Query(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				if len(rows) != services*days || rows[0].Values[0] != 200 {
					b.Fatalf("%d rows, first %+v", len(rows), rows[0])
				}
			}
		})
	}
}
