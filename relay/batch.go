package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/stream"
)

// The relay's SQL, in one place. xid8 values cross the wire as bigint (via
// text: xid8 has no cast to bigint, and its values fit in one).
const (
	// cursorSQL reads the stored cursor. A new leader runs it after taking
	// the lock, in a statement of its own, so that its snapshot includes the
	// previous leader's last move.
	cursorSQL = `SELECT xid::text::bigint, seq, pending_xids::text[]::bigint[], pending_seqs, version
FROM hookrelay.relay_cursor WHERE id = 1`

	// moveCursorSQL stores a position from the version the relay knows ($1)
	// and returns the new version; SQLSTATE HR001 if another relay moved it.
	moveCursorSQL = `SELECT hookrelay.move_relay_cursor($1, $2::bigint::text::xid8, $3,
    $4::bigint[]::text[]::xid8[], $5::bigint[])`

	// fanOutSQL reads the next events — committed rows above the cursor
	// ($1, $2) and rows of the pending transactions ($3) above their seq
	// ($4), each part at most $5 rows in (xid, seq) order — creates one
	// delivery per matching active webhook, and returns, in one result:
	// kind 1, the delivery ids to publish (with their webhook, which picks
	// the shard) (the ones it created, plus pending
	// ones created by an earlier read of the same events, by a relay that
	// died before moving the cursor, whose retry is not already scheduled);
	// kind 2, the position of every event read; kind 3, the statement's
	// snapshot, which tells the relay which transactions may still commit
	// rows below its new position; kind 4, how many deliveries it created
	// parked (their webhooks' breakers open), which are not published.
	//
	// A conflict is resolved with DO UPDATE (a no-op assignment), not DO
	// NOTHING, so that RETURNING yields the existing row too. That matters
	// when the conflicting row belongs to a relay that died while its
	// fan-out was committing: the INSERT waits for that transaction, and
	// DO NOTHING would then return nothing, while a read in the statement's
	// own snapshot cannot see the row either — the event would be passed
	// with no stream entry. DO UPDATE re-reads the committed row. Conflicts
	// happen only when events are read again, so the normal path writes
	// nothing more. The last part of publish picks up pending deliveries of
	// webhooks that no longer match (deactivated since): published, the
	// worker skips them. OFFSET 0 keeps its status test out of the scan: the
	// lookup goes through the (event_id, webhook_id) index, never through the
	// partial index of all pending deliveries, which grows with the backlog;
	// = ANY (ARRAY(…)) makes the event ids an index condition (IN (SELECT …)
	// became a hash join over a scan of the whole index).
	fanOutSQL = `WITH ev AS MATERIALIZED (
    (SELECT o.id, o.xid, o.seq, o.project_id, o.event_type, o.data, o.created_at
     FROM hookrelay.outbox o
     WHERE (o.xid, o.seq) > ($1::bigint::text::xid8, $2::bigint)
     ORDER BY o.xid, o.seq
     LIMIT $5)
    UNION ALL
    (SELECT o.id, o.xid, o.seq, o.project_id, o.event_type, o.data, o.created_at
     FROM unnest($3::bigint[], $4::bigint[]) AS p(xid, seq)
     CROSS JOIN LATERAL (
         SELECT * FROM hookrelay.outbox
         WHERE xid = p.xid::text::xid8 AND seq > p.seq
         ORDER BY seq) o
     -- No ORDER BY here: a sort would read every pending row each batch.
     -- The rows come per pending xid in array order (a nested loop over
     -- unnest: the inner ORDER BY keeps the subquery from being flattened)
     -- and by seq within one, so the LIMIT keeps a prefix of each.
     LIMIT $5)
), upserted AS (
    INSERT INTO hookrelay.deliveries
        (event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts, parked_at)
    -- A webhook whose breaker is not closed gets its deliveries parked
    -- here, never published: closing the breaker publishes them (and the
    -- reconciler, should a close commit between this read and the closing
    -- job's), so a dead endpoint's events cost the workers nothing.
    SELECT o.id, w.id, o.project_id, o.event_type, o.data, o.created_at, $6,
           CASE WHEN h.circuit <> 'closed' THEN now() END
    FROM ev o
    JOIN hookrelay.webhooks w
      ON w.project_id = o.project_id
     AND w.is_active
     -- "*" takes every event but hookrelay's own operational ones
     -- (deliver.OperationalEventTypes), which a webhook must name.
     AND (o.event_type = ANY (w.event_types)
          OR ('*' = ANY (w.event_types)
              AND o.event_type <> ALL ('{webhook.disabled,webhook.circuit_opened,webhook.circuit_closed,delivery.failed}')))
     AND (w.application_id IS NULL OR w.application_id::text = lower(o.data -> 'application' ->> 'id'))
     AND (w.environment_name IS NULL OR w.environment_name = o.data -> 'environment' ->> 'name')
    LEFT JOIN hookrelay.webhook_health h ON h.webhook_id = w.id
    ON CONFLICT (event_id, webhook_id) DO UPDATE SET event_id = excluded.event_id
    RETURNING id, webhook_id, xmax = 0 AS created, status, next_attempt_at, parked_at
), publish AS (
    SELECT id, webhook_id, created FROM upserted
    WHERE parked_at IS NULL AND (created OR (status = 'pending' AND next_attempt_at IS NULL))
    UNION
    SELECT d.id, d.webhook_id, false FROM (
        SELECT id, webhook_id, status, next_attempt_at, parked_at FROM hookrelay.deliveries
        WHERE event_id = ANY (ARRAY(SELECT id FROM ev)) OFFSET 0
    ) d
    WHERE d.status = 'pending' AND d.next_attempt_at IS NULL AND d.parked_at IS NULL
)
SELECT 1, id, created, 0::bigint, 0::bigint, NULL::bigint[], webhook_id FROM publish
UNION ALL
SELECT 4, NULL, NULL, count(*), 0, NULL, NULL FROM upserted WHERE created AND parked_at IS NOT NULL
UNION ALL
SELECT 2, NULL, NULL, xid::text::bigint, seq, NULL, NULL FROM ev
UNION ALL
SELECT 3, NULL, NULL, pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint,
       ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x), NULL
FROM pg_current_snapshot() AS s`

	// asyncCommitSQL lets the fan-out's commit return before its WAL is
	// flushed (within wal_writer_delay, or at once by any later synchronous
	// commit, such as a writer's or the worker's recording an attempt, since
	// WAL is flushed in order): about 0.5 ms off commit → receipt at p50.
	// Only a Postgres crash in that window can lose the commit, and then it
	// loses the delivery rows and the cursor's move together: the relay reads
	// the events again and fans them out anew (new delivery ids), while the
	// stream entries naming the lost rows are dropped by the worker as
	// unknown. Nothing is lost; a receiver that got the first attempt before
	// the crash sees the event again under another delivery id (the same
	// event id). See docs/design-notes.md.
	asyncCommitSQL = `SET LOCAL synchronous_commit = off`

	// planSQL pins the relay's statements to index scans, for the
	// transaction it runs in only. Right after a burst the statistics are
	// stale (the tables look empty), and the planner otherwise bitmap-scans
	// and sorts the whole backlog on every read, or scans whole tables,
	// which makes draining a large backlog quadratic.
	planSQL = `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)`

	// setIdleSQL sets the idle flag, a sequence that the wake-up trigger's
	// WHEN clause (at insert) and function (at commit) read whatever the
	// writer's snapshot; setval is not transactional.
	setIdleSQL = `SELECT setval('hookrelay.relay_idle', $1::boolean::int)
FROM hookrelay.relay_idle WHERE last_value <> $1::boolean::int`

	// peekSQL says whether there are events past the cursor, through
	// outbox_xid_idx: a few index pages, no row locks, no writes.
	peekSQL = `SELECT EXISTS (SELECT 1 FROM hookrelay.outbox_unpublished)`

	// lagSQL reads the age of the oldest unpublished event: the first row
	// past the cursor and the first of each pending transaction, a few index
	// probes (min over hookrelay.outbox_unpublished would read the whole
	// backlog every lagEvery while the relay drains it).
	lagSQL = `SELECT coalesce(extract(epoch FROM now() - least(
    (SELECT o.created_at FROM hookrelay.relay_cursor c
     JOIN hookrelay.outbox o ON (o.xid, o.seq) > (c.xid, c.seq)
     ORDER BY o.xid, o.seq LIMIT 1),
    (SELECT min(o.created_at) FROM hookrelay.relay_cursor c
     CROSS JOIN LATERAL unnest(c.pending_xids, c.pending_seqs) AS p(xid, seq)
     CROSS JOIN LATERAL (
         SELECT created_at FROM hookrelay.outbox
         WHERE xid = p.xid AND seq > p.seq ORDER BY seq LIMIT 1) o))), 0)::float8`
)

