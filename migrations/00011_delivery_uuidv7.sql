-- Delivery ids become time-ordered (UUIDv7, hookrelay.uuidv7() from 00010),
-- as outbox ids did in 00010: the relay inserts hundreds of deliveries per
-- fan-out, and random ids put each one on a random page of the primary key
-- (and of delivery_attempts' primary key, which leads with delivery_id), so
-- a growing table makes every insert a cache miss and, after a checkpoint, a
-- full-page write. Time-ordered ids land on the right edge. Existing ids
-- stay as they are.

-- +goose Up
ALTER TABLE hookrelay.deliveries ALTER COLUMN id SET DEFAULT hookrelay.uuidv7();

-- +goose Down
ALTER TABLE hookrelay.deliveries ALTER COLUMN id SET DEFAULT gen_random_uuid();
