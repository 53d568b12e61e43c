package relay_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/relay"
)

// checkAllOnStream fails unless every committed event (and no other) has
// reached the stream, and none of the rolled-back ones did.
func (e *env) checkAllOnStream(committed, rolledBack []uuid.UUID) {
	e.t.Helper()
	onStream := e.eventsOnStream()
	for _, id := range committed {
		if !onStream[id] {
			e.t.Fatalf("committed event %s never reached the stream (%d of %d did)", id, len(onStream), len(committed))
		}
	}
	for _, id := range rolledBack {
		if onStream[id] {
			e.t.Fatalf("rolled-back event %s reached the stream", id)
		}
	}
	if len(onStream) != len(committed) {
		e.t.Fatalf("%d events on the stream, %d committed", len(onStream), len(committed))
	}
}

func TestRelay_ConcurrentWritersEveryCommittedEventReachesStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 24)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	e.relay(100*time.Millisecond, 200, true)

	committed, rolledBack := e.write(context.Background(), load{
		writers: 16, txs: 210, eventsPerTx: 3, maxDelay: 2 * time.Millisecond, rollback: 0.1,
	})
	if len(rolledBack) == 0 || len(committed) < 8000 {
		t.Fatalf("load too small to prove anything: %d committed, %d rolled back", len(committed), len(rolledBack))
	}
	testwait.For(t, 30*time.Second, "every event published", func() bool { return e.unpublished() == 0 })
	if n := e.count(`SELECT count(*) FROM hookrelay.outbox`); n != len(committed) {
		t.Fatalf("outbox holds %d events, %d committed", n, len(committed))
	}
	e.checkAllOnStream(committed, rolledBack)
}

func TestRelay_RowCommittedLateIsNotSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	e.relay(250*time.Millisecond, 10, true)

	// The late transaction takes the lower seq, then waits.
	late, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback(ctx) //nolint:errcheck
	var lateID uuid.UUID
	if err := late.QueryRow(ctx, `SELECT hookrelay.emit('config.deployed', $1, '{"late": true}')`, e.project).Scan(&lateID); err != nil {
		t.Fatal(err)
	}
	early := e.emit("config.deployed", map[string]any{"late": false})
	testwait.For(t, 10*time.Second, "the early event on the stream", func() bool { return e.eventsOnStream()[early] })
	testwait.For(t, 10*time.Second, "the relay to go idle", e.idle)

	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the late event on the stream", func() bool { return e.eventsOnStream()[lateID] })
	testwait.For(t, 10*time.Second, "both events marked published", func() bool { return e.unpublished() == 0 })
}

// TestRelay_LongTransactionDelaysOnlyItsOwnEvents keeps a transaction with
// more events than a batch open below the relay's cursor while later ones
// commit: they are published at once, and the long one's events all follow
// when it commits, read in batches from the pending list.
func TestRelay_LongTransactionDelaysOnlyItsOwnEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	_, m := e.relay(time.Hour, 10, true)

	long, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Rollback(ctx) //nolint:errcheck
	var longIDs []uuid.UUID
	for range 25 {
		var id uuid.UUID
		if err := long.QueryRow(ctx, `SELECT hookrelay.emit('config.deployed', $1, '{"long": true}')`, e.project).Scan(&id); err != nil {
			t.Fatal(err)
		}
		longIDs = append(longIDs, id)
	}
	var later []uuid.UUID
	for range 15 {
		later = append(later, e.emit("config.deployed", map[string]any{"long": false}))
	}
	testwait.For(t, 10*time.Second, "the later events on the stream while the long transaction is open", func() bool {
		return e.allOnStream(later)
	})
	// The long transaction's rows are not visible yet, so once the relay has
	// stored its cursor (with its next fan-out, or as it starts to linger:
	// a moment after the entries are on the stream) nothing is unpublished.
	testwait.For(t, 10*time.Second, "no visible event unpublished while the long transaction is open", func() bool {
		return e.unpublished() == 0
	})
	if err := long.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the long transaction's events on the stream", func() bool {
		return e.allOnStream(longIDs)
	})
	testwait.For(t, 10*time.Second, "nothing left unpublished", func() bool { return e.unpublished() == 0 })
	if got := testutil.ToFloat64(m.EventsRelayed); got != 40 {
		t.Fatalf("relayed %v events, want each of the 40 once", got)
	}
}

func TestRelay_StartedAfterEventsWereWrittenCatchesUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	var ids []uuid.UUID
	for i := range 50 {
		ids = append(ids, e.emit("config.deployed", map[string]any{"i": i}))
	}
	// Their NOTIFYs went to no one; only the catch-up at start finds them
	// (the poll is an hour away).
	_, m := e.relay(time.Hour, 20, true)
	testwait.For(t, 10*time.Second, "the backlog published", func() bool { return e.unpublished() == 0 })
	e.checkAllOnStream(ids, nil)
	testwait.For(t, 5*time.Second, "the relay to count 50 events", func() bool { return testutil.ToFloat64(m.EventsRelayed) == 50 })
	if testutil.ToFloat64(m.RelayLag) <= 0 || testutil.ToFloat64(m.EventsRelayed) != 50 || testutil.ToFloat64(m.RelayBatches) < 3 {
		t.Fatalf("metrics: lag %v (want the backlog's age), %v events, %v batches",
			testutil.ToFloat64(m.RelayLag), testutil.ToFloat64(m.EventsRelayed), testutil.ToFloat64(m.RelayBatches))
	}
}

