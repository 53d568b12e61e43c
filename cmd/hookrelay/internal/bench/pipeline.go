package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// pipelineRun is the outcome of one whole-pipeline run: writers committing
// "deploy a config" transactions back to back for PipelineDuration, every
// event delivered to the loopback receiver.
type pipelineRun struct {
	commits    int           // transactions committed (= events)
	writing    time.Duration // first BEGIN → last writer done
	whileWrite int           // events first received before the writers stopped
	endToEnd   time.Duration // first COMMIT → last event's first receipt
	duplicates int           // requests beyond one per delivery
	use        usage         // CPU time of each part and WAL, first commit → last receipt
}

func (p pipelineRun) eventsPerSec() float64    { return float64(p.commits) / p.endToEnd.Seconds() }
func (p pipelineRun) commitsPerSec() float64   { return float64(p.commits) / p.writing.Seconds() }
func (p pipelineRun) deliveredPerSec() float64 { return float64(p.whileWrite) / p.writing.Seconds() }

// runPipeline runs the whole pipeline at each count of PipelineWriters:
// hookrelay (relay and worker as child processes of Config.Binary at their
// defaults, or in this process without one), then the River-only baseline
// with the same writers, and reports events per second from the first commit
// to the last first receipt, with the rates while the writers ran.
func (e *env) runPipeline(ctx context.Context) error {
	rs, err := e.riverSettings(ctx)
	if err != nil {
		return err
	}
	for i, writers := range e.cfg.Sizes.PipelineWriters {
		if i > 0 {
			if err := e.reset(ctx); err != nil {
				return err
			}
		}
		hr, mode, err := e.pipelineHookrelay(ctx, writers)
		if err != nil {
			return fmt.Errorf("hookrelay, %d writers: %w", writers, err)
		}
		if err := e.reset(ctx); err != nil {
			return err
		}
		rv, err := e.pipelineRiver(ctx, writers, rs)
		if err != nil {
			return fmt.Errorf("River, %d writers: %w", writers, err)
		}
		e.reportPipeline(writers, mode, hr, rv, rs)
	}
	return nil
}

// pipelineHookrelay runs hookrelay's pipeline with writers writers; mode
// says where the relay and worker ran.
func (e *env) pipelineHookrelay(ctx context.Context, writers int) (pipelineRun, string, error) {
	fx, err := e.fixture(ctx)
	if err != nil {
		return pipelineRun{}, "", err
	}
	defer fx.rcv.close()
	stop, mode, children, err := e.startPipeline(ctx, fx.key, fx.group)
	if err != nil {
		return pipelineRun{}, "", err
	}
	run, err := e.measurePipeline(ctx, fx.rcv, writers, fx.hook.Project, emitGo, children)
	if err != nil {
		err = fmt.Errorf("%w (%s)", err, e.diagnose(ctx, fx.key, fx.group))
	}
	return run, mode, errors.Join(err, stop())
}

// startPipeline starts a relay and a worker on key and group: child
// processes `Binary relay` and `Binary worker` at hookrelay's defaults when
// Config.Binary is set, otherwise in this process (the bench's worker
// settings). children names the child processes' pids.
func (e *env) startPipeline(ctx context.Context, key, group string) (stop func() error, mode string, children map[string]int, err error) {
	if e.cfg.Binary == "" {
		w, err := e.startWorker(ctx, key, group, nil)
		if err != nil {
			return nil, "", nil, err
		}
		stopRelay, err := e.runRelay(ctx, key)
		if err != nil {
			return nil, "", nil, errors.Join(err, w.stop(ctx))
		}
		return func() error {
			stopRelay()
			return w.stop(ctx)
		}, "relay and worker in this process (no -worker-bin: smoke runs only)", nil, nil
	}
	worker, err := e.startChild(ctx, "worker", key, group)
	if err != nil {
		return nil, "", nil, err
	}
	relay, err := e.startChild(ctx, "relay", key, group)
	if err != nil {
		return nil, "", nil, errors.Join(err, worker.stop())
	}
	return func() error {
			return errors.Join(relay.stop(), worker.stop())
		}, fmt.Sprintf("relay and worker: child processes %s relay|worker at their defaults", e.cfg.Binary),
		map[string]int{"relay": relay.pid(), "worker": worker.pid()}, errors.Join(worker.alive(), relay.alive())
}

// pipelineRiver runs the River-only baseline's pipeline with writers writers
// and River settings rs, the River client in this process.
func (e *env) pipelineRiver(ctx context.Context, writers int, rs riverSettings) (pipelineRun, error) {
	fx, err := e.fixture(ctx)
	if err != nil {
		return pipelineRun{}, err
	}
	defer fx.rcv.close()
	b, err := e.newRiverBaseline(ctx, rs)
	if err != nil {
		return pipelineRun{}, err
	}
	defer b.stop(ctx)
	if err := b.client.Start(ctx); err != nil {
		return pipelineRun{}, fmt.Errorf("start baseline river client: %w", err)
	}
	return e.measurePipeline(ctx, fx.rcv, writers, fx.hook.Project, b.emit(fx.hook), nil)
}

