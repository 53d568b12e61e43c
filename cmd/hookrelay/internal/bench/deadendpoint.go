package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
)

// deadPhase is the outcome of one phase of the dead-endpoint scenario, for
// the healthy endpoint and, in phase B, the dead one.
type deadPhase struct {
	elapsed    time.Duration // worker start → the healthy endpoint's last first receipt
	throughput float64       // the healthy endpoint's deliveries/s over elapsed
	longestGap time.Duration // longest pause between two of its receipts meanwhile
	lat        []time.Duration
	p          paced
	// Phase B only: what the dead endpoint cost.
	deadRequests int // requests it received over the whole phase
	deadAttempts int // attempts recorded for it
	parked       int // its deliveries parked at the end
}

// neighbour is who shares the stream with the healthy endpoint in a phase
// of the dead-endpoint scenario.
type neighbour int

const (
	alone       neighbour = iota // phase A: the healthy endpoint alone
	healthyNext                  // phase H: a second healthy endpoint
	deadNext                     // phase B: an endpoint that never answers
)

func (n neighbour) tag() string { return [...]string{"a", "h", "b"}[n] }

func (n neighbour) what() string {
	return [...]string{"A, healthy endpoint alone", "H, healthy endpoint next to a second healthy one",
		"B, healthy endpoint next to a dead one"}[n]
}

// runDeadEndpoint measures what a dead endpoint costs a healthy one (issue
// 13): phase A delivers Deliveries to a healthy webhook alone, then measures
// commit → receipt latency at Rate for FlowDuration; phase B does the same
// with a second webhook of the same project, subscribed to the same events,
// whose endpoint accepts every request and never answers (each attempt hangs
// until the worker's default 10 s timeout); phase H with a second webhook
// whose endpoint is healthy, the baseline for the same work: twice the
// stream entries. Only the circuit breaker and the slots' shares, at their
// defaults, protect the healthy endpoint in B. A, H and B alternate
// FlowRounds times; the ratios compare the medians.
func (e *env) runDeadEndpoint(ctx context.Context) error {
	s := e.cfg.Sizes
	phases := map[neighbour][]deadPhase{}
	for r := 1; r <= s.FlowRounds; r++ {
		for _, n := range []neighbour{alone, healthyNext, deadNext} {
			if r > 1 || n != alone {
				if err := e.reset(ctx); err != nil {
					return err
				}
			}
			ph, err := e.deadEndpointPhase(ctx, n)
			if err != nil {
				return fmt.Errorf("phase %s, round %d: %w", n.tag(), r, err)
			}
			e.reportDeadPhase(fmt.Sprintf("%s%d", n.tag(), r), n, ph)
			phases[n] = append(phases[n], ph)
		}
	}
	e.reportDeadRatios("ratio", alone, phases[alone], phases[deadNext])
	e.reportDeadRatios("ratio_h", healthyNext, phases[healthyNext], phases[deadNext])
	return nil
}

// deadEndpointPhase runs one phase, with n beside the healthy endpoint.
func (e *env) deadEndpointPhase(ctx context.Context, n neighbour) (ph deadPhase, err error) {
	s := e.cfg.Sizes
	fx, err := e.fixture(ctx)
	if err != nil {
		return ph, err
	}
	defer fx.rcv.close()
	hooks := []hook{fx.hook}
	closeDead := func() {}
	var deadCount func() int
	var url string
	switch n {
	case deadNext:
		srv, err := newDeadReceiver()
		if err != nil {
			return ph, err
		}
		closeDead = sync.OnceFunc(srv.Close)
		defer closeDead()
		url, deadCount = srv.URL+"/hook", srv.Count
	case healthyNext:
		rcv, err := newReceiver()
		if err != nil {
			return ph, err
		}
		defer rcv.close()
		url = rcv.URL
	}
	if url != "" {
		second, err := e.webhookIn(ctx, fx.hook.Project, url)
		if err != nil {
			return ph, err
		}
		hooks = append(hooks, second)
	}
	if err := e.seedDeliveries(ctx, s.Deliveries, fx.key, hooks...); err != nil {
		return ph, err
	}
	start := time.Now()
	w, err := e.startWorker(ctx, fx.key, fx.group, nil)
	if err != nil {
		return ph, err
	}
	defer func() { err = errors.Join(err, w.stop(ctx)) }()
	// Cut the dead endpoint's hanging requests short before the worker
	// stops, so that it does not wait out their timeouts.
	defer closeDead()
	if err := fx.rcv.waitDistinct(ctx, s.Deliveries, backlogTimeout(s.Deliveries)); err != nil {
		return ph, fmt.Errorf("%w (%s)", err, e.diagnose(ctx, fx.key, fx.group))
	}
	ph.elapsed = time.Since(start)
	ph.throughput = float64(s.Deliveries) / ph.elapsed.Seconds()
	ph.longestGap = longestGap(start, fx.rcv.arrivals())

	appPool, stopEmitting, err := e.startEmitting(ctx, fx)
	if err != nil {
		return ph, err
	}
	defer stopEmitting()
	if ph.lat, ph.p, err = e.pacedLatency(ctx, fx.rcv, appPool, fx.hook.Project, emitGo, s.FlowDuration); err != nil {
		return ph, fmt.Errorf("%w (%s)", err, e.diagnose(ctx, fx.key, fx.group))
	}
	if n != deadNext {
		return ph, nil
	}
	ph.deadRequests = deadCount()
	err = e.pool.QueryRow(ctx, `SELECT
    (SELECT count(*) FROM hookrelay.delivery_attempts a JOIN hookrelay.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = $1),
    (SELECT count(*) FROM hookrelay.deliveries WHERE webhook_id = $1 AND parked_at IS NOT NULL)`, hooks[1].ID).
		Scan(&ph.deadAttempts, &ph.parked)
	if err != nil {
		return ph, fmt.Errorf("count the dead endpoint's attempts: %w", err)
	}
	return ph, nil
}

