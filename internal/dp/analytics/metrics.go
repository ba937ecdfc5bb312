package analytics

import (
	prom "github.com/prometheus/client_golang/prometheus"
)

// The outbox's Prometheus series; none has a label, so their number is
// fixed.
var (
	descOverflow = prom.NewDesc("gantry_analytics_overflow_requests_total",
		"Requests recorded in the overflow series because their minute's series cap was reached", nil, nil)
	descOpenSeries = prom.NewDesc("gantry_analytics_open_series",
		"Series slots in the minutes not yet collected", nil, nil)
	descBuffered = prom.NewDesc("gantry_analytics_buffered_batches",
		"Analytics batches waiting for the control plane's acknowledgement", nil, nil)
	descBufferedMinutes = prom.NewDesc("gantry_analytics_buffered_minutes",
		"Minutes of traffic (minute parts) in the buffered analytics batches", nil, nil)
	descDropped = prom.NewDesc("gantry_analytics_dropped_batches_total",
		"Analytics batches dropped unacknowledged: the buffer was full (or, a bug, the batch could not be encoded)", nil, nil)
	descSent = prom.NewDesc("gantry_analytics_sent_batches_total",
		"Analytics batches sent to the control plane, resends included", nil, nil)
	descAcked = prom.NewDesc("gantry_analytics_acked_batches_total",
		"Analytics batches the control plane acknowledged", nil, nil)
)

// Collector returns a Prometheus collector of the outbox's and its
// aggregator's series, read at scrape time:
//
//	gantry_analytics_overflow_requests_total  counter
//	gantry_analytics_open_series              gauge
//	gantry_analytics_buffered_batches         gauge
//	gantry_analytics_buffered_minutes         gauge
//	gantry_analytics_dropped_batches_total    counter
//	gantry_analytics_sent_batches_total       counter
//	gantry_analytics_acked_batches_total      counter
func (o *Outbox) Collector() prom.Collector { return collector{o} }

type collector struct{ o *Outbox }

func (c collector) Describe(ch chan<- *prom.Desc) {
	for _, d := range []*prom.Desc{descOverflow, descOpenSeries, descBuffered, descBufferedMinutes, descDropped, descSent, descAcked} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prom.Metric) {
	st := c.o.Stats()
	ch <- prom.MustNewConstMetric(descOverflow, prom.CounterValue, float64(c.o.agg.Overflowed()))
	ch <- prom.MustNewConstMetric(descOpenSeries, prom.GaugeValue, float64(c.o.agg.OpenSeries()))
	ch <- prom.MustNewConstMetric(descBuffered, prom.GaugeValue, float64(st.Batches))
	ch <- prom.MustNewConstMetric(descBufferedMinutes, prom.GaugeValue, float64(st.Minutes))
	ch <- prom.MustNewConstMetric(descDropped, prom.CounterValue, float64(st.Dropped))
	ch <- prom.MustNewConstMetric(descSent, prom.CounterValue, float64(st.Sent))
	ch <- prom.MustNewConstMetric(descAcked, prom.CounterValue, float64(st.Acked))
}
