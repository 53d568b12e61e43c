-- stuck_deliveries: pending deliveries that are making no progress. Not
-- finished, no retry due in the future (none scheduled, or one overdue), and
-- untouched for longer than a threshold. The reconciler puts such deliveries
-- back on the stream; rows here that stay for long mean it is not running.
-- Deliveries parked behind an open circuit breaker (parked_at) are waiting
-- by design and are not listed. Oldest first.
--
-- Parameters (psql variables):
--   older_than  how long without progress counts as stuck (an interval, e.g. '10 minutes')
--   project_id  a project's uuid, or empty for every project
--
--   psql "$DATABASE_URL" -v older_than='10 minutes' -v project_id= -f sql/stuck_deliveries.sql
SELECT d.id                 AS delivery_id,
       d.project_id,
       d.webhook_id,
       d.event_id,
       d.event_type,
       d.attempts,
       d.max_attempts,
       d.next_attempt_at,
       d.updated_at,
       now() - d.updated_at AS stuck_for
FROM hookrelay.deliveries d
WHERE d.status = 'pending'
  AND d.parked_at IS NULL -- held while its webhook's breaker is open: waiting, not stuck
  AND d.updated_at < now() - :'older_than'::interval
  AND (d.next_attempt_at IS NULL OR d.next_attempt_at < now() - :'older_than'::interval)
  AND (:'project_id'::text = '' OR d.project_id = nullif(:'project_id'::text, '')::uuid)
ORDER BY d.updated_at, d.id;