func TestRelay_KilledBetweenXAddAndMarkPublishedLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	e.addWebhook(webhook{eventTypes: []string{"config.deployed"}})
	ctx := context.Background()
	var ids []uuid.UUID
	for i := range 30 {
		ids = append(ids, e.emit("config.deployed", map[string]any{"i": i}))
	}

	killed := errors.New("killed")
	dying, _ := e.relay(time.Hour, 100, false)
	relay.SetAfterPublish(dying, func(context.Context) error { return killed })
	if _, err := dying.Drain(ctx); !errors.Is(err, killed) {
		t.Fatalf("Drain of the dying relay: got %v, want the kill", err)
	}
	if n := e.unpublished(); n != 30 {
		t.Fatalf("%d events unpublished after the kill, want all 30", n)
	}
	if n := len(e.streamDeliveries()); n != 60 {
		t.Fatalf("%d entries on the stream after the kill, want 60", n)
	}
	// One delivery's retry was scheduled meanwhile: it must not be republished.
	var scheduled uuid.UUID
	if err := e.pool.QueryRow(ctx, `UPDATE hookrelay.deliveries SET next_attempt_at = now() + interval '1 hour'
		WHERE id = (SELECT id FROM hookrelay.deliveries LIMIT 1) RETURNING id`).Scan(&scheduled); err != nil {
		t.Fatal(err)
	}

	fresh, m := e.relay(time.Hour, 100, false)
	if n, err := fresh.Drain(ctx); err != nil || n != 30 {
		t.Fatalf("Drain of the fresh relay: %d events, %v; want 30", n, err)
	}
	if n := e.unpublished(); n != 0 {
		t.Fatalf("%d events still unpublished", n)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.deliveries`); n != 60 {
		t.Fatalf("%d delivery rows, want 60 (one per event and webhook)", n)
	}
	if c := testutil.ToFloat64(m.DeliveriesCreated); c != 0 {
		t.Fatalf("the fresh relay created %v deliveries, want 0", c)
	}
	seen := map[uuid.UUID]int{}
	for _, id := range e.streamDeliveries() {
		seen[id]++
	}
	for id, n := range seen {
		want := 2
		if id == scheduled {
			want = 1
		}
		if n != want {
			t.Fatalf("delivery %s is on the stream %d times, want %d", id, n, want)
		}
	}
	e.checkAllOnStream(ids, nil)
}

func TestRelay_StreamReaderAlwaysFindsTheDeliveryRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 16)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	e.relay(50*time.Millisecond, 25, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The reader looks up each entry's delivery the moment it reads it.
	var read, missing atomic.Int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		last := "0"
		for ctx.Err() == nil {
			streams, err := e.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{e.stream, last}, Count: 500, Block: 100 * time.Millisecond}).Result()
			if err != nil {
				continue // redis.Nil after the block, or the test ending
			}
			for _, m := range streams[0].Messages {
				last = m.ID
				var exists bool
				err := e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hookrelay.deliveries WHERE id = $1::uuid)`,
					m.Values["delivery_id"]).Scan(&exists)
				if err == nil && !exists {
					missing.Add(1)
				}
				read.Add(1)
			}
		}
	}()

	committed, _ := e.write(ctx, load{writers: 4, txs: 150, eventsPerTx: 2, maxDelay: time.Millisecond})
	testwait.For(t, 20*time.Second, "every event published", func() bool { return e.unpublished() == 0 })
	total := int64(len(e.streamDeliveries()))
	testwait.For(t, 10*time.Second, "the reader to read every entry", func() bool { return read.Load() >= total })
	cancel()
	<-readerDone
	if missing.Load() != 0 {
		t.Fatalf("%d of %d stream entries named a delivery the reader could not see", missing.Load(), read.Load())
	}
	if total < int64(len(committed)) {
		t.Fatalf("%d entries on the stream for %d committed events", total, len(committed))
	}
}

