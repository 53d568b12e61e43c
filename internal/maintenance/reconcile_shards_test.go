package maintenance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/internal/maintenance"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// shardedEnv is sharedEnv with a reconciler of n shards.
func shardedEnv(t *testing.T, n int) (*env, stream.Shards) {
	e := sharedEnv(t)
	cfg := e.config()
	cfg.Shards = n
	e.w = maintenance.NewReconciler(e.pool, e.rdb, cfg, nil, e.m, nil)
	return e, stream.Shards{Base: e.keys.Stream, N: n}
}

// webhookOf reads a delivery's webhook.
func (e *env) webhookOf(t *testing.T, id uuid.UUID) uuid.UUID {
	t.Helper()
	var wh uuid.UUID
	if err := e.pool.QueryRow(context.Background(), `SELECT webhook_id FROM hookrelay.deliveries WHERE id = $1`, id).Scan(&wh); err != nil {
		t.Fatal(err)
	}
	return wh
}

// Each shard carries its own marker, so the loss of one shard's key (the
// others intact) is detected, and the pending delivery goes back on the
// shard of its webhook.
func TestReconcile_DetectsTheLossOfOneShardsKey(t *testing.T) {
	t.Parallel()
	e, s := shardedEnv(t, 3)
	if res := e.run(t); res.RedisReset != "" {
		t.Fatalf("first run: %+v", res)
	}
	ctx := context.Background()
	for _, key := range s.Keys() {
		gs, err := e.rdb.XInfoGroups(ctx, key).Result()
		if err != nil {
			t.Fatalf("XINFO GROUPS %s: %v", key, err)
		}
		markers := 0
		for _, g := range gs {
			if strings.HasPrefix(g.Name, "hookrelay-marker-") {
				markers++
			}
		}
		if markers != 1 {
			t.Fatalf("%s has %d markers, want 1", key, markers)
		}
	}
	pending := e.delivery(t, "pending", time.Second, nil)
	if res := e.run(t); res.RedisReset != "" || res.Reset != 0 {
		t.Fatalf("run with every shard intact: %+v", res)
	}
	if err := e.rdb.Del(ctx, s.Key(1)).Err(); err != nil {
		t.Fatal(err)
	}
	res := e.run(t)
	if res.RedisReset != maintenance.ResetMarkerGone || res.Reset != 1 {
		t.Fatalf("run after shard 1's key was deleted: %+v, want reset %q of 1 delivery", res, maintenance.ResetMarkerGone)
	}
	key := s.KeyFor(e.webhookOf(t, pending))
	msgs, err := e.rdb.XRange(ctx, key, "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%s holds %v (%v), want the pending delivery", key, msgs, err)
	}
	if id, _ := stream.DeliveryID(msgs[0]); id != pending {
		t.Fatalf("%s holds %s, want %s", key, id, pending)
	}
	if res := e.run(t); res.RedisReset != "" || res.Reset != 0 {
		t.Fatalf("run after the reset: %+v, want nothing more", res)
	}
}

// The stream gauges are per shard, and the run's totals their sums.
func TestReconcile_ReportsStreamGaugesPerShard(t *testing.T) {
	t.Parallel()
	e, s := shardedEnv(t, 2)
	e.run(t) // creates the groups
	byShard := map[int]uuid.UUID{}
	for len(byShard) < 2 {
		wh := uuid.New()
		byShard[s.Index(wh)] = wh
	}
	ctx := context.Background()
	if err := s.PublishWebhook(ctx, e.rdb, byShard[0], uuid.New(), uuid.New()); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishWebhook(ctx, e.rdb, byShard[1], uuid.New()); err != nil {
		t.Fatal(err)
	}
	res := e.run(t)
	if res.StreamLength != 3 {
		t.Fatalf("stream length %d, want 3", res.StreamLength)
	}
	for shard, want := range map[string]float64{"0": 2, "1": 1} {
		if got := testutil.ToFloat64(e.m.StreamLength.WithLabelValues(shard)); got != want {
			t.Errorf("hookrelay_stream_length{shard=%q} = %v, want %v", shard, got, want)
		}
	}
}
