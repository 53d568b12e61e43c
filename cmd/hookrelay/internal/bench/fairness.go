package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// fairRateLimit is the limited endpoint's rate_limit, issue 13's fairness
// case: 10 deliveries per second.
const fairRateLimit = 10

// fairRound is the outcome of one round of the fairness scenario.
type fairRound struct {
	without, with   []time.Duration // the unlimited endpoint's latencies
	pWithout, pWith paced
	deferTook       time.Duration // backlog on the stream → every delivery of it deferred
	deferred        float64       // hookrelay_deliveries_deferred_total{reason="rate_limit"}
	window          time.Duration // backlog on the stream → end of the flow's emission
	limited         int           // the limited endpoint's requests over window
	peak            int           // its most requests in any one second
}

// runFairness measures whether a rate-limited endpoint's backlog starves an
// unlimited one (issue 13): a webhook with rate_limit 10 gets FairBacklog
// deliveries on the stream ahead of everything, then an unlimited webhook
// gets events at Rate for FlowDuration through the relay; its commit →
// receipt latency is measured first without the backlog, then with it, in
// the same run, FlowRounds times.
func (e *env) runFairness(ctx context.Context) error {
	var rounds []fairRound
	for r := 1; r <= e.cfg.Sizes.FlowRounds; r++ {
		if r > 1 {
			if err := e.reset(ctx); err != nil {
				return err
			}
		}
		fr, err := e.fairnessRound(ctx)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		e.reportFairRound(r, fr)
		rounds = append(rounds, fr)
	}
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50", 50}, {"p99", 99}} {
		without := apply(rounds, func(fr fairRound) float64 { return percentile(fr.without, q.p) })
		with := apply(rounds, func(fr fairRound) float64 { return percentile(fr.with, q.p) })
		if m := median(without); m > 0 {
			e.report.add(Figure{Key: "fair.ratio." + q.name, Scenario: ScenarioFairness,
				Name:  "unlimited endpoint's latency " + q.name + ", with ÷ without the backlog (medians)",
				Value: median(with) / m, Unit: "×", Note: fmt.Sprintf("without %s ms, with %s ms", spread(without), spread(with))})
		}
	}
	return nil
}

