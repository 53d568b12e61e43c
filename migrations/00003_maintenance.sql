-- State kept by hookrelay's maintenance jobs (the reconciler) across restarts
-- and processes: a few named values, e.g. the run id of the Redis server the
-- stream was last seen on, so that a Redis that came back empty is noticed.
-- The indexes the maintenance jobs need already exist (00001):
-- deliveries_pending_idx, deliveries_terminal_idx, outbox_published_idx,
-- outbox_unpublished_idx.

-- +goose Up
CREATE TABLE hookrelay.maintenance_state (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE hookrelay.maintenance_state;
