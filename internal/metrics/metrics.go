// Package metrics defines hookrelay's Prometheus metrics, in one place so
// that names and labels stay consistent across the relay, the worker and the
// API. A process makes one registry (NewRegistry), hands it to each part as
// a prometheus.Registerer, and serves it at /metrics; each part takes its
// instruments from it with New. A nil registerer means metrics are off.
package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the instruments of one process.
type Metrics struct {
	EventsRelayed     prometheus.Counter
	DeliveriesCreated prometheus.Counter
	RelayBatches      prometheus.Counter
	RelayLag          prometheus.Gauge // age in seconds of the oldest unpublished event

	Deliveries        *prometheus.CounterVec   // by outcome: delivered, retry, failed, skipped, gone
	AttemptDuration   *prometheus.HistogramVec // by outcome
	RetriesScheduled  prometheus.Counter
	DeadLetters       prometheus.Counter
	UnknownDeliveries prometheus.Counter // stream entries whose delivery row was not found
	PoisonEntries     prometheus.Counter // entries moved aside after repeated processing errors

	DeliveriesParked   prometheus.Counter     // deliveries held back while their webhook's breaker is open
	DeliveriesDeferred *prometheus.CounterVec // by reason: rate_limit, max_in_flight, paused
	CircuitTransitions *prometheus.CounterVec // by transition: opened, reopened, closed, disabled
	Circuits           *prometheus.GaugeVec   // webhooks by breaker state (open, half_open), set by the reconciler

	// StreamLength and StreamPending are set by the reconciler for each
	// stream key, by shard ("0".."N-1"; a retired shard still being drained
	// keeps its number).
	StreamLength  *prometheus.GaugeVec
	StreamPending *prometheus.GaugeVec

	Reconciled     *prometheus.CounterVec // by reason: stale, redis_reset
	UnpublishedOld prometheus.Gauge
	Pruned         *prometheus.CounterVec // by table

	// DependencyErrors counts failed calls to Postgres or Redis that a loop
	// retries (by dependency and operation); only the first of a run is logged.
	DependencyErrors *prometheus.CounterVec
	// RedisLossDetected counts the times the reconciler found that Redis
	// lost the stream's data (by reason).
	RedisLossDetected *prometheus.CounterVec

	EventsEmitted prometheus.Counter // through the API's example endpoint
	HTTPRequests  *prometheus.CounterVec
}

// NewRegistry returns a registry with the Go and process collectors, for a
// process to register its parts' instruments on and to serve.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// New returns the instruments registered on reg. Parts of one process that
// share reg share the instruments: one already registered is reused. With a
// nil reg the instruments are registered nowhere (metrics off).
func New(reg prometheus.Registerer) *Metrics {
	if r, ok := reg.(*prometheus.Registry); ok && r == nil {
		reg = nil // a nil *Registry passed as a Registerer is off too
	}
	f := factory{reg}
	return &Metrics{
		EventsRelayed:     f.counter("hookrelay_relay_events_total", "Outbox events published by the relay."),
		DeliveriesCreated: f.counter("hookrelay_relay_deliveries_total", "Deliveries fanned out and put on the stream by the relay."),
		RelayBatches:      f.counter("hookrelay_relay_batches_total", "Batches claimed by the relay."),
		RelayLag:          f.gauge("hookrelay_relay_lag_seconds", "Age of the oldest unpublished outbox event."),
		Deliveries: f.counterVec("hookrelay_deliveries_total",
			"Delivery attempts by outcome (delivered, retry, failed, skipped, gone).", "outcome"),
		AttemptDuration: f.histogramVec("hookrelay_attempt_duration_seconds",
			"Duration of HTTP delivery attempts.", "outcome"),
		RetriesScheduled:  f.counter("hookrelay_retries_scheduled_total", "Retries scheduled as River jobs."),
		DeadLetters:       f.counter("hookrelay_dead_letters_total", "Deliveries failed after their last attempt."),
		UnknownDeliveries: f.counter("hookrelay_unknown_deliveries_total", "Stream entries whose delivery was not found in Postgres."),
		PoisonEntries:     f.counter("hookrelay_poison_entries_total", "Stream entries moved aside after repeated processing errors."),
		DeliveriesParked: f.counter("hookrelay_deliveries_parked_total",
			"Deliveries held back (parked) because their webhook's circuit breaker was open."),
		DeliveriesDeferred: f.counterVec("hookrelay_deliveries_deferred_total",
			"Deliveries moved to a later attempt, using none, by their webhook's flow control: rate_limit, max_in_flight, paused.", "reason"),
		CircuitTransitions: f.counterVec("hookrelay_circuit_transitions_total",
			"Changes of webhooks' endpoint health: opened, reopened (a probe failed), closed, disabled.", "transition"),
		Circuits: f.gaugeVec("hookrelay_webhook_circuits",
			"Webhooks whose circuit breaker is not closed, by state (open, half_open).", "state"),
		StreamLength: f.gaugeVec("hookrelay_stream_length", "Entries in the delivery stream, by shard.", "shard"),
		StreamPending: f.gaugeVec("hookrelay_stream_pending",
			"Entries read but not yet acknowledged by the consumer group, by shard.", "shard"),
		Reconciled: f.counterVec("hookrelay_reconciled_total",
			"Deliveries put back on the stream by the reconciler, by reason.", "reason"),
		UnpublishedOld: f.gauge("hookrelay_outbox_unpublished_stale", "Outbox events still unpublished after the reconcile threshold."),
		Pruned:         f.counterVec("hookrelay_pruned_rows_total", "Rows deleted by retention, by table.", "table"),
		DependencyErrors: f.counterVec("hookrelay_dependency_errors_total",
			"Failed calls to Postgres or Redis that were retried, by dependency and operation.", "dependency", "op"),
		RedisLossDetected: f.counterVec("hookrelay_redis_loss_detected_total",
			"Times the reconciler found that Redis lost the stream's data, by reason.", "reason"),
		EventsEmitted: f.counter("hookrelay_events_emitted_total", "Events emitted through the API."),
		HTTPRequests: f.counterVec("hookrelay_api_requests_total",
			"API requests by route pattern and status code.", "route", "code"),
	}
}

// Gatherer is reg when it can also be gathered (and served at /metrics),
// as a *prometheus.Registry can; ok is false when metrics are off.
func Gatherer(reg prometheus.Registerer) (g prometheus.Gatherer, ok bool) {
	if r, isRegistry := reg.(*prometheus.Registry); isRegistry && r == nil {
		return nil, false
	}
	g, ok = reg.(prometheus.Gatherer)
	return g, ok
}

type factory struct{ r prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	return register(f.r, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	return register(f.r, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(f.r, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(f.r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

func (f factory) histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	return register(f.r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: name, Help: help,
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, labels))
}

// register registers c on r and returns it, or returns the collector of the
// same description registered before.
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if r == nil {
		return c
	}
	err := r.Register(c)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(C); ok {
			return existing
		}
	}
	if err != nil {
		panic(fmt.Sprintf("metrics: register: %v", err)) // a programming error: names are fixed here
	}
	return c
}
