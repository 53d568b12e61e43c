package relay

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// cursor is the relay's position in the outbox (hookrelay.relay_cursor):
// every row at or below (xid, seq) is published, except the rows of the
// pending transactions above their seq. Pending transactions are the ones
// that were still running, with an xid below the cursor's, when the relay
// last read: they may still commit rows below it.
type cursor struct {
	xid, seq int64
	pending  []pendingTx // ordered by xid
}

// pendingTx is a transaction read by xid until it has finished; seq is the
// last of its rows published.
type pendingTx struct{ xid, seq int64 }

// snapshot is what pg_current_snapshot() said in the statement that read.
type snapshot struct {
	xmin, xmax int64
	xip        []int64 // transactions in progress
}

// finished reports whether transaction x had ended (committed or aborted)
// when s was taken, so that all of its rows, if any, were visible to s.
func (s snapshot) finished(x int64) bool {
	return x < s.xmin || (x < s.xmax && !slices.Contains(s.xip, x))
}

// position is an outbox row's place in the relay's order.
type position struct{ xid, seq int64 }

func (p position) after(xid, seq int64) bool {
	return p.xid > xid || (p.xid == xid && p.seq > seq)
}

// readResult is what one read of the outbox returned: the rows read above
// the cursor and of pending transactions, and the statement's snapshot.
// Each part is capped at the batch size; pendingComplete says that the rows
// of pending transactions were all read (fewer than the cap).
type readResult struct {
	rows            []position
	pendingComplete bool
	snap            snapshot
}

// advance returns the cursor after r was read and published: moved to the
// last row read above it, every pending transaction moved past the rows of
// it read, finished pending transactions whose rows were all read dropped,
// and every transaction of the snapshot still running below the new
// position added as pending. The result shares nothing with c.
func (c cursor) advance(r readResult) cursor {
	next := cursor{xid: c.xid, seq: c.seq}
	last := make(map[int64]int64, len(c.pending))
	for _, p := range c.pending {
		last[p.xid] = p.seq
	}
	for _, row := range r.rows {
		if _, isPending := last[row.xid]; isPending && !row.after(c.xid, c.seq) {
			last[row.xid] = max(last[row.xid], row.seq)
			continue
		}
		if row.after(next.xid, next.seq) {
			next.xid, next.seq = row.xid, row.seq
		}
	}
	for x, seq := range last {
		if r.pendingComplete && r.snap.finished(x) {
			continue
		}
		next.pending = append(next.pending, pendingTx{xid: x, seq: seq})
	}
	for _, x := range r.snap.xip {
		if _, known := last[x]; !known && x < next.xid {
			next.pending = append(next.pending, pendingTx{xid: x})
		}
	}
	slices.SortFunc(next.pending, func(a, b pendingTx) int { return cmp.Compare(a.xid, b.xid) })
	return next
}

// ErrCursorAhead is returned by a batch when the relay's cursor names
// transactions this cluster has not started yet: the database was restored
// from a logical dump (or moved by logical replication) into a cluster whose
// transaction ids are lower. Every new event would sit below the cursor and
// be skipped, so the relay stops publishing and says so instead; the README
// ("Restoring from a dump") gives the statement that re-bases the cursor.
var ErrCursorAhead = errors.New("relay: the outbox cursor is ahead of this cluster's transaction ids " +
	"(restored from a logical dump?); re-base it as the README's \"Restoring from a dump\" says")

// check refuses a cursor that is ahead of the snapshot s: xids at or past
// its xmax have not been assigned yet in this cluster.
func (c cursor) check(s snapshot) error {
	if c.xid >= s.xmax {
		return fmt.Errorf("%w: cursor at xid %d, next xid %d", ErrCursorAhead, c.xid, s.xmax)
	}
	for _, p := range c.pending {
		if p.xid >= s.xmax {
			return fmt.Errorf("%w: pending xid %d, next xid %d", ErrCursorAhead, p.xid, s.xmax)
		}
	}
	return nil
}

// RebaseCursorSQL re-bases the cursor on this cluster's transaction ids after
// a logical restore (ErrCursorAhead), keeping what was published and what was
// not: rows the old cursor had not covered go above the new one, the others
// below. Run it before writers start on the restored database: an event
// written before it, with this cluster's ids, would count as published.
const RebaseCursorSQL = `BEGIN;
UPDATE hookrelay.outbox SET xid = CASE
    WHEN id IN (SELECT id FROM hookrelay.outbox_unpublished) THEN '1'::xid8 ELSE '0'::xid8 END;
UPDATE hookrelay.relay_cursor SET xid = '0', seq = (SELECT coalesce(max(seq), 0) FROM hookrelay.outbox),
    pending_xids = '{}', pending_seqs = '{}', updated_at = now();
COMMIT;`

// equal reports whether c and d are the same position.
func (c cursor) equal(d cursor) bool {
	return c.xid == d.xid && c.seq == d.seq && slices.Equal(c.pending, d.pending)
}

// pendingArrays splits the pending transactions into the two arrays that
// hookrelay.relay_cursor stores.
func (c cursor) pendingArrays() (xids, seqs []int64) {
	xids, seqs = make([]int64, len(c.pending)), make([]int64, len(c.pending))
	for i, p := range c.pending {
		xids[i], seqs[i] = p.xid, p.seq
	}
	return xids, seqs
}