// longestGap is the longest time between start and the first of sorted
// times, or between two consecutive ones.
func longestGap(start time.Time, sorted []time.Time) time.Duration {
	var gap time.Duration
	prev := start
	for _, t := range sorted {
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return gap
}

// reportDeadPhase adds one phase's figures, keyed dead.<phase><round>.
func (e *env) reportDeadPhase(tag string, n neighbour, ph deadPhase) {
	s := e.cfg.Sizes
	what := n.what()
	prefix := "dead." + tag
	e.report.add(Figure{Key: prefix + ".throughput", Scenario: ScenarioDeadEndpoint, Name: what + ", deliveries/s",
		Value: ph.throughput, Unit: "deliveries/s",
		Note: fmt.Sprintf("%d deliveries in %s, longest pause between receipts %s", s.Deliveries,
			ph.elapsed.Round(time.Millisecond), ph.longestGap.Round(time.Millisecond))})
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50", 50}, {"p99", 99}} {
		e.report.add(Figure{Key: prefix + "." + q.name, Scenario: ScenarioDeadEndpoint, Name: what + ", commit → receipt " + q.name,
			Value: percentile(ph.lat, q.p), Unit: "ms",
			Note: fmt.Sprintf("%d events at %.0f/s (asked %d/s)", len(ph.lat), ph.p.achieved, s.Rate)})
	}
	if n == deadNext {
		e.report.add(Figure{Key: prefix + ".dead_requests", Scenario: ScenarioDeadEndpoint,
			Name: "B, requests the dead endpoint received", Value: float64(ph.deadRequests), Unit: "requests",
			Note: fmt.Sprintf("%d attempts recorded, %d of its %d deliveries parked; breaker opens after %d failures",
				ph.deadAttempts, ph.parked, s.Deliveries+warmup+len(ph.lat), deliver.DefaultBreakerFailures)})
	}
}

// reportDeadRatios adds B ÷ the base phase for the healthy endpoint's
// medians, keyed dead.<key>.*; the note gives the base's own spread, the
// noise the ratio is to be read against.
func (e *env) reportDeadRatios(key string, base neighbour, a, b []deadPhase) {
	label := strings.ToUpper(base.tag())
	for _, r := range []struct {
		key, name string
		of        func(deadPhase) float64
	}{
		{"throughput", "deliveries/s", func(ph deadPhase) float64 { return ph.throughput }},
		{"p50", "latency p50", func(ph deadPhase) float64 { return percentile(ph.lat, 50) }},
		{"p99", "latency p99", func(ph deadPhase) float64 { return percentile(ph.lat, 99) }},
	} {
		av, bv := apply(a, r.of), apply(b, r.of)
		ma := median(av)
		if ma == 0 {
			continue
		}
		e.report.add(Figure{Key: "dead." + key + "." + r.key, Scenario: ScenarioDeadEndpoint,
			Name: "healthy endpoint's " + r.name + ", B ÷ " + label + " (medians)", Value: median(bv) / ma, Unit: "×",
			Note: fmt.Sprintf("%s %s, B %s; %s's runs span %.2f–%.2f× their median", label, spread(av), spread(bv), label,
				slices.Min(av)/ma, slices.Max(av)/ma)})
	}
}

// apply maps phases to one of their figures.
func apply[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// spread prints values in run order, e.g. "12,345 · 13,012".
func spread(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = formatValue(x, "")
	}
	return strings.Join(parts, " · ")
}
