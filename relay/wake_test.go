package relay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// TestRelay_IdleRelayWakesOnNotifyAndIsIdleAgainAfterBurst proves the NOTIFY
// path: the poll is an hour away, so only the wake-up can publish promptly.
func TestRelay_IdleRelayWakesOnNotifyAndIsIdleAgainAfterBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 12)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	// Start from "busy" so that seeing idle=true proves the relay finished a pass.
	if _, err := e.pool.Exec(ctx, `SELECT setval('hookrelay.relay_idle', 0)`); err != nil {
		t.Fatal(err)
	}
	e.quietRelay(time.Hour)
	testwait.For(t, 5*time.Second, "the relay to go idle", e.idle)

	for i := range 3 {
		start := time.Now()
		id := e.emit("config.deployed", map[string]any{"i": i})
		testwait.For(t, 5*time.Second, "the isolated event on the stream", func() bool { return e.eventsOnStream()[id] })
		t.Logf("isolated event %d on the stream after %s", i, time.Since(start))
		testwait.For(t, 5*time.Second, "the relay to go idle", e.idle)
	}

	committed, _ := e.write(ctx, load{writers: 8, txs: 60, eventsPerTx: 2})
	testwait.For(t, 10*time.Second, "the burst published", func() bool { return e.unpublished() == 0 })
	testwait.For(t, 5*time.Second, "the relay to go idle after the burst", e.idle)
	e.checkAllOnStream(append(committed, e.allEventsBefore(committed)...), nil)
}

// TestRelay_WakePublishesWithoutNotify proves Wake (the reconciler's nudge):
// with the flag saying "busy" writers send no NOTIFY, and the poll is an hour
// away.
func TestRelay_WakePublishesWithoutNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	r := e.quietRelay(time.Hour)
	if _, err := e.pool.Exec(ctx, `SELECT setval('hookrelay.relay_idle', 0)`); err != nil {
		t.Fatal(err)
	}
	id := e.emit("config.deployed", map[string]any{}) // sends no NOTIFY
	r.Wake()
	testwait.For(t, 5*time.Second, "the woken relay to publish", func() bool { return e.eventsOnStream()[id] })
	testwait.For(t, 5*time.Second, "the relay to go idle", e.idle)
}

// quietRelay starts a relay and returns once it has made its two start-up
// passes (the first at start, the second for the LISTEN connection's
// catch-up) and waits: from then on only a NOTIFY, Wake or the poll make it
// look again (the settle claim is disabled).
func (e *env) quietRelay(poll time.Duration) *relay.Relay {
	e.t.Helper()
	r, _ := e.relay(poll, 100, false)
	relay.SetSettleDelay(r, time.Hour)
	waits := make(chan struct{}, 100)
	relay.SetOnWait(r, func() { waits <- struct{}{} })
	if err := r.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			e.t.Error(err)
		}
	})
	for i := range 2 {
		select {
		case <-waits:
		case <-time.After(10 * time.Second):
			e.t.Fatalf("the relay made %d start-up passes in 10s, want 2", i)
		}
	}
	return r
}

// allEventsBefore lists the events emitted before the burst (the isolated ones).
func (e *env) allEventsBefore(burst []uuid.UUID) []uuid.UUID {
	e.t.Helper()
	rows, _ := e.pool.Query(context.Background(), `SELECT id FROM hookrelay.outbox WHERE NOT id = ANY ($1)`, burst)
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// TestRelay_EventCommittedJustBeforeGoingIdleIsNotStranded commits an event
// after the relay's last empty claim but before it sets the idle flag: the
// writer saw idle=false and sent no NOTIFY, and the poll is an hour away, so
// only the claim the relay makes after setting the flag can find it.
func TestRelay_EventCommittedJustBeforeGoingIdleIsNotStranded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `SELECT setval('hookrelay.relay_idle', 0)`); err != nil {
		t.Fatal(err)
	}
	r, _ := e.relay(time.Hour, 100, false)
	relay.SetSettleDelay(r, time.Hour) // only the claim right after the flip may find it
	emitted := make(chan uuid.UUID, 1)
	// The hook fires in the second pass: the first is the start-up pass, the
	// second the LISTEN connection's catch-up; after it nothing but the
	// relay's own last claim would look again.
	calls := 0
	relay.SetBeforeIdle(r, func() {
		if calls++; calls == 2 {
			id, err := outbox.Emit(ctx, e.pool, outbox.Event{Type: "config.deployed", ProjectID: e.project, Data: map[string]any{}})
			if err != nil {
				t.Error(err)
			}
			emitted <- id
		}
	})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	id := <-emitted
	if id == uuid.Nil {
		return
	}
	testwait.For(t, 5*time.Second, "the event committed just before idle on the stream", func() bool { return e.eventsOnStream()[id] })
}