// fairnessRound runs one round: without the backlog, then with it.
func (e *env) fairnessRound(ctx context.Context) (fr fairRound, err error) {
	s := e.cfg.Sizes
	fx, err := e.fixture(ctx) // the unlimited endpoint
	if err != nil {
		return fr, err
	}
	defer fx.rcv.close()
	lrcv, err := newReceiver()
	if err != nil {
		return fr, err
	}
	defer lrcv.close()
	lh, err := e.webhook(ctx, lrcv.URL)
	if err != nil {
		return fr, err
	}
	if _, err := e.pool.Exec(ctx, `UPDATE hookrelay.webhooks SET rate_limit = $2 WHERE id = $1`, lh.ID, fairRateLimit); err != nil {
		return fr, fmt.Errorf("limit the webhook: %w", err)
	}
	backlog, err := e.insertDeliveries(ctx, s.FairBacklog, lh)
	if err != nil {
		return fr, err
	}

	reg := prometheus.NewRegistry()
	w, err := e.startWorker(ctx, fx.key, fx.group, reg)
	if err != nil {
		return fr, err
	}
	defer func() { err = errors.Join(err, w.stop(ctx)) }()
	appPool, stopEmitting, err := e.startEmitting(ctx, fx)
	if err != nil {
		return fr, err
	}
	defer stopEmitting()
	diagnosed := func(err error) error { return fmt.Errorf("%w (%s)", err, e.diagnose(ctx, fx.key, fx.group)) }
	if fr.without, fr.pWithout, err = e.pacedLatency(ctx, fx.rcv, appPool, fx.hook.Project, emitGo, s.FlowDuration); err != nil {
		return fr, diagnosed(err)
	}

	start := time.Now()
	if err := e.publish(ctx, fx.key, backlog); err != nil {
		return fr, err
	}
	type deferral struct {
		took time.Duration
		n    float64
		err  error
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deferred := make(chan deferral, 1)
	go func() {
		var d deferral
		d.took, d.n, d.err = e.waitDeferred(dctx, reg, lh.ID, start)
		deferred <- d
	}()
	if fr.with, fr.pWith, err = e.pacedLatency(ctx, fx.rcv, appPool, fx.hook.Project, emitGo, s.FlowDuration); err != nil {
		return fr, diagnosed(err)
	}
	fr.window = time.Since(start)
	d := <-deferred
	if d.err != nil {
		return fr, diagnosed(d.err)
	}
	fr.deferTook, fr.deferred = d.took, d.n
	end := start.Add(fr.window)
	arrivals := lrcv.arrivals()
	for i, t := range arrivals {
		if t.After(end) {
			break
		}
		fr.limited++
		j := i
		for j < len(arrivals) && arrivals[j].Sub(t) < time.Second {
			j++
		}
		fr.peak = max(fr.peak, j-i)
	}
	return fr, nil
}

// waitDeferred waits until no delivery of the limited webhook is left that
// was neither deferred to a slot nor sent (the few the worker holds for a
// slot within a second are sent), and returns the time since start and the
// deferral counter then.
func (e *env) waitDeferred(ctx context.Context, reg *prometheus.Registry, webhook uuid.UUID, start time.Time) (time.Duration, float64, error) {
	s := e.cfg.Sizes
	var n float64
	err := waitUntil(ctx, backlogTimeout(s.FairBacklog), 20*time.Millisecond, func() (bool, error) {
		var err error
		if n, err = deferredCount(reg); err != nil || int(n) < s.FairBacklog-2*fairRateLimit {
			return false, err
		}
		// Close to done: ask Postgres, which holds the truth.
		var left int
		err = e.pool.QueryRow(ctx, `SELECT count(*) FROM hookrelay.deliveries
WHERE webhook_id = $1 AND status = 'pending' AND slot_at IS NULL`, webhook).Scan(&left)
		return left == 0, err
	})
	if err != nil {
		return 0, n, fmt.Errorf("wait for the backlog to be deferred (%.0f deferred): %w", n, err)
	}
	return time.Since(start), n, nil
}

// deferredCount reads hookrelay_deliveries_deferred_total{reason="rate_limit"}.
func deferredCount(reg *prometheus.Registry) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather metrics: %w", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hookrelay_deliveries_deferred_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "rate_limit" {
					return m.GetCounter().GetValue(), nil
				}
			}
		}
	}
	return 0, nil
}

// reportFairRound adds one round's figures, keyed fair.r<round>.
func (e *env) reportFairRound(r int, fr fairRound) {
	s := e.cfg.Sizes
	prefix := fmt.Sprintf("fair.r%d.", r)
	for _, q := range []struct {
		name string
		p    float64
	}{{"p50", 50}, {"p99", 99}} {
		for _, v := range []struct {
			key, what string
			lat       []time.Duration
			p         paced
		}{{"without", "without the backlog", fr.without, fr.pWithout}, {"with", "with the backlog", fr.with, fr.pWith}} {
			e.report.add(Figure{Key: prefix + v.key + "." + q.name, Scenario: ScenarioFairness,
				Name: "unlimited endpoint, " + v.what + ", commit → receipt " + q.name, Value: percentile(v.lat, q.p), Unit: "ms",
				Note: fmt.Sprintf("%d events at %.0f/s (asked %d/s)", len(v.lat), v.p.achieved, s.Rate)})
		}
	}
	e.report.add(Figure{Key: prefix + "defer", Scenario: ScenarioFairness,
		Name: fmt.Sprintf("time to defer the limited endpoint's %d", s.FairBacklog), Value: fr.deferTook.Seconds(), Unit: "s",
		Note: fmt.Sprintf("%.0f deferred (rate_limit), %.0f/s", fr.deferred, fr.deferred/fr.deferTook.Seconds())})
	rate := float64(fr.limited) / fr.window.Seconds()
	e.report.add(Figure{Key: prefix + "limited_rate", Scenario: ScenarioFairness,
		Name: "limited endpoint, requests/s at its receiver", Value: rate, Unit: "requests/s",
		Goal: fmt.Sprintf("≤ %d/s", fairRateLimit), Ratio: rate / fairRateLimit, RatioOf: "limit", Verdict: verdict(rate <= fairRateLimit),
		Note: fmt.Sprintf("%d requests in %s; at most %d in any one second", fr.limited, fr.window.Round(time.Millisecond), fr.peak)})
}
