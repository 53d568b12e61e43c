package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// One relay at a time reads the outbox: the leader, which holds a
// session-level advisory lock on a connection of its own for as long as it
// runs. The others stand by and try for the lock each time they look for
// work; a leader that dies, or whose connection is lost, lets go of it with
// its session. The leader keeps the cursor in memory and stores each
// position in the transaction of its next fan-out (or when it goes idle or
// stops), through hookrelay.move_relay_cursor, which moves it only from the
// version this relay last stored: a relay that lost the lead without
// noticing (its lock connection cut, a successor already reading) fails
// there, its fan-out is rolled back, and it stands by again.

// leaderLockSQL is the relays' lock: "hookrelay relay" as a 63-bit number.
const leaderLockSQL = `SELECT pg_try_advisory_lock(6874689246315770227)`

// cursorMovedCode is the SQLSTATE of move_relay_cursor's refusal.
const cursorMovedCode = "HR001"

// lead is the relay's leadership: the lock connection, and the cursor as the
// relay has published it (ahead of the stored one until stored).
type lead struct {
	conn    *pgx.Conn // the lock's connection (kept while standing by too)
	held    bool      // conn holds the lock: this relay leads
	cur     cursor    // the position published up to
	version int64     // relay_cursor.version last read or stored
	stored  bool      // cur is what relay_cursor holds
	known   bool      // cur and version are this relay's (kept while standing by)
	suspect bool      // a pass failed: check the lock's session before using it
}

// ensureLead returns whether this relay leads, trying for the lock if it
// does not. A new leader reads the stored cursor, and carries on from its own
// position instead if the stored one is still at the version it last knew:
// nobody has moved the cursor since, so what it published past the stored
// position need not be read again (a Postgres restart would otherwise send
// the last batch's deliveries twice).
func (r *Relay) ensureLead(ctx context.Context) (bool, error) {
	if r.lead.held && r.lead.suspect {
		r.lead.suspect = false
		if err := r.lead.conn.Ping(ctx); err != nil {
			r.resign() // the session, and the lock with it, may be gone
		}
	}
	if r.lead.held && !r.lead.conn.IsClosed() {
		return true, nil
	}
	if r.lead.conn == nil || r.lead.conn.IsClosed() {
		r.resign()
		conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
		if err != nil {
			return false, fmt.Errorf("relay lead: connect: %w", err)
		}
		r.lead.conn = conn
	}
	var got bool
	if err := r.lead.conn.QueryRow(ctx, leaderLockSQL).Scan(&got); err != nil {
		r.resign()
		return false, fmt.Errorf("relay lead: try the lock: %w", err)
	}
	if !got {
		return false, nil // another relay leads; stand by
	}
	var (
		xids, seqs []int64
		cur        cursor
		version    int64
	)
	if err := r.lead.conn.QueryRow(ctx, cursorSQL).Scan(&cur.xid, &cur.seq, &xids, &seqs, &version); err != nil {
		r.resign()
		return false, fmt.Errorf("relay lead: read the cursor: %w", err)
	}
	for i := range xids {
		cur.pending = append(cur.pending, pendingTx{xid: xids[i], seq: seqs[i]})
	}
	r.lead.held = true
	if !r.lead.known || version != r.lead.version {
		r.lead.cur, r.lead.version, r.lead.stored, r.lead.known = cur, version, true, true
	}
	return true, nil
}

// leading reports whether this relay holds the lead, without trying for it.
func (r *Relay) leading() bool {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	return r.lead.held
}

// leads reports whether this relay leads, trying for the lead if not.
func (r *Relay) leads(ctx context.Context) (bool, error) {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	return r.ensureLead(ctx)
}

// resign lets go of the lead: it closes the lock's connection, which ends
// the session and so releases the lock even if the connection is broken.
// The relay remembers its position, for when it leads again.
func (r *Relay) resign() {
	if r.lead.conn != nil {
		closeConn(context.Background(), r.lead.conn)
	}
	r.lead.conn, r.lead.held = nil, false
}

// forget resigns and forgets the relay's position: the next lead starts from
// the stored cursor.
func (r *Relay) forget() {
	r.resign()
	r.lead = lead{}
}

// storeCursor stores the published position if it is ahead of the stored one:
// when the relay starts to linger (so that a relay taking over after a
// Postgres restart does not read the last batch again), goes idle or stops.
// While it reads on, the next fan-out does it. The commit does not wait for
// its WAL flush: a lost move only means reading the batch again.
func (r *Relay) storeCursor(ctx context.Context) error {
	r.batchMu.Lock()
	defer r.batchMu.Unlock()
	if !r.lead.held || r.lead.stored {
		return nil
	}
	xids, seqs := r.lead.cur.pendingArrays()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(asyncCommitSQL)
	b.Queue(moveCursorSQL, r.lead.version, r.lead.cur.xid, r.lead.cur.seq, xids, seqs)
	b.Queue("COMMIT")
	br := r.pool.SendBatch(ctx, b)
	var moved int64
	_, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		err = br.QueryRow().Scan(&moved)
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	switch {
	case isCursorMoved(err):
		r.forget() // another relay leads now
		return nil
	case err != nil:
		r.resign()
		return fmt.Errorf("store relay cursor: %w", err)
	}
	r.lead.version, r.lead.stored = moved, true
	return nil
}

// isCursorMoved reports whether err is move_relay_cursor's refusal.
func isCursorMoved(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == cursorMovedCode
}

func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
