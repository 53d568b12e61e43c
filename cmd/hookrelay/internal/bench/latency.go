package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// emitFunc is the body of one "deploy a config" transaction that emits an
// event (through hookrelay or River); it returns the event's id.
type emitFunc func(ctx context.Context, tx pgx.Tx, d deployment) (uuid.UUID, error)

// warmup is how many events are sent and received before the clock starts,
// so that connections are open when it does.
const warmup = 20

// paced is the outcome of a paced emission.
type paced struct {
	commits  map[uuid.UUID]time.Time // event id → when its commit returned
	achieved float64                 // events committed per second
}

// emitPaced commits n events at rate per second (open loop: the k-th event
// is due at start + k/rate, whatever happened to the earlier ones) with up to
// Writers transactions in flight.
func (e *env) emitPaced(ctx context.Context, pool *pgxpool.Pool, project uuid.UUID, n, rate int, body emitFunc) (paced, error) {
	due := make(chan int, n)
	var (
		mu       sync.Mutex
		commits  = make(map[uuid.UUID]time.Time, n)
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range e.cfg.Sizes.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range due {
				var id uuid.UUID
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					var err error
					id, err = body(ctx, tx, newDeployment(project, k))
					return err
				})
				at := time.Now()
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					continue
				}
				mu.Lock()
				commits[id] = at
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for k := range n {
		if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		due <- k
	}
	close(due)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return paced{}, fmt.Errorf("emit: %w", firstErr)
	}
	return paced{commits: commits, achieved: float64(len(commits)) / elapsed.Seconds()}, nil
}

// latencies pairs commits with receipts; it fails if an event never arrived.
func (e *env) latencies(ctx context.Context, rcv *receiver, p paced, timeout time.Duration) ([]time.Duration, error) {
	ids := make([]uuid.UUID, 0, len(p.commits))
	for id := range p.commits {
		ids = append(ids, id)
	}
	var got map[uuid.UUID]time.Time
	err := waitUntil(ctx, timeout, 20*time.Millisecond, func() (bool, error) {
		got = rcv.received(ids)
		return len(got) == len(ids), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%d of %d events received: %w", len(got), len(ids), err)
	}
	out := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		// A receipt may precede the moment the committer saw its commit
		// return; that is a latency of zero.
		out = append(out, max(got[id].Sub(p.commits[id]), 0))
	}
	slices.Sort(out)
	return out, nil
}

// percentile of sorted latencies, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(p/100*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// addLatencies reports p50, p95, p99 and max of lat for scenario, with goals
// for p50 and p99 when given (zero: none).
func (e *env) addLatencies(scenario, prefix, what string, lat []time.Duration, p paced, goalP50, goalP99 float64) {
	note := fmt.Sprintf("%d events at %.0f/s (asked %d/s)", len(lat), p.achieved, e.cfg.Sizes.Rate)
	for _, q := range []struct {
		name string
		p    float64
		goal float64
	}{{"p50", 50, goalP50}, {"p95", 95, 0}, {"p99", 99, goalP99}, {"max", 100, 0}} {
		v := percentile(lat, q.p)
		f := Figure{Key: prefix + "." + q.name, Scenario: scenario, Name: what + " " + q.name, Value: v, Unit: "ms", Note: note}
		if q.goal > 0 {
			f.Goal = fmt.Sprintf("≤ %g ms", q.goal)
			f.Ratio, f.RatioOf = v/q.goal, "goal"
			f.Verdict = verdict(v <= q.goal)
		}
		e.report.add(f)
		note = ""
	}
}

// runLatency runs relay, scheduler and worker, emits events at Rate per
// second for LatencyDuration, and reports the latency from commit to receipt.
func (e *env) runLatency(ctx context.Context) error {
	s := e.cfg.Sizes
	fx, err := e.fixture(ctx)
	if err != nil {
		return err
	}
	defer fx.rcv.close()
	rcv, h, key, group := fx.rcv, fx.hook, fx.key, fx.group
	w, err := e.startWorker(ctx, key, group, nil)
	if err != nil {
		return err
	}
	defer func() { _ = w.stop(ctx) }()
	stopRelay, err := e.runRelay(ctx, key)
	if err != nil {
		return err
	}
	defer stopRelay()
	appPool, err := e.newPool(ctx, s.Writers+1)
	if err != nil {
		return err
	}
	defer appPool.Close()

	lat, p, err := e.measureLatency(ctx, rcv, appPool, h.Project, emitGo)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, e.diagnose(ctx, key, group))
	}
	e.addLatencies(ScenarioLatency, "latency", "commit → receipt", lat, p, 2, 10)
	failed, err := e.failedAttempts(ctx)
	if err != nil {
		return err
	}
	if failed > 0 {
		e.report.Figures[len(e.report.Figures)-1].Note = fmt.Sprintf("%d failed attempts (retried after 1s)", failed)
	}
	return nil
}

// measureLatency warms the pipeline up, then emits Rate events per second for
// LatencyDuration with body and returns the sorted latencies.
func (e *env) measureLatency(ctx context.Context, rcv *receiver, pool *pgxpool.Pool, project uuid.UUID, body emitFunc) ([]time.Duration, paced, error) {
	if err := e.warmUp(ctx, rcv, pool, project, body); err != nil {
		return nil, paced{}, err
	}
	return e.pacedLatency(ctx, rcv, pool, project, body, e.cfg.Sizes.LatencyDuration)
}

// pacedLatency emits Rate events per second for d with body, with no
// warm-up, and returns the sorted latencies from commit to first receipt.
func (e *env) pacedLatency(ctx context.Context, rcv *receiver, pool *pgxpool.Pool, project uuid.UUID, body emitFunc, d time.Duration) ([]time.Duration, paced, error) {
	rate := e.cfg.Sizes.Rate
	n := max(int(float64(rate)*d.Seconds()), 1)
	p, err := e.emitPaced(ctx, pool, project, n, rate, body)
	if err != nil {
		return nil, paced{}, err
	}
	lat, err := e.latencies(ctx, rcv, p, time.Minute+d)
	return lat, p, err
}

// startEmitting starts a relay on fx's stream and opens a pool for the
// application's writers, then warms the way to fx's receiver up; stop
// closes both. A worker must be running on the stream.
func (e *env) startEmitting(ctx context.Context, fx fixture) (app *pgxpool.Pool, stop func(), err error) {
	stopRelay, err := e.runRelay(ctx, fx.key)
	if err != nil {
		return nil, nil, err
	}
	if app, err = e.newPool(ctx, e.cfg.Sizes.Writers+1); err != nil {
		stopRelay()
		return nil, nil, err
	}
	stop = func() { app.Close(); stopRelay() }
	if err := e.warmUp(ctx, fx.rcv, app, fx.hook.Project, emitGo); err != nil {
		stop()
		return nil, nil, fmt.Errorf("%w (%s)", err, e.diagnose(ctx, fx.key, fx.group))
	}
	return app, stop, nil
}

// warmUp sends warmup events through body and waits until each arrived, so
// that every connection on the way is open when a measurement starts.
func (e *env) warmUp(ctx context.Context, rcv *receiver, pool *pgxpool.Pool, project uuid.UUID, body emitFunc) error {
	wp, err := e.emitPaced(ctx, pool, project, warmup, max(e.cfg.Sizes.Rate, warmup), body)
	if err != nil {
		return err
	}
	if _, err := e.latencies(ctx, rcv, wp, time.Minute); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	return nil
}
