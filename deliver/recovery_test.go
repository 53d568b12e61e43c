package deliver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

func TestWorker_KilledMidDeliveryIsReclaimedByAnotherWorker(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // in flight when the worker dies
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	wh := h.webhook(rc.URL)
	cfgA := h.config()
	cfgA.Consumer = "worker-a"
	a := h.startWorker(cfgA)
	id := h.delivery(wh.ID, 3)
	testwait.Until(t, 10*time.Second, func() bool { return len(rc.Requests()) == 1 },
		func() string { return "the first worker never sent the delivery" })
	a.Kill()

	cfgB := h.config()
	cfgB.Consumer = "worker-b"
	cfgB.ClaimIdle = 300 * time.Millisecond
	h.startWorker(cfgB)

	d := h.waitStatus(id, "delivered", 10*time.Second)
	reqs := rc.Requests()
	if len(reqs) != 2 || reqs[0].Header.Get("X-Agenta-Delivery") != id.String() ||
		reqs[1].Header.Get("X-Agenta-Delivery") != id.String() {
		t.Fatalf("receiver got %d requests, want the same delivery id %s twice", len(reqs), id)
	}
	att := h.attempts(id)
	if d.Attempts != 1 || len(att) != 1 || att[0].StatusCode == nil || *att[0].StatusCode != 200 {
		t.Fatalf("audit %+v, want exactly one attempt, delivered (the killed one recorded nothing)", att)
	}
	testwait.Until(t, 5*time.Second, func() bool {
		p, err := h.rdb.XPending(t.Context(), h.keys.Stream, h.keys.Group).Result()
		return err == nil && p.Count == 0
	}, func() string { return "entry still pending after delivery" })
}

func TestWorker_StopFinishesInFlightDeliveries(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(300 * time.Millisecond) // a slow endpoint, still in flight at Stop
		w.WriteHeader(http.StatusOK)
	})
	wh := h.webhook(rc.URL)
	w := h.startWorker(h.config())
	id := h.delivery(wh.ID, 3)
	testwait.Until(t, 10*time.Second, func() bool { return len(rc.Requests()) == 1 },
		func() string { return "the worker never sent the delivery" })

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := h.state(id); d.Status != "delivered" {
		t.Fatalf("after Stop the delivery is %s, want delivered", d.Status)
	}
	if n, _ := h.rdb.XLen(t.Context(), h.keys.Stream).Result(); n != 0 {
		t.Fatalf("stream holds %d entries after Stop, want 0 (acked and deleted)", n)
	}
	if cs, err := h.rdb.XInfoConsumers(t.Context(), h.keys.Stream, h.keys.Group).Result(); err != nil || len(cs) != 0 {
		t.Fatalf("consumers after a clean stop %+v (%v), want none", cs, err)
	}
}

func TestWorker_RecreatesGroupAfterRedisRestartsEmpty(t *testing.T) {
	t.Parallel()
	srv := testredis.StartServer(t)
	h := newHarnessWith(t, srv.Client(), testredis.Keys{Stream: "queues:webhooks", Group: "worker-webhooks"})
	rc := newReceiver(t, nil)
	wh := h.webhook(rc.URL)
	h.startWorker(h.config())
	h.waitStatus(h.delivery(wh.ID, 3), "delivered", 10*time.Second)

	srv.Restart()
	// Wait until the restarted server answers the client before publishing.
	testwait.Until(t, 10*time.Second, func() bool { return h.rdb.Ping(t.Context()).Err() == nil },
		func() string { return "Redis did not come back" })
	id := h.delivery(wh.ID, 3)
	h.waitStatus(id, "delivered", 15*time.Second)
	groups, err := h.rdb.XInfoGroups(t.Context(), h.keys.Stream).Result()
	if err != nil || len(groups) != 1 || groups[0].Name != h.keys.Group {
		t.Fatalf("groups after restart %+v (%v), want the recreated %s", groups, err, h.keys.Group)
	}
}

func TestWorker_UnknownDeliveryIsCountedAndAcked(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	wh := h.webhook(rc.URL)
	h.startWorker(h.config())
	h.publish(uuid.New())
	id := h.delivery(wh.ID, 3)

	h.waitStatus(id, "delivered", 10*time.Second)
	testwait.Until(t, 5*time.Second, func() bool { return testutil.ToFloat64(h.m.UnknownDeliveries) == 1 },
		func() string { return "unknown delivery not counted" })
	testwait.Until(t, 5*time.Second, func() bool {
		n, _ := h.rdb.XLen(t.Context(), h.keys.Stream).Result()
		return n == 0
	}, func() string { return "unknown delivery's entry not acked and deleted" })
}

func TestWorker_MovesPoisonEntriesToDeadStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	wh := h.webhook(rc.URL)
	ctx := t.Context()
	if err := h.rdb.XGroupCreateMkStream(ctx, h.keys.Stream, h.keys.Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	// An entry that is not a delivery at all.
	if err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: h.keys.Stream, Values: []string{"garbage", "1"}}).Err(); err != nil {
		t.Fatal(err)
	}
	// An entry whose processing already failed ten times on a consumer that died.
	stuck := uuid.New()
	stuckEntry, err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: h.keys.Stream, Values: []string{stream.Field, stuck.String()}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: h.keys.Group, Consumer: "ghost",
		Streams: []string{h.keys.Stream, ">"}, Count: 2}).Result(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.Do(ctx, "XCLAIM", h.keys.Stream, h.keys.Group, "ghost", 0, stuckEntry, "RETRYCOUNT", 10).Err(); err != nil {
		t.Fatal(err)
	}
	cfg := h.config()
	cfg.ClaimIdle = 200 * time.Millisecond
	h.startWorker(cfg)
	id := h.delivery(wh.ID, 3) // the stream keeps flowing
	h.waitStatus(id, "delivered", 10*time.Second)

	dead := deliver.DeadStream(h.keys.Stream)
	var entries []redis.XMessage
	testwait.Until(t, 10*time.Second, func() bool {
		entries, _ = h.rdb.XRange(ctx, dead, "-", "+").Result()
		return len(entries) == 2
	}, func() string { return "dead stream does not hold both poison entries" })
	reasons := map[string]string{}
	for _, e := range entries {
		reasons[e.Values["entry_id"].(string)], _ = e.Values["reason"].(string)
	}
	if r := reasons[stuckEntry]; !strings.Contains(r, "processing failed") {
		t.Fatalf("stuck entry reason %q, want repeated processing failure", r)
	}
	// The entries leave the stream after their copies reach the dead stream.
	var n int64
	testwait.Until(t, 5*time.Second, func() bool { n, _ = h.rdb.XLen(ctx, h.keys.Stream).Result(); return n == 0 },
		func() string { return fmt.Sprintf("stream still holds %d entries", n) })
	// Counted once the entry is off the stream, so wait for the count too.
	testwait.Until(t, 5*time.Second, func() bool { return testutil.ToFloat64(h.m.PoisonEntries) == 2 },
		func() string {
			return fmt.Sprintf("poison entries = %v, want 2", testutil.ToFloat64(h.m.PoisonEntries))
		})
}
