package relay

import (
	"cmp"
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
