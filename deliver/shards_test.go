package deliver_test

import (
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/receiver"
	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// shardHooks creates webhooks of url until each shard of every one of
// counts has one, and returns them with, per count, the webhook of each
// shard.
func (h *harness) shardHooks(url string, counts ...int) (all []hook, onShard map[int][]hook) {
	h.t.Helper()
	onShard = map[int][]hook{}
	covered := func() bool {
		for _, n := range counts {
			s := deliver.Streams{Base: h.keys.Stream, N: n}
			seen := map[int]bool{}
			for _, wh := range all {
				seen[s.Index(wh.ID)] = true
			}
			if len(seen) < n {
				return false
			}
		}
		return true
	}
	for !covered() {
		all = append(all, h.webhook(url))
	}
	for _, n := range counts {
		s := deliver.Streams{Base: h.keys.Stream, N: n}
		onShard[n] = make([]hook, n)
		for _, wh := range all {
			onShard[n][s.Index(wh.ID)] = wh
		}
	}
	return all, onShard
}

// publishOn creates per deliveries for each webhook and publishes them on
// s, as a relay with s's shard count does (registering its shards first).
func (h *harness) publishOn(s deliver.Streams, hooks []hook, per int) []uuid.UUID {
	h.t.Helper()
	var ids []uuid.UUID
	var entries []stream.Entry
	for _, wh := range hooks {
		for range per {
			id := h.createDelivery(wh.ID, 3)
			ids = append(ids, id)
			entries = append(entries, stream.Entry{ID: id, WebhookID: wh.ID})
		}
	}
	if err := s.Register(h.t.Context(), h.rdb); err != nil {
		h.t.Fatal(err)
	}
	if err := s.Publish(h.t.Context(), h.rdb, entries); err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// duplicates counts the requests rc got beyond one per delivery of ids.
func duplicates(rc *receiver.Receiver, ids []uuid.UUID) (n int) {
	got := map[string]int{}
	for _, r := range rc.Requests() {
		got[r.Header.Get("X-Agenta-Delivery")]++
	}
	for _, id := range ids {
		n += max(got[id.String()]-1, 0)
	}
	return n
}

// startSharded starts a worker with n shards, then waits until every
// delivery of ids is delivered, once.
func (h *harness) startSharded(rc *receiver.Receiver, n int, ids func() []uuid.UUID) {
	h.t.Helper()
	cfg := h.config()
	cfg.Shards = n
	h.startWorker(cfg)
	all := ids()
	h.waitDelivered(all, 15*time.Second)
	if dups := duplicates(rc, all); dups != 0 {
		h.t.Errorf("%d duplicate requests", dups)
	}
}

// waitGone waits until none of keys exists.
func (h *harness) waitGone(keys []string, within time.Duration) {
	h.t.Helper()
	var n int64
	testwait.Until(h.t, within, func() bool { n, _ = h.rdb.Exists(h.t.Context(), keys...).Result(); return n == 0 },
		func() string { return fmt.Sprintf("%d of %v still exist", n, keys) })
}

func TestWorker_ConsumesEveryShard(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	s := deliver.Streams{Base: h.keys.Stream, N: 4}
	_, onShard := h.shardHooks(rc.URL, 4)
	ids := h.publishOn(s, onShard[4], 3)
	h.startSharded(rc, 4, func() []uuid.UUID { return ids })
	for _, key := range s.Keys() {
		var n int64
		testwait.Until(t, 5*time.Second, func() bool { n, _ = h.rdb.XLen(t.Context(), key).Result(); return n == 0 },
			func() string { return fmt.Sprintf("%s still holds %d entries", key, n) })
	}
}

// A backlog on one shard does not hold up another shard's deliveries: the
// shard readers share the worker's slots.
func TestWorker_ReadsShardsFairly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	s := deliver.Streams{Base: h.keys.Stream, N: 2}
	_, onShard := h.shardHooks(rc.URL, 2)
	backlog := h.publishOn(s, onShard[2][:1], 200) // 200 × 20 ms / 4 slots: a second
	cfg := h.config()
	cfg.Shards = 2
	h.startWorker(cfg)
	testwait.Until(t, 10*time.Second, func() bool { return rc.Count() >= 8 },
		func() string { return "the backlog is not being delivered" })
	other := h.publishOn(s, onShard[2][1:], 1)
	h.waitStatus(other[0], "delivered", 10*time.Second)
	var left int
	if err := h.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM hookrelay.deliveries
		WHERE id = ANY($1) AND status = 'pending'`, backlog).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left == 0 {
		t.Fatal("the other shard's delivery waited for the whole backlog of the first")
	}
	t.Logf("the other shard's delivery was delivered with %d of the backlog's 200 still pending", left)
	h.waitDelivered(backlog, 20*time.Second)
}

// An entry left pending on a shard by a dead consumer is reclaimed and
// acknowledged on that shard, and a poison entry moves to its own shard's
// dead stream.
func TestWorker_ReclaimsAndDeadLettersOnTheEntrysShard(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	ctx := t.Context()
	s := deliver.Streams{Base: h.keys.Stream, N: 3}
	_, onShard := h.shardHooks(rc.URL, 3)
	claimed, poisoned := s.Key(2), s.Key(1)
	for _, key := range s.Keys() {
		if err := h.rdb.XGroupCreateMkStream(ctx, key, h.keys.Group, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	ids := h.publishOn(s, onShard[3][2:], 1)
	if _, err := h.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: h.keys.Group, Consumer: "ghost",
		Streams: []string{claimed, ">"}, Count: 1}).Result(); err != nil {
		t.Fatal(err)
	}
	garbage, err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: poisoned, Values: []string{"garbage", "1"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config()
	cfg.Shards = 3
	cfg.ClaimIdle = 200 * time.Millisecond
	h.startWorker(cfg)
	h.waitDelivered(ids, 10*time.Second)
	var pending int64
	testwait.Until(t, 5*time.Second, func() bool {
		p, err := h.rdb.XPending(ctx, claimed, h.keys.Group).Result()
		pending = -1
		if err == nil {
			pending = p.Count
		}
		n, _ := h.rdb.XLen(ctx, claimed).Result()
		return pending == 0 && n == 0
	}, func() string { return fmt.Sprintf("%s: %d entries pending", claimed, pending) })

	var dead []redis.XMessage
	testwait.Until(t, 5*time.Second, func() bool {
		dead, _ = h.rdb.XRange(ctx, deliver.DeadStream(poisoned), "-", "+").Result()
		return len(dead) == 1
	}, func() string { return deliver.DeadStream(poisoned) + " does not hold the poison entry" })
	if dead[0].Values["entry_id"] != garbage {
		t.Fatalf("dead entry %v, want a copy of %s", dead[0].Values, garbage)
	}
	for _, key := range []string{h.keys.Stream, s.Key(0), claimed} {
		if n, _ := h.rdb.Exists(ctx, deliver.DeadStream(key)).Result(); n != 0 {
			t.Errorf("%s exists: the poison entry went to another shard's dead stream", deliver.DeadStream(key))
		}
	}
}

// Lowering the shard count strands nothing: a worker with two shards drains
// the four keys a relay with four registered and published to, deletes them
// once empty and delivers each delivery once.
func TestWorker_DrainsTheShardsOfAHigherCount(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	four := deliver.Streams{Base: h.keys.Stream, N: 4}
	all, _ := h.shardHooks(rc.URL, 4, 2)
	ids := h.publishOn(four, all, 2)
	h.startSharded(rc, 2, func() []uuid.UUID {
		return append(ids, h.publishOn(deliver.Streams{Base: h.keys.Stream, N: 2}, all, 1)...)
	})
	h.waitGone(four.Keys(), 5*time.Second)
	left, err := h.rdb.SMembers(t.Context(), four.Registry()).Result()
	if err != nil || len(left) != 2 {
		t.Fatalf("registry holds %v (%v), want the two shards of now", left, err)
	}
}

// Raising the shard count strands nothing: a worker with three shards
// drains the single key of one shard.
func TestWorker_DrainsTheSingleKeyAfterShardsAreRaised(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	one := deliver.Streams{Base: h.keys.Stream, N: 1}
	all, _ := h.shardHooks(rc.URL, 3)
	ids := h.publishOn(one, all, 3)
	h.startSharded(rc, 3, func() []uuid.UUID { return ids })
	h.waitGone([]string{h.keys.Stream}, 5*time.Second)
}

// A failed attempt's retry comes back on the shard of its webhook, and so
// does that of a retry job inserted before shards existed, which names only
// its delivery.
func TestWorker_RetriesComeBackOnTheWebhooksShard(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	h := newShardedHarness(t, rdb, keys, 3)
	rc := newReceiver(t, statusThen(http.StatusInternalServerError, 1))
	s := deliver.Streams{Base: h.keys.Stream, N: 3}
	_, onShard := h.shardHooks(rc.URL, 3)
	ids := h.publishOn(s, onShard[3][1:2], 1)
	h.startSharded(rc, 3, func() []uuid.UUID { return nil })
	if d := h.waitStatus(ids[0], "delivered", 10*time.Second); d.Attempts != 2 {
		t.Fatalf("delivered after %d attempts, want 2 (a retry)", d.Attempts)
	}
	old := h.createDelivery(onShard[3][2].ID, 3)
	if _, err := h.jobs.River().Insert(t.Context(), deliver.RetryArgs{DeliveryID: old}, nil); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(old, "delivered", 10*time.Second)
	added := map[string]int64{}
	for _, key := range s.Keys() {
		info, err := h.rdb.XInfoStream(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		added[key] = info.EntriesAdded
	}
	if want := map[string]int64{s.Key(0): 0, s.Key(1): 2, s.Key(2): 1}; !maps.Equal(added, want) {
		t.Fatalf("entries added per shard: %v, want %v", added, want)
	}
}
