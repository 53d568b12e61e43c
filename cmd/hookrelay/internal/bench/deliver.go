package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/jobs"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// publishChunk bounds the ids one pipelined XADD carries while seeding.
const publishChunk = 10_000

// workerSide is a running delivery side, as `hookrelay worker` runs it:
// hookrelay's River client and the stream worker sharing one pool.
type workerSide struct {
	pool   *pgxpool.Pool
	jobs   *jobs.Client
	worker *deliver.Worker
}

// startWorker starts a River client and a worker on stream key and group;
// its metrics go to reg (nil: off, as in the throughput scenarios).
func (e *env) startWorker(ctx context.Context, key, group string, reg prometheus.Registerer) (*workerSide, error) {
	s := e.cfg.Sizes
	pool, err := e.newPool(ctx, s.PoolSize)
	if err != nil {
		return nil, err
	}
	w := &workerSide{pool: pool}
	workers := river.NewWorkers()
	if err := deliver.AddWorkers(workers, pool, e.rdb, deliver.Streams{Base: key}, nil, e.log); err != nil {
		pool.Close()
		return nil, err
	}
	if w.jobs, err = jobs.New(pool, jobs.Config{Workers: workers, Logger: e.log}); err != nil {
		pool.Close()
		return nil, err
	}
	w.worker, err = deliver.NewWorker(pool, e.rdb, w.jobs.River(), deliver.Config{
		Stream: key, Group: group, Concurrency: s.Concurrency,
		// A failed attempt or a stuck entry comes back within seconds rather
		// than the production minute, so that a hiccup shows as an outlier
		// (and in the failed-attempt count) instead of stalling the run.
		RetrySchedule: []time.Duration{time.Second}, ClaimIdle: 15 * time.Second,
		Send: httpsend.Config{AllowPrivate: true},
	}, reg, e.log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := w.jobs.Start(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := w.worker.Start(ctx); err != nil {
		_ = w.stop(ctx)
		return nil, err
	}
	return w, nil
}

// stop stops the worker, then the River client, then closes the pool.
func (w *workerSide) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	if w.worker != nil {
		errs = append(errs, w.worker.Stop(ctx))
	}
	errs = append(errs, w.jobs.Stop(ctx))
	w.pool.Close()
	return errors.Join(errs...)
}

// seedDeliveries creates n events' pending deliveries, one per hook (the
// hooks of one project), and puts their ids on stream key in event order, as
// the relay would have.
func (e *env) seedDeliveries(ctx context.Context, n int, key string, hooks ...hook) error {
	ids, err := e.insertDeliveries(ctx, n, hooks...)
	if err != nil {
		return err
	}
	return e.publish(ctx, key, ids)
}

// insertDeliveries creates n events' pending deliveries, one per hook (the
// hooks of one project), without publishing them; it returns their ids in
// event order, each event's deliveries in the order of hooks.
func (e *env) insertDeliveries(ctx context.Context, n int, hooks ...hook) ([]uuid.UUID, error) {
	data, err := json.Marshal(newDeployment(hooks[0].Project, 1))
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	webhooks, projects := make([]uuid.UUID, len(hooks)), make([]uuid.UUID, len(hooks))
	for i, h := range hooks {
		webhooks[i], projects[i] = h.ID, h.Project
	}
	out := make([]uuid.UUID, 0, n*len(hooks))
	for done := 0; done < n; done += fillChunk {
		rows, err := e.pool.Query(ctx, `INSERT INTO hookrelay.deliveries
    (event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts)
SELECT ev.id, h.id, h.project, $3, $4::jsonb, now(), $6
FROM (SELECT gen_random_uuid() AS id, g FROM generate_series(1, $5) g) ev
CROSS JOIN unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS h(id, project, o)
ORDER BY ev.g, h.o
RETURNING id`, webhooks, projects, eventType, data, min(fillChunk, n-done), deliver.DefaultMaxAttempts)
		if err != nil {
			return nil, fmt.Errorf("seed deliveries: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return nil, fmt.Errorf("seed deliveries: %w", err)
		}
		out = append(out, ids...)
	}
	if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE hookrelay.deliveries`); err != nil {
		return nil, fmt.Errorf("analyse deliveries: %w", err)
	}
	return out, nil
}

// publish puts delivery ids on stream key (one shard: the webhook does not
// matter), in order, a chunk per pipeline.
func (e *env) publish(ctx context.Context, key string, ids []uuid.UUID) error {
	for i := 0; i < len(ids); i += publishChunk {
		if err := (stream.Shards{Base: key}).PublishWebhook(ctx, e.rdb, uuid.Nil, ids[i:min(i+publishChunk, len(ids))]...); err != nil {
			return fmt.Errorf("seed stream: %w", err)
		}
	}
	return nil
}

// backlogTimeout is how long n deliveries may take before a scenario gives up
// (a floor of 100/s: far below anything healthy).
func backlogTimeout(n int) time.Duration {
	return time.Minute + time.Duration(n)*10*time.Millisecond
}

// waitStreamEmpty waits until every entry of key was acknowledged and
// deleted, which the worker does only after Postgres holds the outcome.
func (e *env) waitStreamEmpty(ctx context.Context, key string, timeout time.Duration) error {
	err := waitUntil(ctx, timeout, 10*time.Millisecond, func() (bool, error) {
		n, err := e.rdb.XLen(ctx, key).Result()
		return n == 0, err
	})
	if err != nil {
		return fmt.Errorf("wait for stream %s to empty: %w", key, err)
	}
	return nil
}

// runDeliver times the worker delivering Deliveries pending deliveries to the
// loopback receiver, every attempt recorded.
func (e *env) runDeliver(ctx context.Context) error {
	s := e.cfg.Sizes
	fx, err := e.fixture(ctx)
	if err != nil {
		return err
	}
	defer fx.rcv.close()
	rcv, h, key, group := fx.rcv, fx.hook, fx.key, fx.group
	if err := e.seedDeliveries(ctx, s.Deliveries, key, h); err != nil {
		return err
	}

	start := time.Now()
	w, err := e.startWorker(ctx, key, group, nil)
	if err != nil {
		return err
	}
	err = rcv.waitDistinct(ctx, s.Deliveries, backlogTimeout(s.Deliveries))
	if err == nil {
		err = e.waitStreamEmpty(ctx, key, time.Minute)
	}
	elapsed := time.Since(start)
	if err != nil {
		err = fmt.Errorf("%w (%s)", err, e.diagnose(ctx, key, group))
	}
	if serr := w.stop(ctx); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if err := e.checkRecorded(ctx, s.Deliveries); err != nil {
		return err
	}
	requests, distinct := rcv.counts()
	failed, err := e.failedAttempts(ctx)
	if err != nil {
		return err
	}
	rate := float64(s.Deliveries) / elapsed.Seconds()
	e.report.add(Figure{Key: "deliver.throughput", Scenario: ScenarioDeliver, Name: "worker, deliveries/s", Value: rate,
		Unit: "deliveries/s", Goal: "≥ 10,000/s", Ratio: rate / 10_000, RatioOf: "goal", Verdict: verdict(rate >= 10_000),
		Note: fmt.Sprintf("%d deliveries in %s, concurrency %d, pool %d, %d duplicate requests, %d failed attempts",
			s.Deliveries, elapsed.Round(time.Millisecond), s.Concurrency, s.PoolSize, requests-distinct, failed)})
	return nil
}

// failedAttempts counts the attempts that did not get a 2xx.
func (e *env) failedAttempts(ctx context.Context) (int, error) {
	var n int
	err := e.pool.QueryRow(ctx, `SELECT count(*) FROM hookrelay.delivery_attempts
WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count failed attempts: %w", err)
	}
	return n, nil
}

// checkRecorded verifies that n deliveries are delivered with one attempt row each.
func (e *env) checkRecorded(ctx context.Context, n int) error {
	var delivered, attempts int
	err := e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM hookrelay.deliveries WHERE status = 'delivered'),
       (SELECT count(*) FROM hookrelay.delivery_attempts)`).Scan(&delivered, &attempts)
	if err != nil {
		return fmt.Errorf("count delivered: %w", err)
	}
	if delivered != n || attempts < n {
		return fmt.Errorf("%d deliveries delivered and %d attempts recorded; want %d", delivered, attempts, n)
	}
	return nil
}

// diagnose describes where undelivered work sits, for error messages.
func (e *env) diagnose(ctx context.Context, key, group string) string {
	var unpublished, pending, retrying, failed int
	var lastError *string
	err := e.pool.QueryRow(ctx, `SELECT
    (SELECT count(*) FROM hookrelay.outbox_unpublished),
    (SELECT count(*) FROM hookrelay.deliveries WHERE status = 'pending' AND next_attempt_at IS NULL),
    (SELECT count(*) FROM hookrelay.deliveries WHERE status = 'pending' AND next_attempt_at IS NOT NULL),
    (SELECT count(*) FROM hookrelay.deliveries WHERE status = 'failed'),
    (SELECT max(last_error) FROM hookrelay.deliveries WHERE last_error IS NOT NULL)`).
		Scan(&unpublished, &pending, &retrying, &failed, &lastError)
	if err != nil {
		return "diagnosis failed: " + err.Error()
	}
	xlen, _ := e.rdb.XLen(ctx, key).Result()
	var inGroup int64
	if p, err := e.rdb.XPending(ctx, key, group).Result(); err == nil {
		inGroup = p.Count
	}
	s := fmt.Sprintf("outbox unpublished %d; deliveries pending %d, awaiting retry %d, failed %d; stream length %d, unacknowledged %d",
		unpublished, pending, retrying, failed, xlen, inGroup)
	if lastError != nil {
		s += "; a last error: " + *lastError
	}
	return s
}
