// The reconciler: a River periodic job (run by the River
// leader only, and at once when a worker asks through Trigger) that makes
// Postgres, the source of truth, win over Redis, the fast path that may lose
// data.
//
// Each run it
//   - notices that Redis lost a stream's data: a marker (a consumer group
//     that only the reconciler creates on each shard's stream, and remembers
//     in Postgres) is gone, or the server's run id changed. Workers and relays
//     recreate the group and the stream within milliseconds of a loss, so
//     their presence proves nothing; the marker does. It then puts back on
//     the stream every pending delivery that has no future retry (reason
//     "redis_reset"), carrying the work over to the next run if one run is
//     not enough. Deliveries whose retry is still in the future are left
//     alone: their River retry jobs live in Postgres and publish them when
//     due. Detection is best effort (INFO may be refused): nothing else in
//     the run depends on it;
//   - puts back on the stream every pending delivery that has shown no
//     progress for longer than ReconcileConfig.After, has no future retry scheduled,
//     and cannot still be queued in the stream (reason "stale");
//   - reports outbox rows still unpublished after ReconcileConfig.After and wakes the
//     relays (it never fans out itself: that is the relay's job);
//   - updates the stream length and pending-entries gauges, per shard.
//
// Re-publishing is harmless even when the entry is in fact still in the
// stream: an entry carries only a delivery id, and workers load the delivery
// and skip it when it is no longer pending. The cost of a needless re-publish
// is at most one duplicate HTTP attempt, which receivers deduplicate on the
// delivery id.

package maintenance

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/outage"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// Defaults applied to zero fields of ReconcileConfig.
const (
	DefaultReconcileAfter    = 5 * time.Minute
	DefaultReconcileInterval = 30 * time.Second
	DefaultConsumerIdle      = time.Hour
	DefaultResetGrace        = 11 * time.Second // the default HTTP timeout, 10 s, and a second
)

// ReconcileConfig says what the reconciler looks at and how often.
type ReconcileConfig struct {
	Stream string // stream key, the base of the shards' keys (HOOKRELAY_STREAM)
	Shards int    // HOOKRELAY_STREAM_SHARDS; 0 means 1 (see stream.Shards)
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
	// ConsumerIdle: a consumer of the group that has nothing pending and has
	// not read for this long belongs to a process that is gone (killed, or
	// crashed before it could leave the group) and is removed. A live worker
	// reads at least every half second.
	ConsumerIdle time.Duration
	// ResetGrace: after a loss is found, the deliveries are re-published
	// only this long after it, so that the attempts in flight when Redis
	// lost their entries (whose deliveries are still pending) have been
	// recorded and are not sent a second time. Set it to the HTTP timeout
	// plus a margin. Zero means DefaultResetGrace; a negative value, none.
	ResetGrace time.Duration
}

func (c ReconcileConfig) withDefaults() ReconcileConfig {
	c.After = cmp.Or(max(c.After, 0), DefaultReconcileAfter)
	c.Interval = cmp.Or(max(c.Interval, 0), DefaultReconcileInterval)
	c.BatchSize = cmp.Or(max(c.BatchSize, 0), DefaultBatchSize)
	c.ConsumerIdle = cmp.Or(max(c.ConsumerIdle, 0), DefaultConsumerIdle)
	if c.ResetGrace == 0 {
		c.ResetGrace = DefaultResetGrace
	}
	return c
}

// ReconcileKind is the River job kind of a reconciler run.
const ReconcileKind = "hookrelay.reconcile"

// ReconcileArgs are the (empty) arguments of a reconciler run.
//
// A failed run is final: the next periodic run is the retry. Runs that
// overlap anyway (a slow run, a manual one) are harmless: only one at a time
// proceeds, the others return Skipped.
type ReconcileArgs struct{ oneShot }

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return ReconcileKind }

// ReconcileResult says what one run did.
type ReconcileResult struct {
	Stale          int    // deliveries re-published because they showed no progress
	RedisReset     string // why Redis is considered to have lost data ("" if it is not)
	Reset          int    // deliveries re-published because Redis lost data
	UnpublishedOld int    // outbox rows unpublished for longer than After
	StreamLength   int64  // entries of every shard
	StreamPending  int64  // entries read and not acknowledged, of every shard
	// ConsumersRemoved counts consumers of processes that are gone, removed
	// from the group.
	ConsumersRemoved int
	Skipped          bool // another reconciler was running; this run did nothing
}

