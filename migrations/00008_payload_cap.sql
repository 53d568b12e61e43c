-- One measure of an event's data on every path of emission: the bytes of its
-- text as Postgres stores and returns it, octet_length(data::text), at most
-- 262144 (256 KiB, outbox.MaxDataBytes). outbox.Emit counted the bytes it was
-- given and inserted directly, while hookrelay.emit() (and so every trigger)
-- counted the jsonb's text, which has a space after every ':' and ',', numbers
-- written out and escapes resolved: the same data passed one path and failed
-- the other. Only the stored form is the same whoever wrote the event, and
-- two of the three paths never see anything else, so the outbox table now
-- measures it itself, for every insert, and hookrelay.emit() no longer does.
--
-- The refusal is SQLSTATE 22023 (as hookrelay.emit()'s other refusals) with
-- the constraint name outbox_data_size, by which outbox.IsDataTooLarge
-- recognises it. A trigger rather than a CHECK: a CHECK would re-serialise
-- the data every time the relay marks a row published.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION hookrelay.outbox_data_size() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    size integer := octet_length(NEW.data::text);
BEGIN
    IF size > 262144 THEN
        RAISE EXCEPTION 'hookrelay.outbox: data is % bytes, more than the 262144 allowed', size
            USING ERRCODE = '22023', CONSTRAINT = 'outbox_data_size';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER outbox_data_size
    BEFORE INSERT OR UPDATE OF data ON hookrelay.outbox
    FOR EACH ROW EXECUTE FUNCTION hookrelay.outbox_data_size();

-- +goose StatementBegin
-- emit records an event in the caller's transaction and returns its id. The
-- size of data is checked by the outbox table (outbox_data_size).
CREATE OR REPLACE FUNCTION hookrelay.emit(event_type text, project_id uuid, data jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    new_id uuid;
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
    INSERT INTO hookrelay.outbox (event_type, project_id, data)
    VALUES (event_type, project_id, data)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
-- hookrelay.emit() measures data itself again, as 00001 had it.
CREATE OR REPLACE FUNCTION hookrelay.emit(event_type text, project_id uuid, data jsonb) RETURNS uuid
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
DROP TRIGGER outbox_data_size ON hookrelay.outbox;
DROP FUNCTION hookrelay.outbox_data_size();
