-- Every secret retired within the grace period keeps signing until its own
-- grace period ends. One previous_secret column kept only the latest: a second
-- regeneration within the grace period dropped the original at once, and
-- receivers still holding it failed to verify.
--
-- previous_secrets is a JSON array of {"secret", "expires_at"}, most recently
-- retired first. The API appends to it on regeneration, prunes expired entries
-- and keeps a few of the most recent; readers use valid_previous_secrets.

-- +goose Up
ALTER TABLE hookrelay.webhooks
    ADD COLUMN previous_secrets jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(previous_secrets) = 'array');
UPDATE hookrelay.webhooks
SET previous_secrets = jsonb_build_array(jsonb_build_object(
        'secret', previous_secret, 'expires_at', previous_secret_expires_at))
WHERE previous_secret IS NOT NULL AND previous_secret_expires_at IS NOT NULL;
ALTER TABLE hookrelay.webhooks
    DROP COLUMN previous_secret,
    DROP COLUMN previous_secret_expires_at;

-- +goose StatementBegin
-- valid_previous_secrets returns the secrets of a previous_secrets array whose
-- grace period has not ended (against now()), in the array's order.
CREATE FUNCTION hookrelay.valid_previous_secrets(previous jsonb) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(p.e ->> 'secret' ORDER BY p.ord), '{}')
    FROM jsonb_array_elements(previous) WITH ORDINALITY AS p(e, ord)
    WHERE (p.e ->> 'expires_at')::timestamptz > now()
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION hookrelay.valid_previous_secrets(jsonb);
ALTER TABLE hookrelay.webhooks
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_expires_at timestamptz;
-- Only one survives: the one whose grace period ends last.
UPDATE hookrelay.webhooks w
SET (previous_secret, previous_secret_expires_at) = (
    SELECT e ->> 'secret', (e ->> 'expires_at')::timestamptz
    FROM jsonb_array_elements(w.previous_secrets) e
    ORDER BY 2 DESC LIMIT 1);
ALTER TABLE hookrelay.webhooks DROP COLUMN previous_secrets;
