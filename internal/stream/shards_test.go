package stream_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// One shard is today's single key: the base name, byte for byte.
func TestShards_OneShardIsTheBaseKey(t *testing.T) {
	for _, n := range []int{0, 1} {
		s := stream.Shards{Base: "queues:webhooks", N: n}
		if keys := s.Keys(); len(keys) != 1 || keys[0] != "queues:webhooks" || s.KeyFor(uuid.New()) != "queues:webhooks" {
			t.Fatalf("N=%d: keys %v", n, keys)
		}
	}
}

// Every delivery is published on the shard of its webhook, so that one
// endpoint's deliveries stay on one shard and the webhooks spread over all.
func TestShards_PublishPlacesDeliveriesByWebhook(t *testing.T) {
	rdb, keys := testredis.New(t)
	s := stream.Shards{Base: keys.Stream, N: 4}
	var entries []stream.Entry
	shardOf := map[uuid.UUID]string{} // delivery → the key of its webhook's shard
	for range 40 {
		webhook := uuid.New()
		for range 3 {
			e := stream.Entry{ID: uuid.New(), WebhookID: webhook}
			entries = append(entries, e)
			shardOf[e.ID] = s.KeyFor(webhook)
		}
	}
	if err := s.Publish(t.Context(), rdb, entries); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, key := range s.Keys() {
		msgs, err := rdb.XRange(t.Context(), key, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			t.Errorf("shard %s holds nothing: 40 webhooks did not spread over 4 shards", key)
		}
		for _, m := range msgs {
			id, err := stream.DeliveryID(m)
			if err != nil {
				t.Fatal(err)
			}
			if shardOf[id] != key {
				t.Errorf("delivery %s on %s, its webhook's shard is %s", id, key, shardOf[id])
			}
			found++
		}
	}
	if found != len(entries) {
		t.Fatalf("%d entries on the shards, published %d", found, len(entries))
	}
	if n, _ := rdb.Exists(t.Context(), keys.Stream).Result(); n != 0 {
		t.Fatal("with shards, the base key was written too")
	}
}

// Shard keys carry hash tags that put shard i in the i-th N-th of the
// Cluster's slots: on three masters splitting the slots evenly, three
// shards land on three masters (plain {0} {1} {2} would put two on one).
func TestShards_KeysSpreadOverTheClusterSlots(t *testing.T) {
	for _, n := range []int{2, 3, 4, 16, 256} {
		s := stream.Shards{Base: "queues:webhooks", N: n}
		for i, key := range s.Keys() {
			slot := int(stream.Slot(key))
			if lo, hi := i*16384/n, (i+1)*16384/n; slot < lo || slot >= hi {
				t.Errorf("N=%d: %s is in slot %d, outside [%d, %d)", n, key, slot, lo, hi)
			}
			if dead := key + ":dead"; stream.Slot(dead) != stream.Slot(key) {
				t.Errorf("N=%d: %s is not in its shard's slot", n, dead)
			}
			if got := s.Label(key); got != fmt.Sprint(i) {
				t.Errorf("N=%d: label of %s is %q, want %d", n, key, got, i)
			}
		}
	}
	// CLUSTER KEYSLOT's documented answers.
	if stream.Slot("foo") != 12182 || stream.Slot("{user1000}.following") != stream.Slot("user1000") {
		t.Fatal("Slot disagrees with Redis")
	}
}

// After a change of N, the keys to drain are the registered ones that are
// no longer shards, and the base key when there are shards now.
func TestShards_RetiredAreTheKeysOfAPastCount(t *testing.T) {
	four := stream.Shards{Base: "q", N: 4}
	two := stream.Shards{Base: "q", N: 2}
	got := two.Retired(four.Keys())
	if len(got) != 5 || got[0] != "q" {
		t.Fatalf("4 → 2 retires %v, want the base key and the four keys of N=4", got)
	}
	one := stream.Shards{Base: "q", N: 1}
	if got := one.Retired(append(four.Keys(), "q")); len(got) != 4 {
		t.Fatalf("4 → 1 retires %v, want the four shard keys", got)
	}
	if got := two.Retired(two.Keys()); len(got) != 1 || got[0] != "q" {
		t.Fatalf("2 → 2 retires %v, want only the base key", got)
	}
}
