package maintenance_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/hookrelay/hookrelay/internal/maintenance"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

const after = time.Minute

// env is one test's reconciler with its own database and stream.
type env struct {
	pool  *pgxpool.Pool
	rdb   redis.UniversalClient
	keys  testredis.Keys
	m     *metrics.Metrics
	wakes atomic.Int32
	w     *maintenance.Reconciler
}

func newEnv(t *testing.T, rdb redis.UniversalClient, keys testredis.Keys) *env {
	t.Helper()
	e := &env{pool: testdb.New(t).Pool, rdb: rdb, keys: keys, m: metrics.New(nil)}
	e.w = maintenance.NewReconciler(e.pool, rdb, e.config(), func() { e.wakes.Add(1) }, e.m, nil)
	if err := rdb.XGroupCreateMkStream(context.Background(), keys.Stream, keys.Group, "$").Err(); err != nil {
		t.Fatalf("create group: %v", err)
	}
	return e
}

func (e *env) config() maintenance.ReconcileConfig {
	return maintenance.ReconcileConfig{Stream: e.keys.Stream, Group: e.keys.Group, After: after, Interval: time.Hour, BatchSize: 2,
		ResetGrace: -1} // at once: these tests have no attempts in flight
}

func sharedEnv(t *testing.T) *env {
	rdb, keys := testredis.New(t)
	return newEnv(t, rdb, keys)
}

// delivery inserts a delivery with the given status, last updated idle ago,
// and next attempt at now+next (nil: none).
func (e *env) delivery(t *testing.T, status string, idle time.Duration, next *time.Duration) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	err := e.pool.QueryRow(context.Background(), `
INSERT INTO hookrelay.deliveries (event_id, webhook_id, project_id, event_type, payload,
    event_created_at, status, max_attempts, next_attempt_at, updated_at)
VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'config.deployed', '{}',
    now(), $1, 6, now() + $2::interval, now() - $3::interval)
RETURNING id`, status, next, idle).Scan(&id)
	if err != nil {
		t.Fatalf("insert delivery: %v", err)
	}
	return id
}

func in(d time.Duration) *time.Duration { return &d }

func (e *env) run(t *testing.T) maintenance.ReconcileResult {
	t.Helper()
	res, err := e.w.Reconcile(context.Background())
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res
}

// published lists the delivery ids in the stream, sorted.
func (e *env) published(t *testing.T) []uuid.UUID {
	t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), e.keys.Stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	ids := make([]uuid.UUID, 0, len(msgs))
	for _, m := range msgs {
		id, err := stream.DeliveryID(m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return sorted(ids)
}

func sorted(ids []uuid.UUID) []uuid.UUID {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

func wantIDs(t *testing.T, got []uuid.UUID, want ...uuid.UUID) {
	t.Helper()
	if !slices.Equal(got, sorted(want)) {
		t.Fatalf("stream holds %v, want %v", got, sorted(want))
	}
}

func TestReconcile_RepublishesOnlyStalePendingDeliveriesWithoutFutureRetry(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	stale := e.delivery(t, "pending", 10*time.Minute, nil)
	staleRetry := e.delivery(t, "pending", 20*time.Minute, in(-10*time.Minute)) // retry long overdue
	stale3 := e.delivery(t, "pending", 11*time.Minute, nil)                     // 3 > batch size 2
	e.delivery(t, "pending", 10*time.Second, nil)                               // fresh
	e.delivery(t, "pending", 10*time.Minute, in(time.Hour))                     // future retry
	e.delivery(t, "pending", 10*time.Minute, in(-10*time.Second))               // retry just due: River's job
	for _, s := range []string{"delivered", "failed", "skipped"} {
		e.delivery(t, s, 24*time.Hour, nil)
	}

	res := e.run(t)
	if res.Stale != 3 || res.RedisReset != "" || res.Reset != 0 {
		t.Fatalf("first run: %+v, want 3 stale and no reset", res)
	}
	wantIDs(t, e.published(t), stale, staleRetry, stale3)
	if got := testutil.ToFloat64(e.m.Reconciled.WithLabelValues("stale")); got != 3 {
		t.Fatalf("reconciled{stale} = %v, want 3", got)
	}
	if res.StreamLength != 3 || testutil.ToFloat64(e.m.StreamLength) != 3 {
		t.Fatalf("stream length %d (gauge %v), want 3", res.StreamLength, testutil.ToFloat64(e.m.StreamLength))
	}

	// The bump of updated_at keeps the next run from publishing them again.
	if res := e.run(t); res.Stale != 0 {
		t.Fatalf("second run re-published %d deliveries, want 0", res.Stale)
	}
	if n := len(e.published(t)); n != 3 {
		t.Fatalf("stream holds %d entries after the second run, want 3", n)
	}
}

func TestReconcile_ReportsUnacknowledgedEntriesAsStreamPending(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	e.delivery(t, "pending", 10*time.Minute, nil)
	e.delivery(t, "pending", 10*time.Minute, nil)
	e.run(t)
	err := e.rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: e.keys.Group, Consumer: "c", Streams: []string{e.keys.Stream, ">"}, Count: 1, Block: -1,
	}).Err()
	if err != nil {
		t.Fatalf("XREADGROUP: %v", err)
	}
	res := e.run(t)
	if res.StreamLength != 2 || res.StreamPending != 1 || testutil.ToFloat64(e.m.StreamPending) != 1 {
		t.Fatalf("length %d pending %d (gauge %v), want 2 and 1",
			res.StreamLength, res.StreamPending, testutil.ToFloat64(e.m.StreamPending))
	}
}

