package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/outage"
)

// ParkedKind is the River job kind of ParkedArgs.
const ParkedKind = "hookrelay.parked"

// What a ParkedArgs job does with a webhook's parked deliveries.
const (
	// ParkedPublish puts them back on the stream: the breaker closed.
	ParkedPublish = "publish"
	// ParkedProbe puts the oldest one back on the stream, to be the probe
	// once the cool-down is over, when no new delivery comes to be it.
	ParkedProbe = "probe"
	// ParkedSkip ends them, and every other pending delivery of the
	// webhook, skipped: the webhook was disabled.
	ParkedSkip = "skip"
)

// parkedChunk is how many parked deliveries one transaction handles.
const parkedChunk = 1000

// ParkedArgs is the River job that acts on a webhook's parked deliveries
// after its breaker or its state changed; the recording transaction that
// made the change inserts it.
type ParkedArgs struct {
	WebhookID uuid.UUID `json:"webhook_id"`
	Action    string    `json:"action"`
}

// Kind implements river.JobArgs.
func (ParkedArgs) Kind() string { return ParkedKind }

type parkedWorker struct {
	river.WorkerDefaults[ParkedArgs]
	pool    *pgxpool.Pool
	rdb     redis.UniversalClient
	streams Streams
	track   *outage.Tracker
}

func (p *parkedWorker) Work(ctx context.Context, job *river.Job[ParkedArgs]) error {
	args := job.Args
	if args.Action == ParkedSkip {
		for {
			tag, err := p.pool.Exec(ctx, skipPendingSQL, args.WebhookID, parkedChunk)
			if err != nil {
				return fmt.Errorf("skip pending deliveries of webhook %s: %w", args.WebhookID, err)
			}
			if tag.RowsAffected() < parkedChunk {
				return nil
			}
		}
	}
	limit := parkedChunk
	if args.Action == ParkedProbe {
		limit = 1
	}
	for {
		n, err := p.publishChunk(ctx, args.WebhookID, args.Action == ParkedProbe, limit)
		if err != nil {
			p.track.Fail(err)
			return river.JobSnooze(p.track.Backoff())
		}
		p.track.OK()
		if n < limit || args.Action == ParkedProbe {
			return nil
		}
	}
}

// publishChunk takes up to limit parked deliveries of webhook out of the
// parking and publishes them, inside the transaction (as the reconciler
// does): if Redis refuses, they stay parked. It does nothing while the
// breaker is open (publish) or before its cool-down is over (probe).
func (p *parkedWorker) publishChunk(ctx context.Context, webhook uuid.UUID, probe bool, limit int) (int, error) {
	var ids []uuid.UUID
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, unparkChunkSQL, webhook, probe, limit)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		return p.streams.PublishWebhook(ctx, p.rdb, webhook, ids...)
	})
	if err != nil {
		return 0, fmt.Errorf("publish parked deliveries of webhook %s: %w", webhook, err)
	}
	return len(ids), nil
}

// Timeout bounds one job: a large parking is published chunk by chunk.
func (p *parkedWorker) Timeout(*river.Job[ParkedArgs]) time.Duration { return 10 * time.Minute }

// unparkChunkSQL takes a chunk of a webhook's parked deliveries out of the
// parking, in id order, while its breaker is closed ($2 false) or, for a
// probe ($2 true), while it is not closed and its cool-down is over.
const unparkChunkSQL = `
UPDATE hookrelay.deliveries d SET parked_at = NULL, updated_at = now()
WHERE d.id IN (
    SELECT id FROM hookrelay.deliveries
    WHERE webhook_id = $1 AND parked_at IS NOT NULL
    ORDER BY id LIMIT $3
    FOR UPDATE SKIP LOCKED)
  AND d.status = 'pending'
  AND CASE WHEN $2 THEN EXISTS (
          SELECT 1 FROM hookrelay.webhook_health h
          WHERE h.webhook_id = $1 AND h.circuit <> 'closed' AND h.retry_at <= now())
      ELSE NOT EXISTS (
          SELECT 1 FROM hookrelay.webhook_health h
          WHERE h.webhook_id = $1 AND h.circuit <> 'closed') END
RETURNING d.id`

// skipPendingSQL ends a chunk of a disabled webhook's pending deliveries,
// parked or not (a retry job of one finds it finished, and stops there). It
// waits for rows another transaction holds (a worker parking or recording
// them) rather than skip them: a row skipped here could stay parked.
const skipPendingSQL = `
UPDATE hookrelay.deliveries d
SET status = 'skipped', parked_at = NULL, next_attempt_at = NULL, updated_at = now(),
    last_error = 'webhook inactive: ' || coalesce(w.disabled_reason, 'disabled')
FROM hookrelay.webhooks w
WHERE w.id = $1 AND NOT w.is_active AND d.webhook_id = w.id
  AND d.id IN (
    SELECT id FROM hookrelay.deliveries
    WHERE webhook_id = $1 AND status = 'pending'
    ORDER BY id LIMIT $2
    FOR UPDATE)
  AND d.status = 'pending'`
