package maintenance_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/maintenance"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// groups lists the stream's consumer groups other than the reconciler's
// marker, with how many entries each has not read yet.
func (e *env) groups(t *testing.T) map[string]int64 {
	out := map[string]int64{}
	for _, g := range e.xinfoGroups(t) {
		if !strings.HasPrefix(g.Name, "hookrelay-marker-") {
			out[g.Name] = g.Lag
		}
	}
	return out
}

// markers lists the reconciler's marker groups on the stream.
func (e *env) markers(t *testing.T) []string {
	var out []string
	for _, g := range e.xinfoGroups(t) {
		if strings.HasPrefix(g.Name, "hookrelay-marker-") {
			out = append(out, g.Name)
		}
	}
	return out
}

func (e *env) xinfoGroups(t *testing.T) []redis.XInfoGroup {
	t.Helper()
	gs, err := e.rdb.XInfoGroups(context.Background(), e.keys.Stream).Result()
	if err != nil {
		t.Fatalf("XINFO GROUPS: %v", err)
	}
	return gs
}

func TestReconcile_RedisRestartRepublishesAllPendingAtOnceAndOnlyOnce(t *testing.T) {
	t.Parallel()
	srv := testredis.StartServer(t)
	rdb := srv.Client()
	e := newEnv(t, rdb, testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"})
	if res := e.run(t); res.RedisReset != "" || res.Reset != 0 {
		t.Fatalf("first run on a fresh Redis: %+v, want no reset", res)
	}

	fresh := e.delivery(t, "pending", time.Second, nil)
	dueRetry := e.delivery(t, "pending", 2*time.Minute, in(-5*time.Second))
	e.delivery(t, "pending", time.Second, in(time.Hour)) // River will publish it when due
	e.delivery(t, "delivered", time.Second, nil)
	e.delivery(t, "failed", time.Second, nil)
	if res := e.run(t); res.Stale != 0 || res.Reset != 0 {
		t.Fatalf("run before the restart: %+v, want nothing re-published", res)
	}

	srv.Restart()
	res := e.run(t)
	if res.RedisReset != maintenance.ResetMarkerGone || res.Reset != 2 {
		t.Fatalf("run after the restart: %+v, want reset %q of 2 deliveries", res, maintenance.ResetMarkerGone)
	}
	wantIDs(t, e.published(t), fresh, dueRetry)
	if got := testutil.ToFloat64(e.m.Reconciled.WithLabelValues("redis_reset")); got != 2 {
		t.Fatalf("reconciled{redis_reset} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.m.RedisLossDetected.WithLabelValues(maintenance.ResetMarkerGone)); got != 1 {
		t.Fatalf("redis_loss_detected{marker_missing} = %v, want 1", got)
	}
	if g := e.groups(t); len(g) != 1 || g[e.keys.Group] != 2 {
		t.Fatalf("consumer groups after the reset: %v, want %s with the 2 entries unread", g, e.keys.Group)
	}

	res = e.run(t)
	if res.RedisReset != "" || res.Reset != 0 || res.Stale != 0 {
		t.Fatalf("run after the reset was handled: %+v, want nothing", res)
	}
	if n := len(e.published(t)); n != 2 {
		t.Fatalf("stream holds %d entries, want still 2", n)
	}
}

func TestReconcile_LossSurvivesARestartOfTheReconciler(t *testing.T) {
	t.Parallel()
	srv := testredis.StartServer(t)
	e := newEnv(t, srv.Client(), testredis.Keys{Stream: "s", Group: "g"})
	e.run(t)
	srv.Restart()
	e.delivery(t, "pending", time.Second, nil)
	// A new worker (another process, or this one restarted) still knows the marker.
	other := maintenance.NewReconciler(e.pool, srv.Client(), e.config(), nil, metrics.New(nil), nil)
	res, err := other.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.RedisReset != maintenance.ResetMarkerGone || res.Reset != 1 {
		t.Fatalf("%+v, want the loss detected by a new worker", res)
	}
}

// TestReconcile_DetectsLossWhateverRecreatedTheStream loses the stream's
// data without a restart (the run id stays the same) and, before the
// reconciler runs, lets a worker recreate the group (as on NOGROUP) and a
// relay recreate the stream (its next XADD): the loss must still be found.
func TestReconcile_DetectsLossWhateverRecreatedTheStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		lose func(ctx context.Context, rdb redis.UniversalClient, k testredis.Keys) error
	}{
		{"FLUSHDB", func(ctx context.Context, rdb redis.UniversalClient, _ testredis.Keys) error {
			return rdb.FlushDB(ctx).Err()
		}},
		{"FLUSHALL", func(ctx context.Context, rdb redis.UniversalClient, _ testredis.Keys) error {
			return rdb.FlushAll(ctx).Err()
		}},
		{"DEL stream", func(ctx context.Context, rdb redis.UniversalClient, k testredis.Keys) error {
			return rdb.Del(ctx, k.Stream).Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := testredis.StartServer(t)
			e := newEnv(t, srv.Client(), testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"})
			e.run(t)
			queued := e.delivery(t, "pending", time.Second, nil) // its entry was in the stream
			if err := tc.lose(ctx, e.rdb, e.keys); err != nil {
				t.Fatal(err)
			}
			if err := stream.EnsureGroup(ctx, e.rdb, e.keys.Stream, e.keys.Group); err != nil {
				t.Fatal(err)
			}
			later := e.delivery(t, "pending", 0, nil)
			if err := (stream.Shards{Base: e.keys.Stream}).PublishWebhook(ctx, e.rdb, uuid.Nil, later); err != nil {
				t.Fatal(err)
			}
			res := e.run(t)
			if res.RedisReset != maintenance.ResetMarkerGone {
				t.Fatalf("%+v, want the loss detected (%q)", res, maintenance.ResetMarkerGone)
			}
			if !slices.Contains(e.published(t), queued) {
				t.Fatalf("delivery %s, whose entry was lost, was not re-published", queued)
			}
			if res := e.run(t); res.RedisReset != "" || res.Reset != 0 {
				t.Fatalf("next run still sees a loss: %+v", res)
			}
		})
	}
}

func TestReconcile_DestroyedGroupIsRecreatedWithoutALoss(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	ctx := context.Background()
	e.run(t)
	id := e.delivery(t, "pending", time.Second, nil)
	if err := (stream.Shards{Base: e.keys.Stream}).PublishWebhook(ctx, e.rdb, uuid.Nil, id); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.XGroupDestroy(ctx, e.keys.Stream, e.keys.Group).Err(); err != nil {
		t.Fatal(err)
	}
	res := e.run(t)
	if res.RedisReset != "" || res.Reset != 0 {
		t.Fatalf("%+v, want no loss: the entries are still in the stream", res)
	}
	if g := e.groups(t); g[e.keys.Group] != 1 {
		t.Fatalf("groups %v, want %s recreated with its entry unread", g, e.keys.Group)
	}
}

// TestReconcile_RefusedINFOStopsNeitherDetectionNorTheSweep runs the
// reconciler as a Redis user without @dangerous commands, as a
// least-privilege ACL or a managed Redis would have it: INFO is refused.
func TestReconcile_RefusedINFOStopsNeitherDetectionNorTheSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testredis.StartServer(t)
	admin := srv.Client()
	restricted := aclClient(t, srv, admin, "+@all -@dangerous")
	if err := restricted.Info(ctx, "server").Err(); err == nil {
		t.Fatal("INFO answered for a user without @dangerous; the test proves nothing")
	}
	e := newEnv(t, restricted, testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"})
	e.run(t)
	stale := e.delivery(t, "pending", 10*time.Minute, nil)
	if res := e.run(t); res.Stale != 1 {
		t.Fatalf("%+v, want the stale delivery re-published", res)
	}
	wantIDs(t, e.published(t), stale)

	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	pending := e.delivery(t, "pending", time.Second, nil)
	res := e.run(t)
	if res.RedisReset != maintenance.ResetMarkerGone || res.Reset != 2 {
		t.Fatalf("%+v, want the FLUSHALL detected and 2 deliveries re-published", res)
	}
	wantIDs(t, e.published(t), stale, pending)
}

// TestReconcile_InterruptedResetIsCarriedOnByTheNextRun loses data, then
// lets the first run's re-publishing fail (its user may not XADD): the next
// run, with Redis answering, must still re-publish everything.
func TestReconcile_InterruptedResetIsCarriedOnByTheNextRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testredis.StartServer(t)
	admin := srv.Client()
	e := newEnv(t, admin, testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"})
	e.run(t)
	a := e.delivery(t, "pending", time.Second, nil)
	b := e.delivery(t, "pending", time.Second, nil)
	c := e.delivery(t, "pending", time.Second, nil) // three: more than one batch of 2
	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	noXADD := aclClient(t, srv, admin, "+@all -@dangerous -xadd")
	failing := maintenance.NewReconciler(e.pool, noXADD, e.config(), nil, metrics.New(nil), nil)
	if res, err := failing.Reconcile(ctx); err == nil {
		t.Fatalf("run with XADD refused: %+v, want an error", res)
	}
	res := e.run(t)
	if res.Reset != 3 {
		t.Fatalf("%+v, want the interrupted reset carried on: 3 re-published", res)
	}
	wantIDs(t, e.published(t), a, b, c)
	if res := e.run(t); res.Reset != 0 || res.RedisReset != "" {
		t.Fatalf("%+v, want the reset finished", res)
	}
}

// TestReconcile_StaleSweepLeavesAQueuedBacklogAlone is a worker outage: the
// stream holds entries nobody reads, and deliveries queued behind them have
// been idle longer than After. Re-publishing them would double the backlog at
// every run; once the stream has drained, a delivery still stale is lost and
// is re-published.
func TestReconcile_StaleSweepLeavesAQueuedBacklogAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := sharedEnv(t)
	e.run(t)
	oldest := fmt.Sprintf("%d-0", time.Now().Add(-30*time.Minute).UnixMilli())
	if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.keys.Stream, ID: oldest,
		Values: []string{stream.Field, uuid.NewString()}}).Err(); err != nil {
		t.Fatal(err)
	}
	queued := e.delivery(t, "pending", 10*time.Minute, nil)
	if res := e.run(t); res.Stale != 0 {
		t.Fatalf("%+v, want nothing re-published while older entries are queued", res)
	}
	lost := e.delivery(t, "pending", time.Hour, nil) // published before the oldest entry: it is gone
	if res := e.run(t); res.Stale != 1 {
		t.Fatalf("%+v, want only the delivery older than the queue re-published", res)
	}
	// The backlog drains: what is left in the stream is lost's new entry,
	// published after queued's last publish, so queued cannot be behind it.
	if err := e.rdb.XDel(ctx, e.keys.Stream, oldest).Err(); err != nil {
		t.Fatal(err)
	}
	if res := e.run(t); res.Stale != 1 {
		t.Fatalf("%+v, want the delivery no entry can be holding re-published", res)
	}
	wantIDs(t, e.published(t), lost, queued)
}

