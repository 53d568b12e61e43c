package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookrelay/hookrelay/internal/stream"
)

// The relay's SQL, in one place.
const (
	// claimSQL locks a batch of unpublished events. NO KEY UPDATE does not
	// conflict with KEY SHARE locks; SKIP LOCKED lets relays share the work.
	claimSQL = `SELECT id FROM hookrelay.outbox
WHERE published_at IS NULL
ORDER BY seq
LIMIT $1
FOR NO KEY UPDATE SKIP LOCKED`

	// fanOutSQL creates one delivery per matching active webhook and returns
	// the ids to publish: the ones it created, plus pending ones created by
	// an earlier attempt at the same events (a relay that died before marking
	// them published) whose retry is not already scheduled.
	//
	// A conflict is resolved with DO UPDATE (a no-op assignment), not DO
	// NOTHING, so that RETURNING yields the existing row too. That matters
	// when the conflicting row belongs to a relay that died while its
	// fan-out was committing: the INSERT waits for that transaction, and
	// DO NOTHING would then return nothing, while a read in the statement's
	// own snapshot cannot see the row either — the event would be marked
	// published with no stream entry. DO UPDATE re-reads the committed row.
	// Conflicts happen only when events are claimed again, so the normal
	// path writes nothing more. The second half picks up pending deliveries
	// of webhooks that no longer match (deactivated since): published, the
	// worker skips them. OFFSET 0 keeps its status test out of the scan: the
	// lookup goes through the (event_id, webhook_id) index, never through the
	// partial index of all pending deliveries, which grows with the backlog.
	fanOutSQL = `WITH upserted AS (
    INSERT INTO hookrelay.deliveries
        (event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts)
    SELECT o.id, w.id, o.project_id, o.event_type, o.data, o.created_at, $2
    FROM hookrelay.outbox o
    JOIN hookrelay.webhooks w
      ON w.project_id = o.project_id
     AND w.is_active
     AND (o.event_type = ANY (w.event_types) OR '*' = ANY (w.event_types))
     AND (w.application_id IS NULL OR w.application_id::text = lower(o.data -> 'application' ->> 'id'))
     AND (w.environment_name IS NULL OR w.environment_name = o.data -> 'environment' ->> 'name')
    WHERE o.id = ANY ($1)
    ON CONFLICT (event_id, webhook_id) DO UPDATE SET event_id = excluded.event_id
    RETURNING id, xmax = 0 AS created, status, next_attempt_at
)
SELECT id, created FROM upserted WHERE created OR (status = 'pending' AND next_attempt_at IS NULL)
UNION
SELECT d.id, false FROM (
    SELECT id, status, next_attempt_at FROM hookrelay.deliveries WHERE event_id = ANY ($1) OFFSET 0
) d
WHERE d.status = 'pending' AND d.next_attempt_at IS NULL`

	// planSQL pins the relay's statements to index scans, for the
	// transaction it runs in only. Right after a burst the statistics are
	// stale (the tables look empty), and the planner otherwise bitmap-scans
	// and sorts the whole backlog on every claim, or scans whole tables,
	// which makes draining a large backlog quadratic.
	planSQL = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)`

	markPublishedSQL = `UPDATE hookrelay.outbox SET published_at = now() WHERE id = ANY ($1)`

	// setIdleSQL sets the idle flag, a sequence that the wake-up trigger reads
	// whatever the writer's snapshot; setval is not transactional.
	setIdleSQL = `SELECT setval('hookrelay.relay_idle', $1::boolean::int)
