-- failed_deliveries: the dead letters. Deliveries that ended "failed" (every
-- attempt used, or the endpoint answered 410 Gone) within a time window,
-- newest first. A failed delivery stays replayable through the API.
--
-- Parameters (psql variables):
--   since       start of the window, inclusive (a timestamptz)
--   until       end of the window, exclusive (a timestamptz)
--   project_id  a project's uuid, or empty for every project
--
-- The failure time is the time of the last attempt (or of the last update
-- when there is none).
--
--   psql "$DATABASE_URL" -v since=2025-01-01 -v until=2025-02-01 -v project_id= -f sql/failed_deliveries.sql
SELECT d.id                                      AS delivery_id,
       d.project_id,
       d.webhook_id,
       w.url                                     AS webhook_url,
       d.event_id,
       d.event_type,
       d.attempts,
       d.max_attempts,
       d.last_response_status,
       d.last_error,
       d.event_created_at,
       coalesce(d.last_attempt_at, d.updated_at) AS failed_at
FROM hookrelay.deliveries d
LEFT JOIN hookrelay.webhooks w ON w.id = d.webhook_id
WHERE d.status = 'failed'
  AND coalesce(d.last_attempt_at, d.updated_at) >= :'since'::timestamptz
  AND coalesce(d.last_attempt_at, d.updated_at) < :'until'::timestamptz
  AND (:'project_id'::text = '' OR d.project_id = nullif(:'project_id'::text, '')::uuid)
ORDER BY failed_at DESC, d.id;