// batch reads up to BatchSize events past the cursor and publishes them; it
// returns how many events it published (0: there were none, or another relay
// leads).
//
// Round trips: one pipelined transaction (store the position the previous
// batch published up to, read and fan out the next events, commit), and one
// pipelined XADD.
func (r *Relay) batch(ctx context.Context) (int, error) {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	if ok, err := r.ensureLead(ctx); !ok || err != nil {
		return 0, err
	}
	cur := r.lead.cur
	read, deliveries, created, parked, err := r.fanOut(ctx, cur)
	if err != nil {
		// After a failed transaction the session may be gone (and the lock
		// with it): stand by. Another relay moved the cursor: forget this
		// relay's position too.
		if isCursorMoved(err) {
			r.forget()
			return 0, nil
		}
		r.resign()
		return 0, err
	}
	r.lead.stored = true
	if err := cur.check(read.snap); err != nil {
		r.forget()
		return 0, err
	}
	next := cur.advance(read)
	if len(read.rows) == 0 && next.equal(cur) {
		return 0, nil
	}
	// A failed XADD keeps the lead: the cursor in memory has not moved, so
	// the next batch reads these events again (their deliveries exist).
	if err := r.streams.Publish(ctx, r.rdb, deliveries); err != nil {
		return 0, fmt.Errorf("relay batch of %d events: %w", len(read.rows), err)
	}
	if r.afterPublish != nil {
		if err := r.afterPublish(ctx); err != nil {
			return 0, fmt.Errorf("relay batch of %d events: after publish: %w", len(read.rows), err)
		}
	}
	r.lead.cur, r.lead.stored = next, false

	r.m.RelayBatches.Inc()
	r.m.EventsRelayed.Add(float64(len(read.rows)))
	r.m.DeliveriesCreated.Add(float64(created + parked))
	r.m.DeliveriesParked.Add(float64(parked))
	return len(read.rows), nil
}

