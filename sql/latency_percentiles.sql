-- latency_percentiles: how long events take to reach each endpoint. Per
-- webhook, over the deliveries delivered within a time window, the time from
-- the event's creation (its emitting transaction) to the successful attempt's
-- completion, in milliseconds: p50, p95, p99 and max. Slowest p95 first.
--
-- Parameters (psql variables):
--   since       start of the window, inclusive (a timestamptz, on delivered_at)
--   until       end of the window, exclusive (a timestamptz)
--   project_id  a project's uuid, or empty for every project
--
--   psql "$DATABASE_URL" -v since=2025-01-01 -v until=2025-02-01 -v project_id= -f sql/latency_percentiles.sql
WITH latency AS (
    SELECT d.webhook_id,
           d.project_id,
           (extract(epoch FROM d.delivered_at - d.event_created_at) * 1000)::double precision AS ms
    FROM hookrelay.deliveries d
    WHERE d.status = 'delivered'
      AND d.delivered_at >= :'since'::timestamptz
      AND d.delivered_at < :'until'::timestamptz
      AND (:'project_id'::text = '' OR d.project_id = nullif(:'project_id'::text, '')::uuid)
), per_webhook AS (
    SELECT webhook_id,
           project_id,
           count(*)                                                           AS delivered,
           round(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p50_ms,
           round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p95_ms,
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS p99_ms,
           round(max(ms)::numeric, 1)                                          AS max_ms
    FROM latency
    GROUP BY webhook_id, project_id
)
SELECT p.webhook_id,
       p.project_id,
       w.name AS webhook_name,
       w.url  AS webhook_url,
       p.delivered,
       p.p50_ms,
       p.p95_ms,
       p.p99_ms,
       p.max_ms
FROM per_webhook p
LEFT JOIN hookrelay.webhooks w ON w.id = p.webhook_id
ORDER BY p.p95_ms DESC, p.webhook_id;