// aclClient creates a Redis user with the given command rules and returns
// a client logged in as it.
func aclClient(t *testing.T, srv *testredis.Server, admin *redis.Client, rules string) *redis.Client {
	t.Helper()
	user := fmt.Sprintf("u%d", time.Now().UnixNano())
	args := []any{"ACL", "SETUSER", user, "on", ">secret", "~*", "&*"}
	for _, r := range strings.Fields(rules) {
		args = append(args, r)
	}
	if err := admin.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port), Username: user, Password: "secret"})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReconcile_RemovesConsumersOfGoneProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := sharedEnv(t)
	cfg := e.config()
	cfg.ConsumerIdle = 200 * time.Millisecond
	w := maintenance.NewReconciler(e.pool, e.rdb, cfg, nil, metrics.New(nil), nil)
	if err := (stream.Shards{Base: e.keys.Stream}).PublishWebhook(ctx, e.rdb, uuid.Nil, uuid.New(), uuid.New()); err != nil {
		t.Fatal(err)
	}
	read := func(consumer string) {
		if err := e.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: e.keys.Group, Consumer: consumer,
			Streams: []string{e.keys.Stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	read("killed-with-work") // its entry stays pending: kept for the claim loops
	read("killed-idle")
	msgs, _ := e.rdb.XRange(ctx, e.keys.Stream, "-", "+").Result()
	if err := e.rdb.XAck(ctx, e.keys.Stream, e.keys.Group, msgs[1].ID).Err(); err != nil {
		t.Fatal(err)
	}
	var names []string
	testwait.Until(t, 10*time.Second, func() bool {
		if _, err := w.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		cs, err := e.rdb.XInfoConsumers(ctx, e.keys.Stream, e.keys.Group).Result()
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, c := range cs {
			names = append(names, c.Name)
		}
		return len(names) == 1
	}, func() string { return fmt.Sprintf("consumers %v, want only killed-with-work", names) })
	if names[0] != "killed-with-work" {
		t.Fatalf("consumers %v, want killed-with-work kept", names)
	}
}

// TestReconcile_LeavesAnUnpublishedEventsDeliveriesToTheRelay is a relay
// whose fan-out committed while Redis was down: its XADD failed, so the
// event stays unpublished and the relay publishes the deliveries once Redis
// answers. A reset must not publish them a second time.
func TestReconcile_LeavesAnUnpublishedEventsDeliveriesToTheRelay(t *testing.T) {
	t.Parallel()
	e, srv := privateEnv(t)
	e.run(t)
	published := e.delivery(t, "pending", time.Second, nil)
	e.unpublishedEventDelivery(t, 10*time.Minute) // the relay's, still being published
	srv.Restart()
	if res := e.run(t); res.Reset != 1 {
		t.Fatalf("%+v, want only the published event's delivery re-published", res)
	}
	wantIDs(t, e.published(t), published)
}

// TestReconcile_RestoredOlderMarkerIsALoss stands for a Redis restored from
// an older snapshot (or a replica promoted while it lagged): it holds the
// marker of an earlier run, not the latest one, so the data since is gone.
func TestReconcile_RestoredOlderMarkerIsALoss(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := sharedEnv(t)
	e.run(t)
	older := e.markers(t)
	e.run(t)
	newer := e.markers(t)
	if len(older) != 1 || len(newer) != 1 || older[0] == newer[0] {
		t.Fatalf("markers %v then %v, want one marker, replaced at each run", older, newer)
	}
	pending := e.delivery(t, "pending", time.Second, nil)
	if err := e.rdb.XGroupDestroy(ctx, e.keys.Stream, newer[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.XGroupCreate(ctx, e.keys.Stream, older[0], "$").Err(); err != nil {
		t.Fatal(err)
	}
	res := e.run(t)
	if res.RedisReset != maintenance.ResetMarkerGone || res.Reset != 1 {
		t.Fatalf("%+v, want the older snapshot detected as a loss", res)
	}
	wantIDs(t, e.published(t), pending)
	if m := e.markers(t); len(m) != 1 {
		t.Fatalf("markers %v, want the stale one removed", m)
	}
}

// TestReconcile_NothingIsStaleRightAfterAnOutage makes the reconciler's runs
// fail (its Redis user is switched off), then succeed again: deliveries that
// waited through the outage are being published by the relay and the retry
// jobs, which do not bump updated_at, so the sweep must leave them alone
// until they have been idle for After since the outage ended.
func TestReconcile_NothingIsStaleRightAfterAnOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testredis.StartServer(t)
	admin := srv.Client()
	user := aclClient(t, srv, admin, "+@all")
	e := newEnv(t, user, testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"})
	e.run(t)
	e.delivery(t, "pending", 10*time.Minute, nil) // waited through the outage
	name := user.Options().Username
	if err := admin.Do(ctx, "ACL", "SETUSER", name, "off").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", name).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.Reconcile(ctx); err == nil {
		t.Fatal("a run with its Redis user switched off succeeded; the test proves nothing")
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", name, "on").Err(); err != nil {
		t.Fatal(err)
	}
	if res := e.run(t); res.Stale != 0 || res.RedisReset != "" {
		t.Fatalf("first run after the outage: %+v, want nothing re-published", res)
	}
}

// TestReconcile_ResetWaitsForEventsStillBeingRelayed loses Redis while a
// relay holds an event it has XADDed but not yet marked published: the
// reset leaves its deliveries to the relay, but must not be forgotten until
// the event is published, for its XADD went to the Redis that lost it.
func TestReconcile_ResetWaitsForEventsStillBeingRelayed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, srv := privateEnv(t)
	e.run(t)
	_, delivery := e.unpublishedEventDelivery(t, 0)
	srv.Restart() // the relay's XADD is lost with everything else
	if res := e.run(t); res.RedisReset == "" || res.Reset != 0 {
		t.Fatalf("%+v, want the loss detected and the relay's delivery left to it", res)
	}
	// The relay now moves its cursor: the event is published, with no entry.
	if _, err := e.pool.Exec(ctx, testdb.PublishOutboxSQL); err != nil {
		t.Fatal(err)
	}
	if res := e.run(t); res.Reset != 1 {
		t.Fatalf("%+v, want the delivery re-published once its event is published", res)
	}
	wantIDs(t, e.published(t), delivery)
	if res := e.run(t); res.Reset != 0 {
		t.Fatalf("%+v, want the reset finished", res)
	}
}

// privateEnv is an env on a private Redis server, which the test may flush
// or restart, with the stream and group names of production.
func privateEnv(t *testing.T) (*env, *testredis.Server) {
	srv := testredis.StartServer(t)
	return newEnv(t, srv.Client(), testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"}), srv
}

// unpublishedEventDelivery is an event a relay has fanned out but not yet
// moved its cursor past, and its delivery, last updated idle ago.
func (e *env) unpublishedEventDelivery(t *testing.T, idle time.Duration) (event, delivery uuid.UUID) {
	t.Helper()
	if err := e.pool.QueryRow(context.Background(), `WITH ev AS (
		INSERT INTO hookrelay.outbox (event_type, project_id, data) VALUES ('a', gen_random_uuid(), '{}') RETURNING *)
		INSERT INTO hookrelay.deliveries (event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts, updated_at)
		SELECT id, gen_random_uuid(), project_id, event_type, data, created_at, 6, now() - $1::interval FROM ev
		RETURNING event_id, id`, idle).Scan(&event, &delivery); err != nil {
		t.Fatal(err)
	}
	return event, delivery
}

// TestReconcile_LossRightAfterTheCheckIsFoundByTheNextRun flushes Redis
// just after a run has checked the marker: that run cannot know, but the
// marker it leaves must not survive the flush, or no run ever finds it.
func TestReconcile_LossRightAfterTheCheckIsFoundByTheNextRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _ := privateEnv(t)
	e.run(t)
	pending := e.delivery(t, "pending", time.Second, nil)
	e.w.AfterMarkerCheck(func() {
		e.w.AfterMarkerCheck(nil)
		if err := e.rdb.FlushAll(ctx).Err(); err != nil {
			t.Error(err)
		}
	})
	if res := e.run(t); res.RedisReset != "" {
		t.Fatalf("%+v: the run that checked before the flush cannot have seen it", res)
	}
	res := e.run(t)
	if res.RedisReset != maintenance.ResetMarkerGone || res.Reset != 1 {
		t.Fatalf("%+v, want the flush found by the next run", res)
	}
	wantIDs(t, e.published(t), pending)
}

// TestReconcile_ResetWaitsForTheAttemptsInFlight loses Redis while one
// delivery's attempt is in flight: the reset waits ResetGrace, by which time
// that attempt is recorded, and re-publishes only what is still pending —
// by itself, without waiting for the next periodic run.
func TestReconcile_ResetWaitsForTheAttemptsInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testredis.StartServer(t)
	e := newEnv(t, srv.Client(), testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"})
	cfg := e.config()
	cfg.ResetGrace = 300 * time.Millisecond
	w := maintenance.NewReconciler(e.pool, e.rdb, cfg, nil, metrics.New(nil), nil)
	if _, err := w.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	inFlight := e.delivery(t, "pending", time.Second, nil)
	waiting := e.delivery(t, "pending", time.Second, nil)
	srv.Restart()
	res, err := w.Reconcile(ctx)
	if err != nil || res.RedisReset == "" || res.Reset != 0 {
		t.Fatalf("%+v (%v), want the loss found and nothing re-published yet", res, err)
	}
	// The attempt in flight is recorded during the grace.
	if _, err := e.pool.Exec(ctx, `UPDATE hookrelay.deliveries SET status = 'delivered', updated_at = now() WHERE id = $1`, inFlight); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool { return len(e.published(t)) > 0 },
		func() string { return "nothing re-published after the grace" })
	wantIDs(t, e.published(t), waiting)
}

// TestReconcile_ResetSkipsWhatIsInTheNewStream: after Redis came back
// empty, the relay and the retry jobs publish part of the backlog to the new
// stream before the reset runs; the reset publishes only the rest.
func TestReconcile_ResetSkipsWhatIsInTheNewStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, srv := privateEnv(t)
	e.run(t)
	republished := e.delivery(t, "pending", time.Second, nil)
	lost := e.delivery(t, "pending", time.Second, nil)
	srv.Restart()
	if err := (stream.Shards{Base: e.keys.Stream}).PublishWebhook(ctx, e.rdb, uuid.Nil, republished); err != nil {
		t.Fatal(err)
	}
	if res := e.run(t); res.RedisReset == "" || res.Reset != 1 {
		t.Fatalf("%+v, want the loss found and only the lost delivery re-published", res)
	}
	wantIDs(t, e.published(t), republished, lost)
}
