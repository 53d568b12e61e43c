// Package reconcile is the reconciler: a River periodic job (run by the River
// leader only) that makes Postgres, the source of truth, win over Redis, the
// fast path that may lose data.
//
// Each run it
//   - puts back on the stream every pending delivery that has shown no
//     progress for longer than Config.After and has no future retry scheduled
//     (reason "stale");
//   - notices that Redis lost data — its run id changed since the last run, or
//     the stream or the consumer group vanished — and then puts back at once
//     every pending delivery that has no future retry, without waiting for
//     the threshold (reason "redis_reset"). Deliveries whose retry is still in
//     the future are left alone: their River retry jobs live in Postgres and
//     publish them when due;
//   - reports outbox rows still unpublished after Config.After and wakes the
//     relays (it never fans out itself: that is the relay's job);
//   - updates the stream length and pending-entries gauges.
//
// Re-publishing is harmless even when the entry is in fact still in the
// stream: an entry carries only a delivery id, and workers load the delivery
// and skip it when it is no longer pending. The cost of a needless re-publish
// is at most one duplicate HTTP attempt, which receivers deduplicate on the
// delivery id.
package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/metrics"
)

// Defaults applied to zero fields of Config.
const (
	DefaultAfter     = 5 * time.Minute
	DefaultInterval  = 30 * time.Second
	DefaultBatchSize = 1000
)

// Config says what the reconciler looks at and how often.
type Config struct {
	Stream string // stream key (HOOKRELAY_STREAM)
	Group  string // consumer group (HOOKRELAY_GROUP)
	// After (HOOKRELAY_RECONCILE_AFTER): a pending delivery whose updated_at
	// is older than this, and whose next attempt is not scheduled later than
	// After ago, is put back on the stream. It must exceed the HTTP timeout
	// plus the claim margin so that deliveries in flight are not duplicated.
	After time.Duration
	// Interval (HOOKRELAY_RECONCILE_INTERVAL) between runs.
	Interval time.Duration
	// BatchSize is how many deliveries are re-published per transaction.
	BatchSize int
}

func (c Config) withDefaults() Config {
	c.After = positive(c.After, DefaultAfter)
	c.Interval = positive(c.Interval, DefaultInterval)
	c.BatchSize = positive(c.BatchSize, DefaultBatchSize)
	return c
}

func positive[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Kind is the River job kind of a reconciler run.
const Kind = "hookrelay.reconcile"

// Args are the (empty) arguments of a reconciler run.
type Args struct{}

// Kind implements river.JobArgs.
func (Args) Kind() string { return Kind }

// InsertOpts make a failed run final: the next periodic run is the retry.
// Runs that overlap anyway (a slow run, a manual one) are harmless: only one
// at a time proceeds, the others return Skipped.
func (Args) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

// Result says what one run did.
type Result struct {
	Stale          int    // deliveries re-published because they showed no progress
	RedisReset     string // why Redis is considered to have lost data ("" if it is not)
	Reset          int    // deliveries re-published because Redis lost data
	UnpublishedOld int    // outbox rows unpublished for longer than After
	StreamLength   int64
	StreamPending  int64
	Skipped        bool // another reconciler was running; this run did nothing
}

// Worker runs the reconciler; it is a river.Worker[Args].
type Worker struct {
	river.WorkerDefaults[Args]

	pool *pgxpool.Pool
	rdb  redis.UniversalClient
	cfg  Config
	wake func()
	m    *metrics.Metrics
	log  *slog.Logger
}

// NewWorker returns the reconciler. wake nudges a relay running in this
// process, if any (it may be nil); relays in other processes are woken through
// Postgres (NOTIFY hookrelay_outbox). Zero fields of cfg take the defaults.
func NewWorker(pool *pgxpool.Pool, rdb redis.UniversalClient, cfg Config, wake func(), m *metrics.Metrics, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.Default()
	}
	return &Worker{pool: pool, rdb: rdb, cfg: cfg.withDefaults(), wake: wake, m: m, log: log.With("component", "reconcile")}
}

// Register adds the reconciler to a River client's workers.
func Register(w *river.Workers, worker *Worker) error {
	if err := river.AddWorkerSafely(w, worker); err != nil {
		return fmt.Errorf("register reconcile worker: %w", err)
	}
	return nil
}

// PeriodicJob schedules a reconciler run every cfg.Interval (and one as soon
// as a River leader is elected).
func PeriodicJob(cfg Config) *river.PeriodicJob {
	cfg = cfg.withDefaults()
	return river.NewPeriodicJob(river.PeriodicInterval(cfg.Interval),
		func() (river.JobArgs, *river.InsertOpts) { return Args{}, nil },
		&river.PeriodicJobOpts{ID: Kind, RunOnStart: true})
}

