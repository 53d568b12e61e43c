-- The relay stops writing to outbox rows. Until now it claimed unpublished
-- rows (FOR NO KEY UPDATE SKIP LOCKED) and marked each one published with an
-- UPDATE: a row lock, a new row version and an index entry per event, which
-- made the outbox the relay's hottest write path and competed with the
-- application's own writes. Now each row records the transaction that wrote
-- it (xid, a 64-bit xid8 that never wraps), and the relay keeps one cursor:
--
--   (xid, seq)            every row at or below it is published;
--   pending_xids/_seqs    except rows of these transactions above their seq:
--                         transactions that were still running, below the
--                         cursor, when the relay last read.
--
-- The relay reads every committed row above the cursor or of a pending
-- transaction, in (xid, seq) order, together with pg_current_snapshot() of
-- the same statement, and moves the cursor to the last row it read. A
-- transaction that was in progress in that snapshot and has a smaller xid
-- than the new cursor can still commit rows below it: it is added to the
-- pending list, read by xid until it has finished, and then dropped. So a
-- long-running transaction delays only its own events, as before, and a row
-- that commits late is never skipped. Nothing about the row itself changes
-- after it is written: the outbox is insert-only.
--
-- One relay leads (a session-level advisory lock) and stores its position in
-- the transaction of its next fan-out through move_relay_cursor, fenced by
-- version. hookrelay.outbox_unpublished lists what the stored cursor has not
-- covered yet; audit SQL and the reconciler read it.

-- +goose Up
ALTER TABLE hookrelay.outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
-- Rows still unpublished now get xid 1, above the cursor set below (0, max seq).
UPDATE hookrelay.outbox SET xid = '1' WHERE published_at IS NULL;
ALTER TABLE hookrelay.outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

CREATE TABLE hookrelay.relay_cursor (
    id           integer PRIMARY KEY CHECK (id = 1),
    xid          xid8 NOT NULL,
    seq          bigint NOT NULL,
    pending_xids xid8[] NOT NULL DEFAULT '{}',
    pending_seqs bigint[] NOT NULL DEFAULT '{}',
    -- Bumped by every move: a relay moves the cursor only from the version
    -- it last read or wrote, so one that lost the lead cannot move it back.
    version      bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(pending_xids) = cardinality(pending_seqs))
);
INSERT INTO hookrelay.relay_cursor (id, xid, seq)
SELECT 1, '0', coalesce(max(seq), 0) FROM hookrelay.outbox;

-- +goose StatementBegin
-- move_relay_cursor stores a relay's position if the cursor is still at the
-- version the relay knows, and returns the new version; otherwise another
-- relay has moved it, and it fails with SQLSTATE HR001 (its transaction,
-- which holds the relay's next fan-out, is rolled back with it).
CREATE FUNCTION hookrelay.move_relay_cursor(from_version bigint, to_xid xid8, to_seq bigint,
                                            to_pending_xids xid8[], to_pending_seqs bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    UPDATE hookrelay.relay_cursor
    SET xid = to_xid, seq = to_seq, pending_xids = to_pending_xids, pending_seqs = to_pending_seqs,
        version = version + 1, updated_at = now()
    WHERE id = 1 AND version = from_version
    RETURNING version INTO moved;
    IF moved IS NULL THEN
        RAISE EXCEPTION 'hookrelay: the relay cursor is no longer at version %: another relay moved it', from_version
            USING ERRCODE = 'HR001';
    END IF;
    RETURN moved;
END
$$;
-- +goose StatementEnd

CREATE INDEX outbox_xid_idx ON hookrelay.outbox (xid, seq);
DROP INDEX hookrelay.outbox_unpublished_idx;
DROP INDEX hookrelay.outbox_published_idx;
ALTER TABLE hookrelay.outbox DROP COLUMN published_at;

-- The two halves are disjoint: pending transactions are below the cursor.
-- OFFSET 0 keeps the second half a lookup by xid per pending transaction
-- (the planner would otherwise hash-join it against a scan of the outbox).
CREATE VIEW hookrelay.outbox_unpublished AS
SELECT o.* FROM hookrelay.relay_cursor c
JOIN hookrelay.outbox o ON (o.xid, o.seq) > (c.xid, c.seq)
UNION ALL
SELECT o.* FROM hookrelay.relay_cursor c
CROSS JOIN LATERAL unnest(c.pending_xids, c.pending_seqs) AS p(xid, seq)
CROSS JOIN LATERAL (
    SELECT * FROM hookrelay.outbox o WHERE o.xid = p.xid AND o.seq > p.seq OFFSET 0) o;

-- +goose Down
DROP VIEW hookrelay.outbox_unpublished;
DROP FUNCTION hookrelay.move_relay_cursor(bigint, xid8, bigint, xid8[], bigint[]);
ALTER TABLE hookrelay.outbox ADD COLUMN published_at timestamptz;
UPDATE hookrelay.outbox o SET published_at = now()
FROM hookrelay.relay_cursor c
WHERE (o.xid, o.seq) <= (c.xid, c.seq)
  AND NOT EXISTS (SELECT 1 FROM unnest(c.pending_xids, c.pending_seqs) AS p(xid, seq)
                  WHERE o.xid = p.xid AND o.seq > p.seq);
CREATE INDEX outbox_unpublished_idx ON hookrelay.outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON hookrelay.outbox (published_at) WHERE published_at IS NOT NULL;
DROP INDEX hookrelay.outbox_xid_idx;
DROP TABLE hookrelay.relay_cursor;
ALTER TABLE hookrelay.outbox DROP COLUMN xid;