// Reconciler runs the reconciler; it is a river.Worker[ReconcileArgs].
type Reconciler struct {
	river.WorkerDefaults[ReconcileArgs]

	pool    *pgxpool.Pool
	rdb     redis.UniversalClient
	cfg     ReconcileConfig
	streams stream.Shards
	wake    func()
	m       *metrics.Metrics
	log     *slog.Logger

	// infoTrack logs once that INFO is refused (and once that it answers
	// again); detectTrack the same for loss detection as a whole.
	infoTrack, detectTrack *outage.Tracker
	runTrack               *outage.Tracker // periodic runs that failed

	trig                   sync.Mutex
	trigRunning, trigAgain bool

	// afterCheck, when set (tests only), runs right after the marker check.
	afterCheck func()
}

// NewReconciler returns the reconciler. wake nudges a relay running in this
// process, if any (it may be nil); relays in other processes are woken through
// Postgres (NOTIFY hookrelay_outbox). Zero fields of cfg take the defaults.
func NewReconciler(pool *pgxpool.Pool, rdb redis.UniversalClient, cfg ReconcileConfig, wake func(), m *metrics.Metrics, log *slog.Logger) *Reconciler {
	log = logger(log, "reconcile")
	cfg = cfg.withDefaults()
	return &Reconciler{pool: pool, rdb: rdb, cfg: cfg, streams: stream.Shards{Base: cfg.Stream, N: cfg.Shards},
		wake: wake, m: m, log: log,
		infoTrack:   outage.New("redis: INFO server for the run id", log, nil),
		detectTrack: outage.New("redis: detect data loss", log, nil),
		runTrack:    outage.New("reconcile run", log, nil)}
}

// runTimeout bounds one run. It stays under the River client's stuck-job
// rescue; a reset too large for one run is carried on by the next.
const runTimeout = 90 * time.Second

// Timeout bounds one run (River calls it).
func (w *Reconciler) Timeout(*river.Job[ReconcileArgs]) time.Duration { return runTimeout }

// Work runs the reconciler once (River calls it). A run that fails because
// Postgres or Redis is unavailable is not a job error: the next periodic run
// is its retry, and the outage is logged once, when it starts, rather than
// by River at every run.
func (w *Reconciler) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	if res, err := w.Reconcile(ctx); err == nil {
		w.report(res)
	}
	return nil // a failure is tracked by Reconcile
}

func (w *Reconciler) report(res ReconcileResult) {
	if res.Stale > 0 || res.Reset > 0 || res.RedisReset != "" {
		w.log.Info("reconciled deliveries", "stale", res.Stale, "redis_reset", res.RedisReset,
			"reset", res.Reset, "stream_length", res.StreamLength, "stream_pending", res.StreamPending)
	}
}

// Trigger asks for a run now, without waiting for the periodic one: a
// worker met NOGROUP, so Redis may have lost data. It never blocks. Requests
// made while a triggered run is under way are merged into one more run after
// it; a run skipped because another process holds the reconciler's lock is
// tried again shortly, so the request is not lost behind the periodic run.
func (w *Reconciler) Trigger() {
	w.trig.Lock()
	defer w.trig.Unlock()
	if w.trigRunning {
		w.trigAgain = true
		return
	}
	w.trigRunning = true
	go w.triggered()
}

// triggerRetryWait is how often a triggered run tries again while another
// process's run holds the lock (that run may have begun before the loss).
const triggerRetryWait = 250 * time.Millisecond

func (w *Reconciler) triggered() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		for ctx.Err() == nil {
			res, err := w.Reconcile(ctx)
			if err != nil {
				w.log.Warn("triggered reconcile run failed; the periodic run will try again", "err", err)
				break
			}
			if !res.Skipped {
				w.report(res)
				break
			}
			time.Sleep(triggerRetryWait) // another process's run holds the lock
		}
		cancel()
		w.trig.Lock()
		if !w.trigAgain {
			w.trigRunning = false
			w.trig.Unlock()
			return
		}
		w.trigAgain = false
		w.trig.Unlock()
	}
}