FROM hookrelay.relay_idle WHERE last_value <> $1::boolean::int`

	// lagSQL reads the oldest unpublished event through the partial index.
	lagSQL = `SELECT coalesce(extract(epoch FROM now() - (
    SELECT created_at FROM hookrelay.outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1)), 0)::float8`
)

// batch claims up to BatchSize unpublished events and publishes them; it
// returns how many events it published (0: nothing was claimable).
//
// Round trips: BEGIN+claim (one pipelined batch) on connection A, the
// fan-out in its own transaction on connection B (one pipelined batch), one
// pipelined XADD, UPDATE+COMMIT (one pipelined batch) on A.
func (r *Relay) batch(ctx context.Context) (int, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("claim outbox batch: acquire connection: %w", err)
	}
	defer conn.Release()
	inTx := false
	defer func() {
		if inTx {
			// A failed batch must not hand the pool a connection inside a
			// transaction (pgxpool would close it anyway). The rows stay
			// unpublished and are claimed again.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = conn.Exec(rctx, "ROLLBACK")
		}
	}()

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(planSQL)
	b.Queue(claimSQL, r.cfg.BatchSize)
	br := conn.SendBatch(ctx, b)
	inTx = true
	for range 2 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return 0, fmt.Errorf("claim outbox batch: begin: %w", err)
		}
	}
	rows, err := br.Query()
	var events []uuid.UUID
	if err == nil {
		events, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("claim outbox batch: %w", err)
	}
	if len(events) == 0 {
		return 0, nil // the deferred ROLLBACK ends the empty claim
	}

	deliveries, created, err := r.fanOut(ctx, events)
	if err != nil {
		return 0, err
	}
	if err := stream.Publish(ctx, r.rdb, r.cfg.Stream, deliveries); err != nil {
		return 0, fmt.Errorf("relay batch of %d events: %w", len(events), err)
	}
	if r.afterPublish != nil {
		if err := r.afterPublish(ctx); err != nil {
			return 0, fmt.Errorf("relay batch of %d events: after publish: %w", len(events), err)
		}
	}

	b = &pgx.Batch{}
	b.Queue(markPublishedSQL, events)
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, b)
	var tag pgconn.CommandTag
	if _, err = br.Exec(); err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("mark %d events published: %w", len(events), err)
	}
	inTx = false
	if tag.String() != "COMMIT" {
		return 0, fmt.Errorf("mark %d events published: commit answered %q", len(events), tag.String())
	}

	r.m.RelayBatches.Inc()
	r.m.EventsRelayed.Add(float64(len(events)))
	r.m.DeliveriesCreated.Add(float64(created))
	return len(events), nil
}

// fanOut creates the deliveries of events on a second connection, in its own
// transaction (committed when it returns, in one pipelined round trip), and
// returns the ids to publish and how many of them it created.
func (r *Relay) fanOut(ctx context.Context, events []uuid.UUID) (ids []uuid.UUID, created int, err error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(planSQL)
	b.Queue(fanOutSQL, events, r.cfg.MaxAttempts)
	b.Queue("COMMIT")
	br := r.pool.SendBatch(ctx, b) // a failed transaction's connection is discarded on Close
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("fan out %d events: %w", len(events), cerr)
		}
	}()
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return nil, 0, fmt.Errorf("fan out %d events: begin: %w", len(events), err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, 0, fmt.Errorf("fan out %d events: %w", len(events), err)
	}
	var (
		id    uuid.UUID
		isNew bool
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &isNew}, func() error {
		ids = append(ids, id) // UNION: an existing row found by both halves comes once
		if isNew {
			created++
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("fan out %d events: %w", len(events), err)
	}
	tag, err := br.Exec()
	if err != nil {
		return nil, 0, fmt.Errorf("fan out %d events: commit: %w", len(events), err)
	}
	if tag.String() != "COMMIT" {
		return nil, 0, fmt.Errorf("fan out %d events: commit answered %q", len(events), tag.String())
	}
	return ids, created, nil
}

// setIdle records whether the relay waits for a NOTIFY; it writes only when
// the flag changes.
func (r *Relay) setIdle(ctx context.Context, idle bool) error {
	if _, err := r.pool.Exec(ctx, setIdleSQL, idle); err != nil {
		return fmt.Errorf("set relay idle=%t: %w", idle, err)
	}
	return nil
}

// refreshLag updates the lag gauge (age of the oldest unpublished event, rows
// locked by another relay included) at most every lagEvery.
func (r *Relay) refreshLag(ctx context.Context) {
	if time.Since(r.lagAt) < lagEvery {
		return
	}
	r.lagAt = time.Now()
	var lag float64
	if err := r.pool.QueryRow(ctx, lagSQL).Scan(&lag); err != nil {
		r.log.Warn("relay: could not read lag", "err", err)
		return
	}
	r.m.RelayLag.Set(lag)
}
