package maintenance

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/stream"
)

// The reconciler's SQL, in one place.
const (
	// lockKey is the advisory lock that lets one reconciler run at a time
	// ("reconcil" as a 63-bit number).
	lockKey    = 0x7265636f6e63696c
	tryLockSQL = `SELECT pg_try_advisory_lock($1)`
	unlockSQL  = `SELECT pg_advisory_unlock($1)`

	keyRedisRunID  = "redis_run_id"
	keyMarker      = "redis_marker"       // token of the marker group on the stream (":<key>" added for a shard)
	keyShards      = "stream_shards"      // the shard count the markers were placed with
	keyResetBefore = "redis_reset_before" // a loss found then (unix µs) is still being re-published
	keyBackAt      = "pipeline_back_at"   // runs failed until then (unix µs): an outage of Postgres or Redis
	loadStateSQL   = `SELECT value FROM hookrelay.maintenance_state WHERE key = $1`
	storeStateSQL  = `
INSERT INTO hookrelay.maintenance_state (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()`
	forgetStateSQL = `DELETE FROM hookrelay.maintenance_state WHERE key = $1 AND value = $2`

	// The view reads the outbox past the relay's cursor: the few rows not
	// yet published (served by outbox_xid_idx).
	unpublishedOldSQL = `
SELECT count(*), min(created_at) FROM hookrelay.outbox_unpublished
WHERE created_at < $1`
	wakeRelaysSQL = `SELECT pg_notify('hookrelay_outbox', '')`

	// The webhooks whose breaker is open, and half-open (migration 00012).
	circuitsSQL = `SELECT count(*) FILTER (WHERE circuit = 'open'), count(*) FILTER (WHERE circuit = 'half_open')
FROM hookrelay.webhook_health WHERE circuit <> 'closed'`

	// Whether an event created before $1 is still unpublished.
	unpublishedBeforeSQL = `SELECT EXISTS (
    SELECT 1 FROM hookrelay.outbox_unpublished WHERE created_at < $1)`

	// Picks a batch of pending deliveries idle since before $1 whose next
	// attempt, if any, was due before $2 and whose event is published
	// (served by deliveries_pending_idx and the outbox's primary key),
	// and marks them as just reconciled. SKIP LOCKED leaves alone the rows a
	// worker is recording an attempt on right now.
	claimStaleSQL = `
WITH picked AS (
    SELECT id FROM hookrelay.deliveries
    WHERE status = 'pending' AND updated_at < $1
      -- Parked behind an open breaker: closing it publishes them. A parked
      -- delivery whose breaker is closed (its publish job lost, or the
      -- webhook re-enabled before its parked deliveries were skipped) is
      -- published here like any other stale one.
      -- Nor one of a webhook disabled or deleted meanwhile: the worker
      -- skips those.
      AND (parked_at IS NULL
           OR NOT EXISTS (
               SELECT 1 FROM hookrelay.webhook_health h
               WHERE h.webhook_id = deliveries.webhook_id AND h.circuit <> 'closed')
           OR NOT EXISTS (
               SELECT 1 FROM hookrelay.webhooks w
               WHERE w.id = deliveries.webhook_id AND w.is_active))
      AND (next_attempt_at IS NULL OR next_attempt_at < $2)
      -- An unpublished event's deliveries are the relay's to publish (it
      -- does, once its batch succeeds); publishing them here as well sends
      -- them twice after a Redis outage.
      AND NOT EXISTS (SELECT 1 FROM hookrelay.outbox_unpublished o
                      WHERE o.id = deliveries.event_id)
    ORDER BY updated_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE hookrelay.deliveries d SET updated_at = now()
FROM picked WHERE d.id = picked.id
RETURNING d.id, d.webhook_id`
)

// republishBatch claims one batch and publishes it, but for the ids in
// queued, inside the claiming transaction: if Redis refuses it, the bump
// rolls back and the deliveries stay candidates. A commit that fails after
// the publish only causes a harmless second entry on the next run. It
// returns how many deliveries it claimed and how many it published.
func (w *Reconciler) republishBatch(ctx context.Context, updatedBefore, retryBefore time.Time, queued map[uuid.UUID]bool) (claimed, published int, err error) {
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	rows, err := tx.Query(ctx, claimStaleSQL, updatedBefore, retryBefore, w.cfg.BatchSize)
	if err != nil {
		return 0, 0, fmt.Errorf("claim deliveries: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stream.Entry])
	if err != nil {
		return 0, 0, fmt.Errorf("claim deliveries: %w", err)
	}
	if len(ids) == 0 {
		return 0, 0, nil
	}
	claimed = len(ids)
	ids = slices.DeleteFunc(ids, func(e stream.Entry) bool { return queued[e.ID] })
	if err := w.streams.Publish(ctx, w.rdb, ids); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("commit reconciled deliveries: %w", err)
	}
	return claimed, len(ids), nil
}