// Reconcile runs the reconciler once. Only one run at a time proceeds across
// all processes sharing the database; a concurrent one returns Skipped.
//
// Loss detection is best effort and never stops the run: whatever it fails
// on (INFO refused, say), the reset in progress and the stale sweep still
// run.
func (w *Reconciler) Reconcile(ctx context.Context) (ReconcileResult, error) {
	res, err := w.reconcile(ctx)
	if err != nil {
		w.runTrack.Fail(err) // logged once per outage
	} else {
		w.runTrack.OK()
	}
	return res, err
}

func (w *Reconciler) reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("reconcile: acquire connection: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, tryLockSQL, lockKey).Scan(&locked); err != nil {
		return res, fmt.Errorf("reconcile: take advisory lock: %w", err)
	}
	if !locked {
		res.Skipped = true
		return res, nil
	}
	defer func() {
		// A failed unlock would leave the lock held by a pooled connection;
		// close that connection instead so the lock goes with it.
		if _, err := conn.Exec(context.WithoutCancel(ctx), unlockSQL, lockKey); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	var now time.Time
	if err := w.pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return res, fmt.Errorf("reconcile: read database clock: %w", err)
	}
	if w.runTrack.Down() {
		// The runs were failing: Postgres or Redis was away, and nothing
		// could be published. What waited meanwhile is not stale yet.
		if err := w.storeState(ctx, keyBackAt, strconv.FormatInt(now.UnixMicro(), 10)); err != nil {
			return res, err
		}
	}
	if res.UnpublishedOld, err = w.checkOutbox(ctx, now.Add(-w.cfg.After)); err != nil {
		return res, err
	}

	res.RedisReset, err = w.detectLoss(ctx, now)
	if err != nil {
		w.detectTrack.Fail(err)
	} else {
		w.detectTrack.OK()
	}
	if res.RedisReset != "" {
		if w.m != nil {
			w.m.RedisLossDetected.WithLabelValues(res.RedisReset).Inc()
		}
		w.log.Warn("redis lost the stream's data; re-publishing every pending delivery", "reason", res.RedisReset)
	}
	if res.Reset, err = w.carryOnReset(ctx, now); err != nil {
		return res, err
	}

	if res.Stale, err = w.sweepStale(ctx, now); err != nil {
		return res, err
	}
	if res.StreamLength, res.StreamPending, err = w.streamGauges(ctx); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	if err := w.circuitGauges(ctx); err != nil {
		return res, err
	}
	if res.ConsumersRemoved, err = w.removeGoneConsumers(ctx); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	return res, nil
}

// carryOnReset re-publishes, after a detected loss, every pending delivery
// last published before the loss was found whose retry (if any) is due. The
// loss time is kept in Postgres until the whole backlog is back on the
// stream, so a run that fails or times out half-way is continued by the next
// one, without re-publishing what it already did (each batch bumps
// updated_at past the loss time).
func (w *Reconciler) carryOnReset(ctx context.Context, now time.Time) (int, error) {
	v, err := w.loadState(ctx, keyResetBefore)
	if err != nil || v == "" {
		return 0, err
	}
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reconcile: %s %q: %w", keyResetBefore, v, err)
	}
	before := time.UnixMicro(us)
	if wait := before.Add(w.cfg.ResetGrace).Sub(now); wait > 0 {
		// Attempts in flight at the loss are still being recorded; a run
		// is asked for once they have been.
		time.AfterFunc(wait, w.Trigger)
		return 0, nil
	}
	// What the relay and the retry jobs published since Redis came back is
	// in the new stream (or consumed, and recorded during the grace): only
	// what the loss took is published again.
	queued, err := w.streamDeliveries(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	n, err := w.republish(ctx, before, now, "redis_reset", queued)
	if err != nil {
		return n, err
	}
	// Deliveries of events still unpublished are left to the relay; but a
	// relay whose XADD went to the Redis that lost it may mark its events
	// published only now. Keep the reset until no event older than the loss
	// is unpublished, so that those are re-published by a later run.
	var relaying bool
	if err := w.pool.QueryRow(ctx, unpublishedBeforeSQL, before).Scan(&relaying); err != nil {
		return n, fmt.Errorf("reconcile: look for events still being relayed: %w", err)
	}
	if relaying {
		return n, nil
	}
	if _, err := w.pool.Exec(ctx, forgetStateSQL, keyResetBefore, v); err != nil {
		return n, fmt.Errorf("reconcile: forget %s: %w", keyResetBefore, err)
	}
	w.log.Info("re-published pending deliveries after the redis loss", "deliveries", n)
	return n, nil
}

