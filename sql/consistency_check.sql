-- consistency_check: returns nothing on a healthy system. Each row is a broken
-- promise, named in "problem", with the ids involved:
--
--   missing_delivery                a published event has no delivery for an
--                                   active webhook that matches it (same rule
--                                   as the relay: project, event type or '*',
--                                   application and environment filters).
--                                   Only webhooks created and last updated
--                                   before the event count, so a webhook added
--                                   or changed after the fan-out is no false alarm.
--   delivered_without_2xx_attempt   status delivered, but no attempt got a 2xx
--   delivered_without_delivered_at  status delivered, but no delivery time
--   failed_without_attempts         status failed, but no attempt was made
--   failed_with_attempts_left       status failed with attempts < max_attempts,
--                                   and the last attempt was not a 410 Gone
--   pending_with_no_attempts_left   status pending, but attempts >= max_attempts
--   attempts_mismatch               the attempts column disagrees with the
--                                   attempt rows (their count, or their numbers
--                                   not running 1..n)
--
-- It assumes retention prunes outbox rows before their deliveries (the
-- defaults: 7 days and 30 days). No parameters.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/consistency_check.sql
WITH attempt_stats AS (
    SELECT a.delivery_id,
           count(*)                                                 AS n,
           count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299) AS ok,
           max(a.attempt)                                           AS last_number,
           (array_agg(a.status_code ORDER BY a.attempt DESC))[1]    AS last_status
    FROM hookrelay.delivery_attempts a
    GROUP BY a.delivery_id
), missing AS (
    SELECT 'missing_delivery'::text AS problem,
           o.project_id,
           o.id                     AS event_id,
           w.id                     AS webhook_id,
           NULL::uuid               AS delivery_id,
           format('published %s event has no delivery for matching active webhook', o.event_type) AS detail
    FROM hookrelay.outbox o
    JOIN hookrelay.webhooks w
      ON w.project_id = o.project_id
     AND w.is_active
     AND (o.event_type = ANY (w.event_types)
          OR ('*' = ANY (w.event_types)
              AND o.event_type <> ALL ('{webhook.disabled,webhook.circuit_opened,webhook.circuit_closed,delivery.failed}')))
     AND (w.application_id IS NULL OR w.application_id::text = lower(o.data -> 'application' ->> 'id'))
     AND (w.environment_name IS NULL OR w.environment_name = o.data -> 'environment' ->> 'name')
     AND w.created_at < o.created_at
     AND w.updated_at < o.created_at
    WHERE o.id NOT IN (SELECT id FROM hookrelay.outbox_unpublished)
      AND NOT EXISTS (SELECT 1
                      FROM hookrelay.deliveries d
                      WHERE d.event_id = o.id AND d.webhook_id = w.id)
), disagreeing AS (
    SELECT c.problem,
           d.project_id,
           d.event_id,
           d.webhook_id,
           d.id AS delivery_id,
           format('status %s, attempts %s of %s, %s attempt rows, last status %s',
                  d.status, d.attempts, d.max_attempts, coalesce(s.n, 0),
                  coalesce(s.last_status::text, 'none')) AS detail
    FROM hookrelay.deliveries d
    LEFT JOIN attempt_stats s ON s.delivery_id = d.id
    CROSS JOIN LATERAL (VALUES
        ('delivered_without_2xx_attempt',  d.status = 'delivered' AND coalesce(s.ok, 0) = 0),
        ('delivered_without_delivered_at', d.status = 'delivered' AND d.delivered_at IS NULL),
        ('failed_without_attempts',        d.status = 'failed' AND s.n IS NULL),
        ('failed_with_attempts_left',      d.status = 'failed' AND s.n IS NOT NULL
                                           AND d.attempts < d.max_attempts
                                           AND s.last_status IS DISTINCT FROM 410),
        ('pending_with_no_attempts_left',  d.status = 'pending' AND d.attempts >= d.max_attempts),
        ('attempts_mismatch',              d.attempts <> coalesce(s.n, 0)
                                           OR coalesce(s.last_number, 0) <> coalesce(s.n, 0))
    ) AS c (problem, broken)
    WHERE c.broken
)
SELECT problem, project_id, event_id, webhook_id, delivery_id, detail
FROM (SELECT * FROM missing UNION ALL SELECT * FROM disagreeing) AS problems
ORDER BY problem, project_id, event_id, webhook_id, delivery_id;