func TestRelay_TwoRelaysLoseNothingAndCreateNoDeliveryTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	e.addWebhook(webhook{eventTypes: []string{"config.deployed"}})
	_, m1 := e.relay(50*time.Millisecond, 20, true)
	_, m2 := e.relay(50*time.Millisecond, 20, true)

	committed, rolledBack := e.write(context.Background(), load{
		writers: 8, txs: 100, eventsPerTx: 3, maxDelay: time.Millisecond, rollback: 0.1,
	})
	testwait.For(t, 20*time.Second, "every event published", func() bool { return e.unpublished() == 0 })
	e.checkAllOnStream(committed, rolledBack)
	rows := e.count(`SELECT count(*) FROM hookrelay.deliveries`)
	if rows != 2*len(committed) {
		t.Fatalf("%d delivery rows for %d events and 2 webhooks", rows, len(committed))
	}
	if created := testutil.ToFloat64(m1.DeliveriesCreated) + testutil.ToFloat64(m2.DeliveriesCreated); int(created) != rows {
		t.Fatalf("the relays report %v deliveries created, the table holds %d", created, rows)
	}
	if relayed := testutil.ToFloat64(m1.EventsRelayed) + testutil.ToFloat64(m2.EventsRelayed); int(relayed) != len(committed) {
		t.Fatalf("the relays report %v events relayed, %d committed", relayed, len(committed))
	}
	if testutil.ToFloat64(m1.EventsRelayed) == 0 || testutil.ToFloat64(m2.EventsRelayed) == 0 {
		t.Logf("one relay did all the work (%v / %v)", testutil.ToFloat64(m1.EventsRelayed), testutil.ToFloat64(m2.EventsRelayed))
	}
}

func TestRelay_StopDuringLoadFinishesTheBatchInHand(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 12)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	r, m := e.relay(20*time.Millisecond, 20, false)
	inBatch := make(chan struct{})
	published := 0
	relay.SetAfterPublish(r, func(context.Context) error {
		published++
		if published == 3 {
			close(inBatch)
			<-relay.Stopping(r) // hold the batch until Stop has been asked
		}
		return nil
	})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writeErr := make(chan error, 1)
	go func() {
		_, _, err := e.tryWrite(ctx, load{writers: 4, txs: 1 << 30, eventsPerTx: 2})
		writeErr <- err
	}()

	<-inBatch
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := r.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := int(testutil.ToFloat64(m.RelayBatches)); got != published {
		t.Fatalf("%d batches reached the stream, %d were marked published: the batch in hand was abandoned", published, got)
	}
	cancel()
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}

	if n := e.count(`SELECT count(*) FROM hookrelay.outbox WHERE id NOT IN (SELECT id FROM hookrelay.outbox_unpublished)`); n != int(testutil.ToFloat64(m.EventsRelayed)) {
		t.Fatalf("%d outbox rows published, the relay reports %v", n, testutil.ToFloat64(m.EventsRelayed))
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.outbox o WHERE o.id NOT IN (SELECT id FROM hookrelay.outbox_unpublished)
		AND NOT EXISTS (SELECT 1 FROM hookrelay.deliveries d WHERE d.event_id = o.id)`); n != 0 {
		t.Fatalf("%d published events have no delivery", n)
	}
	onStream := map[uuid.UUID]bool{}
	for _, id := range e.streamDeliveries() {
		onStream[id] = true
	}
	var missing int
	rows, _ := e.pool.Query(context.Background(), `SELECT d.id FROM hookrelay.deliveries d
		JOIN hookrelay.outbox o ON o.id = d.event_id WHERE o.id NOT IN (SELECT id FROM hookrelay.outbox_unpublished)`)
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !onStream[id] {
			missing++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if missing != 0 {
		t.Fatalf("%d deliveries of published events are not on the stream", missing)
	}
}

// TestRelay_CursorAheadOfTheClusterRefusesAndIsRebased stands for a logical
// restore into a cluster with lower transaction ids: the cursor names an xid
// the cluster has not reached, so every new event would sit below it. The
// relay refuses instead of skipping them, and the README's re-base statement
// brings back the events the cursor had not covered, and only those.
func TestRelay_CursorAheadOfTheClusterRefusesAndIsRebased(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	r, _ := e.relay(time.Hour, 100, false)
	e.emit("config.deployed", map[string]any{"old": true}) // published before the "restore"
	if _, err := r.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	// The restored cursor is far ahead, and one old event is not yet covered.
	if _, err := e.pool.Exec(ctx, `UPDATE hookrelay.relay_cursor
		SET xid = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8, seq = 0`); err != nil {
		t.Fatal(err)
	}
	var pending uuid.UUID
	if err := e.pool.QueryRow(ctx, `INSERT INTO hookrelay.outbox (event_type, project_id, data, xid)
		SELECT 'config.deployed', $1, '{}', (xid::text::bigint + 1)::text::xid8 FROM hookrelay.relay_cursor
		RETURNING id`, e.project).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Drain(ctx); !errors.Is(err, relay.ErrCursorAhead) {
		t.Fatalf("Drain with the cursor ahead of the cluster: %v, want ErrCursorAhead", err)
	}

	if _, err := e.pool.Exec(ctx, relay.RebaseCursorSQL); err != nil {
		t.Fatal(err)
	}
	fresh := e.emit("config.deployed", map[string]any{"old": false})
	if n, err := r.Drain(ctx); err != nil || n != 2 {
		t.Fatalf("Drain after the re-base = %d, %v; want the uncovered and the new event", n, err)
	}
	on := e.eventsOnStream()
	if !on[pending] || !on[fresh] {
		t.Fatalf("on the stream: uncovered %t, new %t; want both", on[pending], on[fresh])
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), relay.RebaseCursorSQL) {
		t.Fatal("the README's re-base statement differs from relay.RebaseCursorSQL")
	}
}