// TestRelay_WriterWhoseCommitStraddlesTheFlipIsFoundBySettleClaim stages the
// remaining race: the writer's deferred trigger reads idle=false (no NOTIFY),
// the relay flips the flag and makes its last claim, and only then does the
// writer commit. The poll is an hour away; the settle claim finds it.
func TestRelay_WriterWhoseCommitStraddlesTheFlipIsFoundBySettleClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	r, _ := e.relay(time.Hour, 100, false)
	var (
		tx       pgx.Tx
		id       uuid.UUID
		calls    int
		straddle = make(chan error, 1)
	)
	relay.SetBeforeIdle(r, func() {
		if calls++; calls != 2 { // the second pass: after the LISTEN catch-up
			return
		}
		var err error
		if tx, err = e.pool.Begin(ctx); err == nil {
			id, err = outbox.Emit(ctx, tx, outbox.Event{Type: "config.deployed", ProjectID: e.project, Data: map[string]any{}})
		}
		if err == nil { // run the deferred wake-up trigger now, while idle=false
			_, err = tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE")
		}
		if err != nil {
			straddle <- err
		}
	})
	relay.SetOnWait(r, func() {
		if tx != nil { // the relay has flipped the flag and made its last claim
			straddle <- tx.Commit(ctx)
			tx = nil
		}
	})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := <-straddle; err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "the straddling event on the stream", func() bool { return e.eventsOnStream()[id] })
}

// TestRelay_TransactionOpenAcrossTheFlipIsPublishedByThePoll stages the race
// that migration 00010 widens: the wake-up trigger's WHEN is evaluated at the
// INSERT, so a writer that inserted while the relay was busy queues no
// NOTIFY, and if it commits after the relay went idle and made its settle
// claim, only the poll finds its event. It must, within a poll interval.
func TestRelay_TransactionOpenAcrossTheFlipIsPublishedByThePoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	const poll = time.Second
	r, _ := e.relay(poll, 100, false)
	relay.SetSettleDelay(r, 20*time.Millisecond)
	var (
		tx        pgx.Tx
		id        uuid.UUID
		calls     int
		committed = make(chan error, 1)
		at        time.Time
	)
	relay.SetBeforeIdle(r, func() {
		if calls++; calls != 2 { // the second pass: after the LISTEN catch-up
			return
		}
		var err error
		if tx, err = e.pool.Begin(ctx); err == nil { // inserted while idle = 0
			id, err = outbox.Emit(ctx, tx, outbox.Event{Type: "config.deployed", ProjectID: e.project, Data: map[string]any{}})
		}
		if err != nil {
			committed <- err
		}
	})
	relay.SetOnWait(r, func() {
		if tx == nil {
			return
		}
		open := tx
		tx = nil
		go func() { // commit well after the settle claim
			time.Sleep(200 * time.Millisecond)
			at = time.Now()
			committed <- open.Commit(ctx)
		}()
	})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "the event of the transaction open across the flip on the stream",
		func() bool { return e.eventsOnStream()[id] })
	if waited := time.Since(at); waited > poll+500*time.Millisecond {
		t.Fatalf("published %s after its commit, want within the poll interval %s", waited, poll)
	}
}

// TestRelay_LostListenConnectionReconnectsAndCatchesUp kills the relay's
// LISTEN session: an event committed while it is gone sends a NOTIFY no one
// hears, the poll is an hour away, so only the catch-up after re-LISTEN can
// publish it.
func TestRelay_LostListenConnectionReconnectsAndCatchesUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	e.quietRelay(time.Hour)
	testwait.For(t, 5*time.Second, "the relay to go idle", e.idle)
	listenerPID := func() (pid int) {
		err := e.pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN `+relay.Channel+`'`).Scan(&pid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return pid
	}
	old := listenerPID()
	if old == 0 {
		t.Fatal("no LISTEN session found")
	}
	var killed bool
	if err := e.pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the LISTEN session: %t, %v", killed, err)
	}
	testwait.For(t, 5*time.Second, "the LISTEN session to end", func() bool { return listenerPID() != old })
	id := e.emit("config.deployed", map[string]any{}) // its NOTIFY finds no listener
	testwait.For(t, 10*time.Second, "the event on the stream after the reconnect", func() bool { return e.eventsOnStream()[id] })
	if pid := listenerPID(); pid == 0 {
		t.Fatal("no LISTEN session after the reconnect")
	}
}
