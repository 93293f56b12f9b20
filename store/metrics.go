package store

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of one writer; every series carries the table it writes to.
type metrics struct {
	written       prometheus.Counter
	dropped       prometheus.Counter
	flushErrors   prometheus.Counter
	flushDuration prometheus.Histogram
	queue         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, table string) *metrics {
	labels := prometheus.Labels{"table": table}
	return &metrics{
		written: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_store_rows_written_total", ConstLabels: labels,
			Help: "Rows inserted into ClickHouse.",
		})),
		dropped: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_store_rows_dropped_total", ConstLabels: labels,
			Help: "Rows given up: rejections when their queue is full, any table at the shutdown deadline.",
		})),
		flushErrors: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_store_flush_errors_total", ConstLabels: labels,
			Help: "Failed ClickHouse inserts (each is retried).",
		})),
		flushDuration: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tally_store_flush_duration_seconds", ConstLabels: labels,
			Help: "Duration of one ClickHouse insert, failed ones included.",
			// 5 ms (a small batch on loopback) to 20 s (a 40,000-row batch
			// against a struggling server), doubling.
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 13),
		})),
		queue: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tally_store_queue_rows", ConstLabels: labels,
			Help: "Rows accepted and not yet written to ClickHouse.",
		})),
	}
}

// register adds c to reg (which may be nil); a collector already registered
// under the same name and labels (a second writer for the same table) is
// shared rather than an error.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("register store metrics: %v", err))
	}
	return c
}
