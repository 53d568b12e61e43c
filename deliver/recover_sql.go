package deliver

// Bulk recovery's SQL, in one place. A delivery is given its one more
// attempt by rearmSQL, as a replay is.

// recoveryColumns are the columns scanRecovery reads, in order.
const recoveryColumns = `id, project_id, webhook_id, since, until, statuses, state, total, done,
	created_at, finished_at`

// lockWebhookForRecoverySQL reads whether a webhook of the project is
// active, and keeps it from being deleted until the transaction ends (KEY
// SHARE: a PATCH may run meanwhile). No row: there is no such webhook.
const lockWebhookForRecoverySQL = `
SELECT is_active FROM hookrelay.webhooks
WHERE id = $1 AND project_id = $2
FOR KEY SHARE`

// findRecoverySQL finds the live recovery that answers a request: the same
// webhook, since, until as requested (NULL: none) and statuses.
const findRecoverySQL = `
SELECT ` + recoveryColumns + ` FROM hookrelay.recoveries
WHERE webhook_id = $1 AND project_id = $2 AND since = $3
  AND requested_until IS NOT DISTINCT FROM $4 AND statuses = $5 AND state <> 'canceled'`

// insertRecoverySQL creates a recovery, resolving until (the request's time
// when none was named, and never later than it) and counting its total, or
// does nothing when an identical live one exists (recoveries_request_key).
// The window check (recoveries_window) refuses since >= until.
const insertRecoverySQL = `
WITH w AS (SELECT least(coalesce($4::timestamptz, now()), now()) AS until)
INSERT INTO hookrelay.recoveries
    (project_id, webhook_id, since, until, requested_until, statuses, total, cursor_created_at)
SELECT $1, $2, $3, w.until, $4, $5,
       (SELECT count(*) FROM hookrelay.deliveries
        WHERE webhook_id = $2 AND project_id = $1 AND created_at >= $3 AND created_at < w.until
          AND status = ANY($5)),
       $3
FROM w
ON CONFLICT (webhook_id, since, requested_until, statuses) WHERE state <> 'canceled' DO NOTHING
RETURNING ` + recoveryColumns

// loadRecoverySQL reads one recovery of a project's webhook.
const loadRecoverySQL = `
SELECT ` + recoveryColumns + ` FROM hookrelay.recoveries
WHERE id = $1 AND webhook_id = $2 AND project_id = $3`

// listRecoveriesSQL reads a webhook's most recent recoveries, newest first.
const listRecoveriesSQL = `
SELECT ` + recoveryColumns + ` FROM hookrelay.recoveries
WHERE webhook_id = $1 AND project_id = $2
ORDER BY created_at DESC, id DESC
LIMIT $3`

// lockRecoverySQL locks a recovery for one step of its job: two runs of one
// recovery's job (a rescued job, say) take turns, and never claim a chunk
// twice.
const lockRecoverySQL = `
SELECT project_id, webhook_id, state, since, until, statuses, created_at,
       cursor_created_at, cursor_id, unpublished
FROM hookrelay.recoveries WHERE id = $1
FOR UPDATE`

// recoveryCandidatesSQL reads the next chunk of the window past the cursor:
// deliveries with a chosen status that have not changed since the recovery
// was created ($8), so that what was made pending meanwhile, and failed
// again, is not sent once more (it is not in total either). It walks
// deliveries_webhook_idx; nothing is locked yet.
const recoveryCandidatesSQL = `
SELECT id, created_at FROM hookrelay.deliveries
WHERE webhook_id = $1 AND project_id = $2
  AND created_at >= $3 AND created_at < $4
  AND (created_at, id) > ($5, $6)
  AND status = ANY($7) AND updated_at <= $8
ORDER BY created_at, id
LIMIT $9`

// lockRecoveryChunkSQL locks a chunk's candidates in id order (the lock order
// of the design notes) and keeps those that still qualify once locked: a
// concurrent replay or recovery that made one pending first wins.
const lockRecoveryChunkSQL = `
SELECT id FROM hookrelay.deliveries
WHERE id = ANY($1) AND status = ANY($2) AND updated_at <= $3
ORDER BY id
FOR UPDATE`

// claimedRecoveryChunkSQL moves the cursor past a chunk and holds the ids
// made pending until they are on the stream.
const claimedRecoveryChunkSQL = `
UPDATE hookrelay.recoveries
SET cursor_created_at = $2, cursor_id = $3, unpublished = $4, updated_at = now()
WHERE id = $1`

// publishedRecoveryChunkSQL counts a chunk once it is on the stream. The
// guard makes a second run that published the same chunk count it once.
const publishedRecoveryChunkSQL = `
UPDATE hookrelay.recoveries
SET done = done + cardinality(unpublished), unpublished = '{}', updated_at = now()
WHERE id = $1 AND unpublished = $2`

// finishRecoverySQL ends a recovery (done or canceled). total becomes at
// least done: a delivery whose failure committed just after the count, in a
// transaction older than the recovery, is sent but was not counted.
const finishRecoverySQL = `
UPDATE hookrelay.recoveries
SET state = $2, total = greatest(total, done), finished_at = now(), updated_at = now()
WHERE id = $1 AND state = 'running'`