// fanOut stores cur as the cursor unless it is stored already (the previous
// batch is published up to it),
// reads the events past it and creates their deliveries, in one transaction
// committed when it returns (one pipelined round trip). It returns what it
// read, the deliveries to publish, how many of them it created, and how
// many it created parked.
func (r *Relay) fanOut(ctx context.Context, cur cursor) (read readResult, ids []stream.Entry, created, parked int, err error) {
	xids, seqs := cur.pendingArrays()
	var moved int64 // the cursor's new version, the relay's once committed
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(planSQL)
	b.Queue(asyncCommitSQL)
	move := !r.lead.stored // nothing to store after an empty batch: no write at all
	if move {
		b.Queue(moveCursorSQL, r.lead.version, cur.xid, cur.seq, xids, seqs)
	}
	b.Queue(fanOutSQL, cur.xid, cur.seq, xids, seqs, r.cfg.BatchSize, r.cfg.MaxAttempts)
	b.Queue("COMMIT")
	br := r.pool.SendBatch(ctx, b) // a failed transaction's connection is discarded on Close
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("fan out: %w", cerr)
		}
	}()
	for range 3 {
		if _, err := br.Exec(); err != nil {
			return read, nil, 0, 0, fmt.Errorf("fan out: begin: %w", err)
		}
	}
	if move {
		if err := br.QueryRow().Scan(&moved); err != nil {
			return read, nil, 0, 0, fmt.Errorf("fan out: store the relay cursor: %w", err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return read, nil, 0, 0, fmt.Errorf("fan out: %w", err)
	}
	var (
		kind     int
		id, wh   *uuid.UUID
		flag     *bool
		a, c     int64
		xip      []int64
		pendings int
	)
	_, err = pgx.ForEachRow(rows, []any{&kind, &id, &flag, &a, &c, &xip, &wh}, func() error {
		switch kind {
		case 1: // UNION: an existing row found by both halves comes once
			ids = append(ids, stream.Entry{ID: *id, WebhookID: *wh})
			if flag != nil && *flag {
				created++
			}
		case 2:
			p := position{xid: a, seq: c}
			read.rows = append(read.rows, p)
			if !p.after(cur.xid, cur.seq) {
				pendings++
			}
		case 3:
			read.snap = snapshot{xmin: a, xmax: c, xip: xip}
		case 4:
			parked = int(a)
		}
		return nil
	})
	if err != nil {
		return read, nil, 0, 0, fmt.Errorf("fan out: %w", err)
	}
	read.pendingComplete = pendings < r.cfg.BatchSize
	tag, err := br.Exec()
	if err != nil {
		return read, nil, 0, 0, fmt.Errorf("fan out %d events: commit: %w", len(read.rows), err)
	}
	if tag.String() != "COMMIT" {
		return read, nil, 0, 0, fmt.Errorf("fan out %d events: commit answered %q", len(read.rows), tag.String())
	}
	if move {
		r.lead.version = moved
	}
	return read, ids, created, parked, nil
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
