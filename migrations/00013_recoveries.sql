-- Bulk recovery (POST /webhooks/{id}/recover): one row per recovery of a
-- webhook's failed or skipped deliveries created in [since, until). A River
-- job (hookrelay.recover) gives each of them one more attempt, a chunk per
-- transaction, in (created_at, id) order from the cursor, and counts them in
-- done; total is what the window held when the recovery was created.
--
-- Idempotence: requested_until is the until the request named (NULL when it
-- named none; until is then the request's time), and one live recovery
-- exists per (webhook, since, requested_until, statuses), so the same request
-- sent again finds the first one instead of sending anything twice. A
-- canceled recovery (its webhook was deleted or deactivated while it ran)
-- leaves the key free for a new one.
--
-- unpublished holds the ids of the last chunk made pending but not yet
-- confirmed on the stream: the chunk commits first, then is published, then
-- counted (a worker that read an entry before the commit would find the
-- delivery still failed and drop it). A job that stops in between publishes
-- them again before it claims more.

-- +goose Up
CREATE TABLE hookrelay.recoveries (
    id                uuid PRIMARY KEY DEFAULT hookrelay.uuidv7(),
    project_id        uuid NOT NULL,
    webhook_id        uuid NOT NULL, -- no foreign key, as for deliveries: the history outlives the webhook
    since             timestamptz NOT NULL,
    until             timestamptz NOT NULL,
    requested_until   timestamptz,
    statuses          text[] NOT NULL DEFAULT '{failed,skipped}'
                      CHECK (cardinality(statuses) > 0 AND statuses <@ '{failed,skipped}'),
    state             text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'canceled')),
    total             integer NOT NULL DEFAULT 0,
    done              integer NOT NULL DEFAULT 0,
    cursor_created_at timestamptz NOT NULL,
    cursor_id         uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    unpublished       uuid[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    CONSTRAINT recoveries_window CHECK (since < until)
);
CREATE UNIQUE INDEX recoveries_request_key ON hookrelay.recoveries (webhook_id, since, requested_until, statuses)
    NULLS NOT DISTINCT WHERE state <> 'canceled';
CREATE INDEX recoveries_webhook_idx ON hookrelay.recoveries (webhook_id, created_at DESC, id DESC);

-- +goose Down
DROP TABLE hookrelay.recoveries;
