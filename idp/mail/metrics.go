package mail

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Mailer's Prometheus collectors; Mailer.Register puts them
// on a registry. Every counter is by kind (an unknown Kind counts as
// "unknown", so the label set stays bounded).
type metrics struct {
	queued, sent, failed, retries, dropped *prometheus.CounterVec
	depth                                  prometheus.GaugeFunc
	duration                               *prometheus.HistogramVec
}

func newMetrics(depth func() int) *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keyward", Subsystem: "mail", Name: name, Help: help}, []string{"kind"})
	}
	return &metrics{
		queued:  counter("queued_total", "Mails accepted into the queue."),
		sent:    counter("sent_total", "Mails delivered (to the SMTP server or the outbox)."),
		failed:  counter("failed_total", "Mails given up on after their last attempt, or that could not be rendered."),
		retries: counter("retries_total", "Delivery attempts that failed and were retried."),
		dropped: counter("dropped_total", "Mails refused by Send because the queue was full or closed."),
		depth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "keyward", Subsystem: "mail", Name: "queue_depth", Help: "Mails waiting in the queue.",
		}, func() float64 { return float64(depth()) }),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "keyward", Subsystem: "mail", Name: "send_duration_seconds",
			Help:    "Time of one delivery attempt, by outcome (ok or error).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"outcome"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queued, m.sent, m.failed, m.retries, m.dropped, m.depth, m.duration}
}

// kindLabel bounds the kind label to the known kinds.
func kindLabel(k Kind) string {
	for _, known := range Kinds {
		if k == known {
			return string(k)
		}
	}
	return "unknown"
}
