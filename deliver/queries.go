package deliver

// The package's SQL, in one place.

// loadTargetsSQL reads, for every delivery id of one stream read, the delivery
// and its webhook (NULL columns when the webhook was deleted). due is false
// while a scheduled retry is still in the future (its River job owns it).
// The previous secrets are those whose grace period has not ended, most
// recently retired first (empty when the webhook was deleted). The function
// that picks them is called only when there are some: a call costs Postgres
// about 100 us even on an empty array, which was a third of the query.
const loadTargetsSQL = `
SELECT d.id, d.webhook_id, d.status, d.attempts, d.max_attempts,
       d.event_id, d.event_type, d.event_created_at, d.project_id, d.payload,
       (d.next_attempt_at IS NULL OR d.next_attempt_at <= now()) AS due,
       w.id IS NOT NULL AS webhook_found,
       coalesce(w.is_active, false), w.disabled_reason, w.url, w.secret,
       CASE WHEN coalesce(w.previous_secrets, '[]') = '[]' THEN '{}'::text[]
            ELSE hookrelay.valid_previous_secrets(w.previous_secrets) END,
       w.headers,
       coalesce(h.circuit, 'closed'), coalesce(h.retry_at <= now(), false) AS probe_due,
       coalesce(h.consecutive_failures > 0 OR h.circuit <> 'closed', false) AS unhealthy,
       CASE WHEN h.paused_until > now() THEN h.paused_until END AS paused_until,
       w.rate_limit, w.max_in_flight,
       -- A slot more than 2 s (or two intervals) past is stale (its entry
       -- queued behind a backlog): sending it now would burst, so it is
       -- reserved again. Up to 2 s late is River's lateness (it looks for due
       -- jobs every second): such a slot is used, or the endpoint would fall
       -- far below its rate.
       CASE WHEN d.slot_at <= now() + interval '50 milliseconds'
             AND d.slot_at >= now() - greatest(interval '2 seconds', make_interval(secs => 2.0 / w.rate_limit))
            THEN d.slot_at END AS slot_held
FROM hookrelay.deliveries d
LEFT JOIN hookrelay.webhooks w ON w.id = d.webhook_id AND w.project_id = d.project_id
LEFT JOIN hookrelay.webhook_health h ON h.webhook_id = d.webhook_id
WHERE d.id = ANY($1)`

// loadPlanSQL, run in the load's transaction, pins loadTargetsSQL to index
// scans (see Worker.load).
const loadPlanSQL = `SELECT set_config('enable_seqscan', 'off', true)`

// beginRecordSQL begins a recording transaction in which the planner avoids
// sequential scans, in the same round trip as BEGIN. Cached generic plans are
// made once per connection, often while the deliveries table is nearly empty,
// and are not remade as it grows before autovacuum analyzes it: the lock and
// update by id would then seq-scan the whole table for every batch.
// enable_seqscan = off keeps the cheap cached plans but makes them index
// scans (force_custom_plan also worked, but replanning every batch cost a
// quarter of the throughput).
//
// lock_timeout bounds the wait for a delivery row that something else holds
// (a frozen worker's transaction, the mass update of a webhook DELETE): the
// batch then fails with lock_not_available and its attempts are recorded one
// by one, so that the rows not held go through.
const beginRecordSQL = `BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL lock_timeout = '1s'`

// recordedAttemptsSQL finds which of a batch's attempts (delivery id, start
// time) are already recorded: after a COMMIT whose answer was lost, the
// retry must not record them twice.
const recordedAttemptsSQL = `
SELECT a.delivery_id, a.started_at
FROM unnest($1::uuid[], $2::timestamptz[]) AS u(delivery_id, started_at)
JOIN hookrelay.delivery_attempts a ON a.delivery_id = u.delivery_id AND a.started_at = u.started_at`

// finishUnsentSQL ends a pending delivery without an HTTP attempt (skipped, or
// failed with no attempts left).
const finishUnsentSQL = `
UPDATE hookrelay.deliveries
SET status = $2, last_error = $3, next_attempt_at = NULL, updated_at = now()
WHERE id = $1 AND status = 'pending'`

// lockDeliveriesSQL locks the delivery rows of one recording batch, in id order
// so that concurrent batches sharing rows cannot deadlock, and reads the
// database's clock, from which due times are computed.
const lockDeliveriesSQL = `
SELECT id, status, attempts, max_attempts, now() FROM hookrelay.deliveries
WHERE id = ANY($1) ORDER BY id FOR UPDATE`

