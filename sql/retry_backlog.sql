-- retry_backlog: the retries waiting for their time. Pending deliveries that
-- have been attempted at least once and have a next attempt scheduled,
-- counted by when that attempt is due relative to now. Every bucket is listed,
-- empty ones with zero. "overdue" should stay near zero: a retry past its
-- time means the scheduler (River) or the workers are behind.
--
-- Parameters (psql variables):
--   project_id  a project's uuid, or empty for every project
--
--   psql "$DATABASE_URL" -v project_id= -f sql/retry_backlog.sql
WITH buckets (ord, bucket, lo, hi) AS (
    VALUES (1, 'overdue',      NULL::interval,       interval '0'),
           (2, 'within 1m',    interval '0',         interval '1 minute'),
           (3, '1m to 5m',     interval '1 minute',  interval '5 minutes'),
           (4, '5m to 15m',    interval '5 minutes', interval '15 minutes'),
           (5, '15m to 1h',    interval '15 minutes', interval '1 hour'),
           (6, '1h to 4h',     interval '1 hour',    interval '4 hours'),
           (7, '4h to 24h',    interval '4 hours',   interval '24 hours'),
           (8, 'after 24h',    interval '24 hours',  NULL::interval)
), backlog AS (
    SELECT d.id, d.webhook_id, d.next_attempt_at, d.next_attempt_at - now() AS due_in
    FROM hookrelay.deliveries d
    WHERE d.status = 'pending'
      AND d.attempts > 0
      AND d.next_attempt_at IS NOT NULL
      AND (:'project_id'::text = '' OR d.project_id = nullif(:'project_id'::text, '')::uuid)
)
SELECT b.bucket,
       count(x.id)                  AS deliveries,
       count(DISTINCT x.webhook_id) AS webhooks,
       min(x.next_attempt_at)       AS first_due_at,
       max(x.next_attempt_at)       AS last_due_at
FROM buckets b
LEFT JOIN backlog x
       ON (b.lo IS NULL OR x.due_in >= b.lo)
      AND (b.hi IS NULL OR x.due_in < b.hi)
GROUP BY b.ord, b.bucket
ORDER BY b.ord;