func TestReconcile_OldUnpublishedOutboxWakesRelays(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	ctx := context.Background()
	conn := session(t, e.pool, "LISTEN hookrelay_outbox")
	for _, sql := range []string{
		`INSERT INTO hookrelay.outbox (event_type, project_id, data, created_at)
		 VALUES ('c', gen_random_uuid(), '{}', now() - interval '10 minutes')`,
		testdb.PublishOutboxSQL, // c is published, a and b are not
		`INSERT INTO hookrelay.outbox (event_type, project_id, data, created_at) VALUES
		 ('a', gen_random_uuid(), '{}', now() - interval '10 minutes'),
		 ('b', gen_random_uuid(), '{}', now() - interval '10 seconds')`,
	} {
		if _, err := e.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// Drain the wake-ups the inserts themselves caused.
	drain(ctx, conn)

	res := e.run(t)
	if res.UnpublishedOld != 1 || testutil.ToFloat64(e.m.UnpublishedOld) != 1 || e.wakes.Load() != 1 {
		t.Fatalf("unpublished %d, gauge %v, wakes %d; want 1, 1, 1",
			res.UnpublishedOld, testutil.ToFloat64(e.m.UnpublishedOld), e.wakes.Load())
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := conn.Conn().WaitForNotification(wctx); err != nil {
		t.Fatalf("no NOTIFY hookrelay_outbox for relays in other processes: %v", err)
	}

	if _, err := e.pool.Exec(ctx, testdb.PublishOutboxSQL); err != nil {
		t.Fatal(err)
	}
	if res := e.run(t); res.UnpublishedOld != 0 || testutil.ToFloat64(e.m.UnpublishedOld) != 0 || e.wakes.Load() != 1 {
		t.Fatalf("after publishing: %+v, wakes %d; want 0 and no new wake", res, e.wakes.Load())
	}
}

// session is a connection of its own on which sql has run; it goes back to
// the pool when the test ends.
func session(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) *pgxpool.Conn {
	t.Helper()
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Release)
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return conn
}

// lockKey is the reconciler's advisory lock (see sql.go).
const lockKey = int64(0x7265636f6e63696c)

func drain(ctx context.Context, conn *pgxpool.Conn) {
	for {
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := conn.Conn().WaitForNotification(c)
		cancel()
		if err != nil {
			return
		}
	}
}

func TestReconcile_ConcurrentRunIsSkipped(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	ctx := context.Background()
	// Hold the reconciler's lock as another process would.
	conn := session(t, e.pool, "SELECT pg_advisory_lock($1)", lockKey)
	e.delivery(t, "pending", time.Hour, nil)
	if res := e.run(t); !res.Skipped || res.Stale != 0 {
		t.Fatalf("%+v, want skipped", res)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", lockKey); err != nil {
		t.Fatal(err)
	}
	if res := e.run(t); res.Skipped || res.Stale != 1 {
		t.Fatalf("%+v, want 1 stale once the lock is free", res)
	}
}

func TestWork_RunsTheReconciler(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.delivery(t, "pending", time.Hour, nil)
	job := &river.Job[maintenance.ReconcileArgs]{JobRow: &rivertype.JobRow{Kind: maintenance.ReconcileKind}}
	if err := e.w.Work(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, e.published(t), id)
}

// TestReconcile_LeavesParkedDeliveriesAloneWhileTheirBreakerIsOpen: a
// delivery parked behind an open breaker of an active webhook waits for the
// breaker to close; one whose breaker closed without publishing it, or
// whose webhook was disabled, is published like any stale delivery (the
// worker then sends or skips it), so none stays parked forever.
func TestReconcile_LeavesParkedDeliveriesAloneWhileTheirBreakerIsOpen(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	park := func(active bool, circuit string) uuid.UUID {
		t.Helper()
		id := e.delivery(t, "pending", 10*time.Minute, nil)
		var webhook uuid.UUID
		if err := e.pool.QueryRow(context.Background(), `INSERT INTO hookrelay.webhooks
			(project_id, name, url, secret, event_types, is_active) VALUES (gen_random_uuid(), 'w', 'https://x.example', 's', '{*}', $1)
			RETURNING id`, active).Scan(&webhook); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(context.Background(), `INSERT INTO hookrelay.webhook_health (webhook_id, circuit) VALUES ($1, $2)`,
			webhook, circuit); err != nil {
			t.Fatal(err)
		}
		if _, err := e.pool.Exec(context.Background(), `UPDATE hookrelay.deliveries SET webhook_id = $2, parked_at = now()
			WHERE id = $1`, id, webhook); err != nil {
			t.Fatal(err)
		}
		return id
	}
	park(true, "open") // waits for its breaker
	park(true, "half_open")
	closed := park(true, "closed")
	disabled := park(false, "open")
	if res := e.run(t); res.Stale != 2 {
		t.Fatalf("run: %+v, want 2 stale", res)
	}
	wantIDs(t, e.published(t), closed, disabled)
}
