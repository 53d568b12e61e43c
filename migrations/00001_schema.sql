-- hookrelay's own tables. River's tables live in the same schema and are
-- migrated by rivermigrate (see migrations.go), not by this file.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS hookrelay;

-- Endpoints that receive events. A project only ever sees its own rows.
CREATE TABLE hookrelay.webhooks (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id                 uuid NOT NULL,
    name                       text NOT NULL,
    url                        text NOT NULL,
    secret                     text NOT NULL,
    -- During a rotation the previous secret keeps signing until it expires.
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- Event types this endpoint receives; '*' means all of them.
    event_types                text[] NOT NULL,
    -- Optional filters, matched against data.application.id and data.environment.name.
    application_id             uuid,
    environment_name           text,
    headers                    jsonb NOT NULL DEFAULT '{}',
    is_active                  boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    description                text NOT NULL DEFAULT '',
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_project_idx ON hookrelay.webhooks (project_id, created_at, id);

-- The transactional outbox: one row per emitted event, written in the
-- application's transaction. The relay claims rows by state (published_at IS
-- NULL, FOR NO KEY UPDATE SKIP LOCKED), never by an id cursor.
CREATE TABLE hookrelay.outbox (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    event_type   text NOT NULL CHECK (event_type <> ''),
    project_id   uuid NOT NULL,
    data         jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON hookrelay.outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON hookrelay.outbox (published_at) WHERE published_at IS NOT NULL;

-- One row per event x webhook. It keeps its own copy of the event so that it
-- outlives the outbox row (retention prunes the outbox sooner).
CREATE TABLE hookrelay.deliveries (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id             uuid NOT NULL,
    webhook_id           uuid NOT NULL, -- no foreign key: a deleted webhook's deliveries become skipped
    project_id           uuid NOT NULL,
    event_type           text NOT NULL,
    payload              jsonb NOT NULL,
    event_created_at     timestamptz NOT NULL,
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts             integer NOT NULL DEFAULT 0,
    max_attempts         integer NOT NULL,
    next_attempt_at      timestamptz,
    last_attempt_at      timestamptz,
    last_response_status integer,
    last_error           text,
    delivered_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX deliveries_webhook_idx ON hookrelay.deliveries (webhook_id, created_at DESC, id DESC);
CREATE INDEX deliveries_pending_idx ON hookrelay.deliveries (updated_at) WHERE status = 'pending';
CREATE INDEX deliveries_terminal_idx ON hookrelay.deliveries (updated_at) WHERE status <> 'pending';

-- One row per HTTP attempt; the audit trail.
CREATE TABLE hookrelay.delivery_attempts (
    delivery_id   uuid NOT NULL REFERENCES hookrelay.deliveries (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    status_code   integer,
    error_class   text,
    error         text,
    response_body text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Whether some relay is waiting for a wake-up. Emission only NOTIFYs while it
-- is true, so that a busy relay costs writers no NOTIFY lock at commit.
CREATE TABLE hookrelay.relay_state (
    id   integer PRIMARY KEY CHECK (id = 1),
    idle boolean NOT NULL
);
INSERT INTO hookrelay.relay_state (id, idle) VALUES (1, true);

-- +goose StatementBegin
-- Runs at commit (deferred), so it reads the idle flag as late as possible.
CREATE FUNCTION hookrelay.outbox_wake() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT idle FROM hookrelay.relay_state WHERE id = 1) THEN
        PERFORM pg_notify('hookrelay_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE CONSTRAINT TRIGGER outbox_wake
    AFTER INSERT ON hookrelay.outbox
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION hookrelay.outbox_wake();

-- +goose StatementBegin
-- emit records an event in the caller's transaction and returns its id.
CREATE FUNCTION hookrelay.emit(event_type text, project_id uuid, data jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    new_id uuid;
    size   integer;
BEGIN
    IF event_type IS NULL OR btrim(event_type) = '' THEN
        RAISE EXCEPTION 'hookrelay.emit: event_type must not be empty' USING ERRCODE = '22023';
    END IF;
    IF length(event_type) > 128 THEN
        RAISE EXCEPTION 'hookrelay.emit: event_type is longer than 128 characters' USING ERRCODE = '22023';
    END IF;
    IF project_id IS NULL THEN
        RAISE EXCEPTION 'hookrelay.emit: project_id must not be null' USING ERRCODE = '22023';
    END IF;
    IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
        RAISE EXCEPTION 'hookrelay.emit: data must be a JSON object, got %', coalesce(jsonb_typeof(data), 'null')
            USING ERRCODE = '22023';
    END IF;
    size := octet_length(data::text);
    IF size > 262144 THEN
        RAISE EXCEPTION 'hookrelay.emit: data is % bytes, more than the 262144 allowed', size
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO hookrelay.outbox (event_type, project_id, data)
    VALUES (event_type, project_id, data)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
-- emit_row_change is a trigger function that turns row changes of any table
-- into events. Arguments: the event type, then the name of the column that
-- holds the project id. The event data is
-- {"table": ..., "op": "insert|update|delete", "row": <new or deleted row>, "old": <old row or null>}.
CREATE FUNCTION hookrelay.emit_row_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cur     jsonb;
    project uuid;
BEGIN
    IF TG_NARGS < 2 THEN
        RAISE EXCEPTION 'hookrelay.emit_row_change: needs (event_type, project_id_column) arguments';
    END IF;
    IF TG_OP = 'DELETE' THEN
        cur := to_jsonb(OLD);
    ELSE
        cur := to_jsonb(NEW);
    END IF;
    project := (cur ->> TG_ARGV[1])::uuid;
    PERFORM hookrelay.emit(
        TG_ARGV[0],
        project,
        jsonb_build_object(
            'table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
            'op', lower(TG_OP),
            'row', cur,
            'old', CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP SCHEMA hookrelay CASCADE;