// updateDeliveriesSQL records the outcome of the latest attempt of each delivery
// of a batch (one array element per delivery). delivered_at is set when the
// delivery becomes delivered, and kept otherwise.
const updateDeliveriesSQL = `
UPDATE hookrelay.deliveries d
SET attempts = u.attempts,
    status = u.status,
    next_attempt_at = u.next_attempt_at,
    last_attempt_at = u.last_attempt_at,
    last_response_status = u.last_response_status,
    last_error = u.last_error,
    delivered_at = CASE WHEN u.status = 'delivered' AND d.status <> 'delivered' THEN now() ELSE d.delivered_at END,
    parked_at = NULL,
    slot_at = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::integer[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::integer[], $7::text[])
    AS u(id, attempts, status, next_attempt_at, last_attempt_at, last_response_status, last_error)
WHERE d.id = u.id`

// insertAttemptsSQL writes the audit rows of a batch's HTTP attempts (one array
// element per attempt).
const insertAttemptsSQL = `
INSERT INTO hookrelay.delivery_attempts
    (delivery_id, attempt, started_at, duration_ms, status_code, error_class, error, response_body)
SELECT * FROM unnest($1::uuid[], $2::integer[], $3::timestamptz[], $4::double precision[],
    $5::integer[], $6::text[], $7::text[], $8::text[])`

// deactivateWebhookSQL turns a webhook off after its endpoint answered 410
// Gone, and emits webhook.disabled.
const deactivateWebhookSQL = `
WITH off AS (
    UPDATE hookrelay.webhooks
    SET is_active = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
    WHERE id = $1 AND is_active
    RETURNING id, project_id, name, url, disabled_reason
)
SELECT hookrelay.emit('webhook.disabled', project_id, jsonb_build_object(
    'webhook', jsonb_build_object('id', id, 'name', name, 'url', url),
    'disabled_reason', disabled_reason))
FROM off`

// recordHealthSQL folds a recording batch's attempts into their webhooks'
// health (migration 00012) and returns the transitions.
const recordHealthSQL = `SELECT * FROM hookrelay.record_health($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

// emitFailedSQL emits one delivery.failed event per element.
const emitFailedSQL = `
SELECT hookrelay.emit('delivery.failed', p, d) FROM unnest($1::uuid[], $2::jsonb[]) AS u(p, d)`

// claimProbeSQL makes the caller's next attempt on a webhook the breaker's
// probe ($2: how long before the probe counts as lost).
const claimProbeSQL = `
UPDATE hookrelay.webhook_health
SET circuit = 'half_open', retry_at = now() + $2::interval, updated_at = now()
WHERE webhook_id = $1 AND circuit <> 'closed' AND retry_at <= now()`

// lockPendingSQL locks the pending deliveries of $1 in id order (the lock
// order), as "locked", for the UPDATE that follows it.
const lockPendingSQL = `
WITH locked AS (
    SELECT id FROM hookrelay.deliveries
    WHERE id = ANY($1) AND status = 'pending'
    ORDER BY id FOR UPDATE
)`

// parkSQL parks pending deliveries (in id order, the lock order): no stream
// entry, no retry job, until their webhook's breaker closes.
const parkSQL = lockPendingSQL + `
UPDATE hookrelay.deliveries d
SET parked_at = now(), next_attempt_at = NULL, updated_at = now()
FROM locked WHERE d.id = locked.id`

// openCircuitsSQL reads which of the webhooks have a breaker that is not
// closed, FOR SHARE: a breaker cannot close until the caller commits.
const openCircuitsSQL = `
SELECT webhook_id FROM hookrelay.webhook_health
WHERE webhook_id = ANY($1) AND circuit <> 'closed'
ORDER BY webhook_id FOR SHARE`

// deferSQL moves deliveries (in id order, the lock order) to a later
// attempt without using one: their webhook is rate-limited, paused, or at
// its in-flight limit. slot_at is the slot reserved for each, if any.
const deferSQL = lockPendingSQL + `
UPDATE hookrelay.deliveries d
SET next_attempt_at = u.at, slot_at = u.slot_at, updated_at = now()
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS u(id, at, slot_at), locked
WHERE d.id = u.id AND locked.id = u.id`

// unparkSQL takes deliveries out of the parking.
const unparkSQL = `
UPDATE hookrelay.deliveries SET parked_at = NULL, updated_at = now()
WHERE id = ANY($1) AND parked_at IS NOT NULL`

// lockForReplaySQL locks a delivery of one project's webhook for a replay.
const lockForReplaySQL = `
SELECT status FROM hookrelay.deliveries
WHERE id = $1 AND project_id = $2 AND webhook_id = $3
FOR UPDATE`

// lockWebhookForReplaySQL keeps a replayed delivery's webhook from being
// deleted until the replay commits (KEY SHARE: a PATCH may run meanwhile).
const lockWebhookForReplaySQL = `
SELECT 1 FROM hookrelay.webhooks
WHERE id = $1 AND project_id = $2
FOR KEY SHARE`

// rearmSQL gives a terminal delivery one more attempt.
const rearmSQL = `
UPDATE hookrelay.deliveries
SET status = 'pending', max_attempts = attempts + 1, next_attempt_at = NULL,
    delivered_at = NULL, updated_at = now()
WHERE id = $1`