// Timeout bounds one run; a reset re-publishing many deliveries may need more
// than River's default minute.
func (w *Worker) Timeout(*river.Job[Args]) time.Duration { return 5 * time.Minute }

// Work runs the reconciler once (River calls it).
func (w *Worker) Work(ctx context.Context, _ *river.Job[Args]) error {
	res, err := w.Reconcile(ctx)
	if err != nil {
		return err
	}
	if res.Stale > 0 || res.Reset > 0 || res.RedisReset != "" {
		w.log.Info("reconciled deliveries", "stale", res.Stale, "redis_reset", res.RedisReset,
			"reset", res.Reset, "stream_length", res.StreamLength, "stream_pending", res.StreamPending)
	}
	return nil
}

// Reconcile runs the reconciler once. Only one run at a time proceeds across
// all processes sharing the database; a concurrent one returns Skipped.
func (w *Worker) Reconcile(ctx context.Context) (Result, error) {
	var res Result
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("reconcile: acquire connection: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, sqlTryLock, lockKey).Scan(&locked); err != nil {
		return res, fmt.Errorf("reconcile: take advisory lock: %w", err)
	}
	if !locked {
		res.Skipped = true
		return res, nil
	}
	defer func() {
		// A failed unlock would leave the lock held by a pooled connection;
		// close that connection instead so the lock goes with it.
		if _, err := conn.Exec(context.WithoutCancel(ctx), sqlUnlock, lockKey); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	var now time.Time
	if err := w.pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return res, fmt.Errorf("reconcile: read database clock: %w", err)
	}
	if res.UnpublishedOld, err = w.checkOutbox(ctx, now.Add(-w.cfg.After)); err != nil {
		return res, err
	}

	state, err := w.checkRedis(ctx)
	if err != nil {
		return res, err
	}
	res.RedisReset = state.reset
	if state.reset != "" {
		if err := w.ensureGroup(ctx); err != nil {
			return res, err
		}
		if res.Reset, err = w.republish(ctx, now, now, "redis_reset"); err != nil {
			return res, err
		}
		w.log.Warn("redis lost data; re-published pending deliveries", "reason", state.reset, "deliveries", res.Reset)
	}
	// Remember the run id only once everything it asked for is done: a run
	// that fails half-way is retried and detects the reset again.
	if state.runID != "" && state.runID != state.stored {
		if _, err := w.pool.Exec(ctx, sqlStoreState, keyRedisRunID, state.runID); err != nil {
			return res, fmt.Errorf("reconcile: remember redis run id: %w", err)
		}
	}

	cutoff := now.Add(-w.cfg.After)
	if res.Stale, err = w.republish(ctx, cutoff, cutoff, "stale"); err != nil {
		return res, err
	}
	if res.StreamLength, res.StreamPending, err = w.streamGauges(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// checkOutbox counts outbox rows unpublished since before cutoff and, if
// there are any, wakes the relays.
func (w *Worker) checkOutbox(ctx context.Context, cutoff time.Time) (int, error) {
	var n int
	var oldest *time.Time
	if err := w.pool.QueryRow(ctx, sqlUnpublishedOld, cutoff).Scan(&n, &oldest); err != nil {
		return 0, fmt.Errorf("reconcile: count old unpublished outbox rows: %w", err)
	}
	if w.m != nil {
		w.m.UnpublishedOld.Set(float64(n))
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := w.pool.Exec(ctx, sqlWakeRelays); err != nil {
		return n, fmt.Errorf("reconcile: wake relays: %w", err)
	}
	if w.wake != nil {
		w.wake()
	}
	w.log.Warn("outbox events unpublished for longer than the reconcile threshold; woke the relays",
		"events", n, "oldest", oldest, "threshold", w.cfg.After)
	return n, nil
}

// republish puts back on the stream, batch by batch, the pending deliveries
// last updated before updatedBefore whose next attempt (if any) was due
// before retryBefore. Each batch bumps updated_at, so that a delivery is
// re-published at most once per run and then not again until it has been
// idle for After once more; the bump commits only if Redis took the batch.
func (w *Worker) republish(ctx context.Context, updatedBefore, retryBefore time.Time, reason string) (int, error) {
	total := 0
	for {
		n, err := w.republishBatch(ctx, updatedBefore, retryBefore)
		if err != nil {
			return total, fmt.Errorf("reconcile (%s): %w", reason, err)
		}
		total += n
		if w.m != nil && n > 0 {
			w.m.Reconciled.WithLabelValues(reason).Add(float64(n))
		}
		if n < w.cfg.BatchSize {
			return total, nil
		}
	}
}