// measurePipeline warms the pipeline up, has writers commit with body for
// PipelineDuration and waits until every event arrived; it reads the CPU
// time of this process, of children (by name), of Postgres and of Redis
// over that.
func (e *env) measurePipeline(ctx context.Context, rcv *receiver, writers int, project uuid.UUID, body emitFunc,
	children map[string]int) (pipelineRun, error) {
	pool, err := e.newPool(ctx, writers+1)
	if err != nil {
		return pipelineRun{}, err
	}
	defer pool.Close()
	if err := e.warmUp(ctx, rcv, pool, project, body); err != nil {
		return pipelineRun{}, err
	}
	rcv.reset()
	meter := e.newCPUMeter(ctx, children)
	before := meter.read(ctx)
	w, err := writeFor(ctx, pool, writers, e.cfg.Sizes.PipelineDuration, project, body)
	if err != nil {
		return pipelineRun{}, err
	}
	ids := make([]uuid.UUID, len(w.commits))
	first := w.end
	for i, c := range w.commits {
		ids[i] = c.event
		if c.at.Before(first) {
			first = c.at
		}
	}
	var got map[uuid.UUID]time.Time
	err = waitUntil(ctx, backlogTimeout(len(ids)), 10*time.Millisecond, func() (bool, error) {
		if rcv.firstCount() < len(ids) {
			return false, nil
		}
		got = rcv.received(ids)
		return len(got) == len(ids), nil
	})
	if err != nil {
		return pipelineRun{}, fmt.Errorf("%d of %d events received: %w", rcv.firstCount(), len(ids), err)
	}
	run := pipelineRun{commits: len(ids), writing: w.end.Sub(w.start), use: meter.read(ctx).since(before)}
	last := first
	for _, at := range got {
		if at.After(last) {
			last = at
		}
		if !at.After(w.end) {
			run.whileWrite++
		}
	}
	run.endToEnd = last.Sub(first)
	requests, distinct := rcv.counts()
	run.duplicates = requests - distinct
	return run, nil
}

// reportPipeline adds the figures of one writer count.
func (e *env) reportPipeline(writers int, mode string, hr, rv pipelineRun, rs riverSettings) {
	key := func(name string) string { return fmt.Sprintf("pipeline.w%d.%s", writers, name) }
	dur := e.cfg.Sizes.PipelineDuration
	hrEv, rvEv := hr.eventsPerSec(), rv.eventsPerSec()
	ratio := hr.deliveredPerSec() / hr.commitsPerSec()
	e.report.add(Figure{Key: key("events"), Scenario: ScenarioPipeline,
		Name: fmt.Sprintf("hookrelay whole pipeline, %d writers, events/s", writers), Value: hrEv, Unit: "events/s",
		Note: fmt.Sprintf("%d events, first commit → last first receipt %s; %s; %d duplicate requests",
			hr.commits, hr.endToEnd.Round(time.Millisecond), mode, hr.duplicates)})
	e.report.add(Figure{Key: key("commits"), Scenario: ScenarioPipeline, Name: "  commits/s while writing",
		Value: hr.commitsPerSec(), Unit: "tx/s", Note: fmt.Sprintf("%d writers for %s, back to back", writers, dur)})
	e.report.add(Figure{Key: key("delivered"), Scenario: ScenarioPipeline, Name: "  deliveries/s while writing",
		Value: hr.deliveredPerSec(), Unit: "deliveries/s", Goal: "≥ 0.95× commits/s", Ratio: ratio, RatioOf: "commits",
		Verdict: verdict(ratio >= 0.95), Note: fmt.Sprintf("%d of %d events received before the writers stopped", hr.whileWrite, hr.commits)})
	e.report.add(Figure{Key: key("river"), Scenario: ScenarioPipeline,
		Name: fmt.Sprintf("River-only whole pipeline, %d writers, events/s", writers), Value: rvEv, Unit: "events/s",
		Note: fmt.Sprintf("%d events in %s; while writing %.0f commits/s, %.0f deliveries/s; River in this process, %s; %d duplicate requests",
			rv.commits, rv.endToEnd.Round(time.Millisecond), rv.commitsPerSec(), rv.deliveredPerSec(), rs, rv.duplicates)})
	if rvEv > 0 {
		r := hrEv / rvEv
		e.report.add(Figure{Key: key("ratio"), Scenario: ScenarioPipeline, Name: "  hookrelay ÷ River, end-to-end events/s",
			Value: r, Unit: "×", Goal: "≥ 2× River tuned", Verdict: verdict(r >= 2), Note: e.riverNote()})
	}
	e.reportCPU(fmt.Sprintf("pipeline.w%d", writers), ScenarioPipeline, "hookrelay", hr.commits, hr.use,
		[]string{cpuBench, "relay", "worker", cpuPostgres, cpuRedis},
		[]string{backendPart("bench"), backendPart("hookrelay-relay"), backendPart("hookrelay-worker")})
	e.reportCPU(key("river"), ScenarioPipeline, "River-only", rv.commits, rv.use, []string{cpuBench, cpuPostgres}, nil)
}

// riverNote says which River settings the run's River figures used.
func (e *env) riverNote() string {
	if e.riverSwept {
		return "River: the sweep's winner, " + e.river.String()
	}
	return "River tuned: " + e.river.String()
}
