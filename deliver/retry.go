package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/outage"
)

// RetryKind is the River job kind of RetryArgs.
const RetryKind = "hookrelay.retry"

// RetryArgs is the River job that puts a delivery back on the stream when its
// retry is due. The worker inserts it in the same transaction that records the
// failed attempt, so a scheduled retry survives any restart.
type RetryArgs struct {
	DeliveryID uuid.UUID `json:"delivery_id"`
	// WebhookID picks the delivery's shard. Jobs inserted before streams
	// were sharded lack it; their webhook is read from Postgres.
	WebhookID uuid.UUID `json:"webhook_id,omitzero"`
}

// Kind implements river.JobArgs.
func (RetryArgs) Kind() string { return RetryKind }

// Hooks implements river.JobArgsWithHooks: retry jobs are inserted as
// available with their future scheduled_at, so that a producer fetches them
// as soon as they are due (River's fetch query honours scheduled_at) instead
// of waiting for the leader's scheduler, which runs only every 5 seconds.
func (RetryArgs) Hooks() []rivertype.Hook {
	return []rivertype.Hook{river.HookInsertBeginFunc(func(_ context.Context, p *rivertype.JobInsertParams) error {
		if p.State == rivertype.JobStateScheduled {
			p.State = rivertype.JobStateAvailable
		}
		return nil
	})}
}

// retryWorker publishes a due delivery id back onto the stream. While Redis
// is unavailable it snoozes the job with backoff (a snooze uses up no
// attempt and River logs it at debug level): the outage is logged once, by
// the tracker, and counted, not written once per job.
type retryWorker struct {
	river.WorkerDefaults[RetryArgs]
	pool    *pgxpool.Pool
	rdb     redis.UniversalClient
	streams Streams
	track   *outage.Tracker
}

func (r *retryWorker) Work(ctx context.Context, job *river.Job[RetryArgs]) error {
	webhook := job.Args.WebhookID
	if webhook == uuid.Nil && !r.streams.Single() {
		err := r.pool.QueryRow(ctx, webhookOfSQL, job.Args.DeliveryID).Scan(&webhook)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // deleted by retention: nothing to publish
		}
		if err != nil {
			return fmt.Errorf("read the webhook of delivery %s: %w", job.Args.DeliveryID, err)
		}
	}
	if err := r.streams.PublishWebhook(ctx, r.rdb, webhook, job.Args.DeliveryID); err != nil {
		r.track.Fail(err)
		return river.JobSnooze(r.track.Backoff())
	}
	r.track.OK()
	return nil
}

// webhookOfSQL reads the webhook of a delivery (a retry job of before the
// shards names only its delivery).
const webhookOfSQL = `SELECT webhook_id FROM hookrelay.deliveries WHERE id = $1`

// Timeout bounds one publish.
func (r *retryWorker) Timeout(*river.Job[RetryArgs]) time.Duration { return 30 * time.Second }

// AddWorkers registers deliver's River workers on workers, for the River
// client that the wiring assembles (package jobs): the retry job, which
// publishes a due delivery back onto its shard of streams, the parked job, which acts on
// a webhook's parked deliveries when its breaker or state changes, and the
// recovery job (RecoverArgs), which works a bulk recovery on pool. Failed
// publishes and queries are counted on reg; a nil reg means metrics off and a nil log
// discards.
func AddWorkers(workers *river.Workers, pool *pgxpool.Pool, rdb redis.UniversalClient, streams Streams, reg prometheus.Registerer, log *slog.Logger) error {
	if pool == nil || rdb == nil || streams.Base == "" {
		return errors.New("deliver: AddWorkers needs a pool, a Redis client and a stream key")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	errs := metrics.New(reg).DependencyErrors
	track := outage.New("redis: publish retry", log, errs.WithLabelValues("redis", "publish retry"))
	if err := river.AddWorkerSafely(workers, &retryWorker{pool: pool, rdb: rdb, streams: streams, track: track}); err != nil {
		return fmt.Errorf("register retry worker: %w", err)
	}
	parked := outage.New("redis: publish parked", log, errs.WithLabelValues("redis", "publish parked"))
	if err := river.AddWorkerSafely(workers, &parkedWorker{pool: pool, rdb: rdb, streams: streams, track: parked}); err != nil {
		return fmt.Errorf("register parked worker: %w", err)
	}
	rec := &recoverWorker{pool: pool, rdb: rdb, streams: streams,
		redisDown: outage.New("redis: publish recovery", log, errs.WithLabelValues("redis", "publish recovery")),
		pgDown:    outage.New("postgres: recovery", log, errs.WithLabelValues("postgres", "recovery"))}
	if err := river.AddWorkerSafely(workers, rec); err != nil {
		return fmt.Errorf("register recovery worker: %w", err)
	}
	return nil
}
