-- Endpoint health and flow control (issue 13).
--
-- hookrelay.webhook_health holds, per webhook, what its recent attempts say
-- about its endpoint: the consecutive failures since the last success, since
-- when it has been failing, and its circuit breaker. A webhook whose endpoint
-- never failed has no row: the worker's recording transaction writes one only
-- when an attempt fails, or when an attempt succeeds on an endpoint that was
-- failing, so a healthy endpoint costs no write here.
--
-- The breaker (see hookrelay.record_health below): closed → open after
-- `threshold` consecutive failed attempts; while open, deliveries of the
-- webhook are parked (deliveries.parked_at), not sent; once retry_at passes,
-- one delivery goes as a probe (half_open, retry_at then bounds the probe);
-- a success closes the breaker and the parked deliveries are published again,
-- a failure opens it again with a cool-down twice as long (up to a cap).
--
-- No foreign key on webhook_id, as for deliveries: the recording transaction
-- of a webhook deleted meanwhile must not fail. The API's DELETE removes the
-- row.

-- +goose Up
CREATE TABLE hookrelay.webhook_health (
    webhook_id           uuid PRIMARY KEY,
    circuit              text NOT NULL DEFAULT 'closed' CHECK (circuit IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- The first failure since the last success; NULL while not failing.
    failing_since        timestamptz,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    opened_at            timestamptz,
    -- open: when a probe may go; half_open: when the probe is presumed lost
    -- (its worker died) and another may go.
    retry_at             timestamptz,
    -- Probes that failed since the breaker opened: the cool-down doubles with each.
    failed_probes        integer NOT NULL DEFAULT 0,
    -- A 429 or 503 with Retry-After pauses the whole endpoint until then.
    paused_until         timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE hookrelay.webhooks
    ADD COLUMN disabled_at   timestamptz,
    ADD COLUMN rate_limit    integer CHECK (rate_limit BETWEEN 1 AND 100000),
    ADD COLUMN max_in_flight integer CHECK (max_in_flight BETWEEN 1 AND 10000);

-- A pending delivery of a webhook whose breaker is open is parked: no stream
-- entry, no retry job, left alone by the reconciler; closing the breaker
-- publishes the webhook's parked deliveries again (in id order, by this index).
ALTER TABLE hookrelay.deliveries ADD COLUMN parked_at timestamptz;
-- A delivery of a rate-limited webhook deferred to the slot it reserved
-- (internal/flow) is sent at that time without reserving again.
ALTER TABLE hookrelay.deliveries ADD COLUMN slot_at timestamptz;
CREATE INDEX deliveries_parked_idx ON hookrelay.deliveries (webhook_id, id) WHERE parked_at IS NOT NULL;

-- record_health folds one recording batch's attempts into the health of
-- their webhooks (one array element per webhook) and returns the webhooks
-- whose breaker or state changed:
--   transition 'opened'   the breaker opened (threshold reached)
--   transition 'reopened' a probe failed; the breaker is open again, longer
--   transition 'closed'   an attempt succeeded while the breaker was not closed
--   transition 'disabled' no success for disable_after: the webhook is deactivated
-- pause is when a 429 or 503 with Retry-After lets the endpoint be tried
-- again (NULL if none): the whole endpoint waits until then.
-- It emits the operational events webhook.circuit_opened, .circuit_closed and
-- .disabled through hookrelay.emit, in the caller's transaction, into the
-- webhook's project. Attempts of webhooks deleted or deactivated meanwhile
-- change nothing. The caller locks the batch's deliveries first (lock order:
-- deliveries, then webhook_health, then webhooks).
-- +goose StatementBegin
CREATE FUNCTION hookrelay.record_health(
    webhook_ids uuid[], succeeded boolean[], tail_failures integer[],
    first_tail_failure timestamptz[], last_success timestamptz[], last_failure timestamptz[],
    pause timestamptz[], threshold integer, cooldown interval, max_cooldown interval, disable_after interval)
RETURNS TABLE (webhook_id uuid, project_id uuid, transition text, consecutive_failures integer,
               failing_since timestamptz, retry_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    u   record;
    h   hookrelay.webhook_health;
    w   hookrelay.webhooks;
    old text;
    ev  jsonb;
BEGIN
    FOR u IN
        SELECT * FROM unnest(webhook_ids, succeeded, tail_failures, first_tail_failure, last_success, last_failure, pause)
            AS t(id, ok, tail, first_fail, last_ok, last_fail, pause_until)
        ORDER BY id
    LOOP
        SELECT * INTO w FROM hookrelay.webhooks WHERE id = u.id AND is_active;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        SELECT * INTO h FROM hookrelay.webhook_health WHERE webhook_id = u.id FOR UPDATE;
        IF NOT FOUND THEN
            IF u.tail = 0 AND u.pause_until IS NULL THEN
                CONTINUE; -- a success on an endpoint that was never failing: nothing to write
            END IF;
            INSERT INTO hookrelay.webhook_health (webhook_id) VALUES (u.id) ON CONFLICT DO NOTHING;
            SELECT * INTO h FROM hookrelay.webhook_health WHERE webhook_id = u.id FOR UPDATE;
        END IF;
        old := h.circuit;
        transition := NULL;
        h.paused_until := greatest(h.paused_until, u.pause_until);
        IF u.ok THEN
            h.consecutive_failures := u.tail;
            h.failing_since := CASE WHEN u.tail > 0 THEN u.first_fail END;
            h.last_success_at := greatest(h.last_success_at, u.last_ok);
            IF h.circuit <> 'closed' THEN
                h.circuit := 'closed';
                h.retry_at := NULL;
                h.failed_probes := 0;
                transition := 'closed';
            END IF;
        ELSE
            h.consecutive_failures := h.consecutive_failures + u.tail;
            h.failing_since := coalesce(h.failing_since, u.first_fail);
        END IF;
        IF u.tail > 0 THEN
            h.last_failure_at := greatest(h.last_failure_at, u.last_fail);
            IF h.circuit = 'closed' AND h.consecutive_failures >= threshold THEN
                h.circuit := 'open';
                h.opened_at := now();
                h.failed_probes := 0;
                h.retry_at := now() + cooldown;
                transition := CASE WHEN transition = 'closed' THEN 'reopened' ELSE 'opened' END;
            ELSIF h.circuit = 'half_open' THEN
                h.circuit := 'open';
                h.failed_probes := h.failed_probes + 1;
                h.retry_at := now() + least(cooldown * power(2, least(h.failed_probes, 30)), max_cooldown);
                transition := 'reopened';
            END IF;
        END IF;
        IF NOT u.ok AND h.failing_since IS NOT NULL AND h.failing_since <= now() - disable_after THEN
            UPDATE hookrelay.webhooks
            SET is_active = false, disabled_at = now(), updated_at = now(),
                disabled_reason = format('endpoint failed without a success since %s (%s consecutive failed attempts)',
                    to_char(h.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), h.consecutive_failures)
            WHERE id = u.id;
            transition := 'disabled';
        END IF;
        UPDATE hookrelay.webhook_health AS x
        SET circuit = h.circuit, consecutive_failures = h.consecutive_failures,
            failing_since = h.failing_since, last_success_at = h.last_success_at,
            last_failure_at = h.last_failure_at, opened_at = h.opened_at, retry_at = h.retry_at,
            failed_probes = h.failed_probes, paused_until = h.paused_until, updated_at = now()
        WHERE x.webhook_id = u.id;
        IF transition IS NULL THEN
            CONTINUE;
        END IF;
        ev := jsonb_build_object(
            'webhook', jsonb_build_object('id', w.id, 'name', w.name, 'url', w.url),
            'circuit', h.circuit,
            'consecutive_failures', h.consecutive_failures,
            'failing_since', h.failing_since,
            'last_success_at', h.last_success_at,
            'retry_at', h.retry_at);
        IF transition = 'opened' OR (transition = 'reopened' AND old = 'closed') THEN
            PERFORM hookrelay.emit('webhook.circuit_opened', w.project_id, ev);
        ELSIF transition = 'closed' THEN
            PERFORM hookrelay.emit('webhook.circuit_closed', w.project_id, ev);
        ELSIF transition = 'disabled' THEN
            PERFORM hookrelay.emit('webhook.disabled', w.project_id,
                ev || jsonb_build_object('disabled_reason',
                    (SELECT disabled_reason FROM hookrelay.webhooks WHERE id = u.id)));
        END IF;
        webhook_id := u.id;
        project_id := w.project_id;
        consecutive_failures := h.consecutive_failures;
        failing_since := h.failing_since;
        retry_at := h.retry_at;
        RETURN NEXT;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION hookrelay.record_health;
DROP INDEX hookrelay.deliveries_parked_idx;
ALTER TABLE hookrelay.deliveries DROP COLUMN parked_at, DROP COLUMN slot_at;
ALTER TABLE hookrelay.webhooks DROP COLUMN disabled_at, DROP COLUMN rate_limit, DROP COLUMN max_in_flight;
DROP TABLE hookrelay.webhook_health;