// sweepStale re-publishes the pending deliveries that have shown no progress
// for longer than After and whose entry cannot still be in the stream. The
// stream only holds entries not yet acknowledged; if it holds any, a
// delivery last published after the oldest of them (less a margin for the
// two servers' clocks) may simply be queued behind it — during a worker
// outage, the whole backlog — and is left alone: re-publishing it would
// double the backlog at every run. Lost entries of a Redis that lost data
// are the loss detection's to re-publish, not the sweep's.
func (w *Reconciler) sweepStale(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-w.cfg.After)
	back, err := w.loadState(ctx, keyBackAt)
	if err != nil {
		return 0, err
	}
	if us, err := strconv.ParseInt(back, 10, 64); err == nil && time.UnixMicro(us).After(cutoff) {
		// The pipeline was down until less than After ago: deliveries that
		// waited through it are being published now (the relay's and the
		// retry jobs' publishing does not bump updated_at), not stale.
		return 0, nil
	}
	oldest, queued, err := w.oldestEntry(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	if queued {
		cutoff = minTime(cutoff, oldest.Add(-clockMargin))
	}
	return w.republish(ctx, cutoff, cutoff, "stale", nil)
}

// clockMargin allows for Redis's clock (stream entry ids) and Postgres's
// (updated_at) to disagree.
const clockMargin = 30 * time.Second

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// circuitGauges counts the webhooks whose circuit breaker is open or half-open.
func (w *Reconciler) circuitGauges(ctx context.Context) error {
	var open, half int
	if err := w.pool.QueryRow(ctx, circuitsSQL).Scan(&open, &half); err != nil {
		return fmt.Errorf("reconcile: count open circuits: %w", err)
	}
	if w.m != nil {
		w.m.Circuits.WithLabelValues("open").Set(float64(open))
		w.m.Circuits.WithLabelValues("half_open").Set(float64(half))
	}
	return nil
}

// checkOutbox counts outbox rows unpublished since before cutoff and, if
// there are any, wakes the relays.
func (w *Reconciler) checkOutbox(ctx context.Context, cutoff time.Time) (int, error) {
	var n int
	var oldest *time.Time
	if err := w.pool.QueryRow(ctx, unpublishedOldSQL, cutoff).Scan(&n, &oldest); err != nil {
		return 0, fmt.Errorf("reconcile: count old unpublished outbox rows: %w", err)
	}
	if w.m != nil {
		w.m.UnpublishedOld.Set(float64(n))
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := w.pool.Exec(ctx, wakeRelaysSQL); err != nil {
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
// before retryBefore, except those in queued (their entry is in the stream
// already). Each batch bumps updated_at, so that a delivery is re-published
// at most once per run and then not again until it has been idle for After
// once more; the bump commits only if Redis took the batch. It returns how
// many it published.
func (w *Reconciler) republish(ctx context.Context, updatedBefore, retryBefore time.Time, reason string, queued map[uuid.UUID]bool) (int, error) {
	total := 0
	for {
		claimed, n, err := w.republishBatch(ctx, updatedBefore, retryBefore, queued)
		if err != nil {
			return total, fmt.Errorf("reconcile (%s): %w", reason, err)
		}
		total += n
		if w.m != nil && n > 0 {
			w.m.Reconciled.WithLabelValues(reason).Add(float64(n))
		}
		if claimed < w.cfg.BatchSize {
			return total, nil
		}
	}
}
