-- Scoped API keys: each bound to one project, or to none (an admin key, as
-- good as HOOKRELAY_API_TOKEN). The key itself is shown once, when it is
-- created, and never stored: key_hash is its SHA-256. A fast unsalted hash is
-- right here, unlike for passwords, because a key is 32 random bytes: there is
-- no dictionary to try, and a unique hash is what a request is looked up by.
-- prefix is the key's first characters, so that a list can say which key is
-- which without holding anything that authenticates.

-- +goose Up
CREATE TABLE hookrelay.api_keys (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid,
    name       text NOT NULL,
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- +goose Down
DROP TABLE hookrelay.api_keys;
