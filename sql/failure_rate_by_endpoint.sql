-- failure_rate_by_endpoint: how often each endpoint fails. Per webhook, the
-- HTTP attempts that started within a time window, how many of them failed
-- (no 2xx: another status, a timeout or a connection error) and the failure
-- rate (failures / attempts), worst first. Webhooks with no attempt in the
-- window are left out; a deleted webhook shows with an empty name and url.
--
-- Parameters (psql variables):
--   since       start of the window, inclusive (a timestamptz)
--   until       end of the window, exclusive (a timestamptz)
--   project_id  a project's uuid, or empty for every project
--
--   psql "$DATABASE_URL" -v since=2025-01-01 -v until=2025-02-01 -v project_id= -f sql/failure_rate_by_endpoint.sql
WITH per_webhook AS (
    SELECT d.webhook_id,
           d.project_id,
           count(DISTINCT d.id)                                                AS deliveries,
           count(*)                                                            AS attempts,
           count(*) FILTER (WHERE a.status_code IS NULL
                               OR a.status_code NOT BETWEEN 200 AND 299)       AS failures,
           min(a.started_at)                                                   AS first_attempt_at,
           max(a.started_at)                                                   AS last_attempt_at
    FROM hookrelay.delivery_attempts a
    JOIN hookrelay.deliveries d ON d.id = a.delivery_id
    WHERE a.started_at >= :'since'::timestamptz
      AND a.started_at < :'until'::timestamptz
      AND (:'project_id'::text = '' OR d.project_id = nullif(:'project_id'::text, '')::uuid)
    GROUP BY d.webhook_id, d.project_id
)
SELECT p.webhook_id,
       p.project_id,
       w.name                                     AS webhook_name,
       w.url                                      AS webhook_url,
       w.is_active,
       p.deliveries,
       p.attempts,
       p.failures,
       round(p.failures::numeric / p.attempts, 4) AS failure_rate,
       p.first_attempt_at,
       p.last_attempt_at
FROM per_webhook p
LEFT JOIN hookrelay.webhooks w ON w.id = p.webhook_id
ORDER BY failure_rate DESC, p.failures DESC, p.webhook_id;
