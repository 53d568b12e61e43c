-- The example domain: config revisions deployed to environments. Deploying a
-- config (pointing an environment at a revision) emits config.deployed from a
-- trigger, in the deploying transaction. It shows trigger emission on a
-- realistic pair of tables and backs the API's POST /configs/deploy.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS hookrelay_example;

CREATE TABLE hookrelay_example.configs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id       uuid NOT NULL,
    application_id   uuid NOT NULL,
    application_slug text NOT NULL,
    variant_id       uuid NOT NULL,
    variant_slug     text NOT NULL,
    version          integer NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}',
    commit_message   text NOT NULL DEFAULT '',
    created_by       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (variant_id, version)
);

CREATE TABLE hookrelay_example.environments (
    project_id     uuid NOT NULL,
    application_id uuid NOT NULL,
    name           text NOT NULL,
    config_id      uuid NOT NULL REFERENCES hookrelay_example.configs (id),
    deployed_by    text NOT NULL DEFAULT '',
    deployed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, application_id, name)
);

-- +goose StatementBegin
CREATE FUNCTION hookrelay_example.emit_config_deployed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c hookrelay_example.configs;
BEGIN
    SELECT * INTO STRICT c FROM hookrelay_example.configs WHERE id = NEW.config_id;
    PERFORM hookrelay.emit(
        'config.deployed',
        NEW.project_id,
        jsonb_build_object(
            'application', jsonb_build_object('id', c.application_id, 'slug', c.application_slug),
            'variant', jsonb_build_object('id', c.variant_id, 'slug', c.variant_slug, 'version', c.version),
            'environment', jsonb_build_object('name', NEW.name),
            'params', c.params,
            'deployed_by', NEW.deployed_by,
            'commit_message', c.commit_message));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER environments_config_deployed
    AFTER INSERT OR UPDATE OF config_id, deployed_at ON hookrelay_example.environments
    FOR EACH ROW EXECUTE FUNCTION hookrelay_example.emit_config_deployed();

-- +goose Down
DROP SCHEMA hookrelay_example CASCADE;
