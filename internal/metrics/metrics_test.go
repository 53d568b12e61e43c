package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/internal/metrics"
)

// The relay, the worker and the API of one `run` process each take their
// instruments from the one registry: they must count on the same series.
func TestNew_PartsOfOneProcessShareTheirInstruments(t *testing.T) {
	reg := metrics.NewRegistry()
	relay, worker := metrics.New(reg), metrics.New(reg)
	relay.DependencyErrors.WithLabelValues("redis", "x").Inc()
	worker.DependencyErrors.WithLabelValues("redis", "x").Inc()
	if got := testutil.ToFloat64(relay.DependencyErrors.WithLabelValues("redis", "x")); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "hookrelay_dependency_errors_total"); err != nil || n != 1 {
		t.Fatalf("series gathered: %d (%v), want 1", n, err)
	}
}

func TestNew_NilRegistererIsOff(t *testing.T) {
	m := metrics.New(nil)
	m.EventsRelayed.Inc() // counts, registered nowhere
	if got := testutil.ToFloat64(m.EventsRelayed); got != 1 {
		t.Fatalf("counter = %v", got)
	}
	var _ prometheus.Registerer = metrics.NewRegistry()
}

// A nil *prometheus.Registry handed over as a Registerer is off, not a panic.
func TestNew_NilRegistryIsOff(t *testing.T) {
	var reg *prometheus.Registry
	m := metrics.New(reg)
	m.EventsRelayed.Inc()
	if _, ok := metrics.Gatherer(reg); ok {
		t.Fatal("a nil registry can be gathered")
	}
	if _, ok := metrics.Gatherer(metrics.NewRegistry()); !ok {
		t.Fatal("a registry cannot be gathered")
	}
}
