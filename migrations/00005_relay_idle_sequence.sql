-- The relay's idle flag moves from a table row to a sequence, and emission
-- gets an opt-out of its wake-up NOTIFY.
--
-- A row is read through the writer's snapshot: a REPEATABLE READ or
-- SERIALIZABLE writer whose snapshot predates the relay going idle read
-- idle = false at commit and sent no NOTIFY, so its event waited a poll
-- interval. A sequence is not MVCC: setval changes it in place at once, and
-- every reader sees the latest value whatever its snapshot.
-- hookrelay.relay_idle is 1 while some relay waits for a wake-up, else 0; the
-- relay sets it with setval (non-transactional).
--
-- NOTIFY cannot be prepared (PREPARE TRANSACTION fails), so a two-phase
-- transaction that emits opts out with SET LOCAL hookrelay.wake = 'off'; the
-- relay's poll then finds its events.

-- +goose Up
CREATE SEQUENCE hookrelay.relay_idle MINVALUE 0 MAXVALUE 1 START 1 NO CYCLE;
SELECT setval('hookrelay.relay_idle', CASE WHEN idle THEN 1 ELSE 0 END) FROM hookrelay.relay_state;
DROP TABLE hookrelay.relay_state;

-- +goose StatementBegin
-- Runs at commit (deferred), so it reads the idle flag as late as possible.
CREATE OR REPLACE FUNCTION hookrelay.outbox_wake() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('hookrelay.wake', true) IS DISTINCT FROM 'off'
       AND (SELECT last_value FROM hookrelay.relay_idle) = 1 THEN
        PERFORM pg_notify('hookrelay_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
CREATE TABLE hookrelay.relay_state (
    id   integer PRIMARY KEY CHECK (id = 1),
    idle boolean NOT NULL
);
INSERT INTO hookrelay.relay_state (id, idle) SELECT 1, last_value = 1 FROM hookrelay.relay_idle;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION hookrelay.outbox_wake() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT idle FROM hookrelay.relay_state WHERE id = 1) THEN
        PERFORM pg_notify('hookrelay_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

DROP SEQUENCE hookrelay.relay_idle;
