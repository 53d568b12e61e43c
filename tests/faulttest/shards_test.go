package faulttest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/signature"
)

// reshardBound is how soon after the processes restart with the new shard
// count every committed event must be delivered: workers drain the old
// keys from their start, so it is the time to deliver the backlog.
const reshardBound = 45 * time.Second

// TestShards_LoweringTheCountFrom4To2LosesNothing publishes half the
// events with a relay of four shards and no worker, so that entries wait on
// every one of the four keys, then restarts the relay and starts two
// workers with two shards while the writers go on: every committed event
// is delivered, once, and the four keys are drained and deleted.
func TestShards_LoweringTheCountFrom4To2LosesNothing(t *testing.T) {
	t.Parallel()
	reshard(t, 4, 2)
}

// TestShards_RaisingTheCountFrom1To3LosesNothing is the same from the one
// key of one shard to three shards.
func TestShards_RaisingTheCountFrom1To3LosesNothing(t *testing.T) {
	t.Parallel()
	reshard(t, 1, 3)
}

func reshard(t *testing.T, from, to int) {
	c := newClusterWith(t, setup{env: map[string]string{"HOOKRELAY_STREAM_SHARDS": strconv.Itoa(from)}})
	c.addShardWebhooks(from, to)
	old := stream.Shards{Base: streamKey, N: from}
	rdb := c.redis.Client()
	c.start("relay-1")
	var restarted time.Time
	w := c.write(300, 3*time.Second, func() {
		waitEntries(t, rdb, old.Keys())
		c.mu.Lock()
		relay := c.procs["relay-1"]
		c.mu.Unlock()
		if err := relay.Term(10 * time.Second); err != nil {
			t.Fatalf("stop relay-1: %v", err)
		}
		c.env["HOOKRELAY_STREAM_SHARDS"] = strconv.Itoa(to)
		restarted = time.Now()
		for _, name := range topologyProcs {
			c.start(name)
		}
	})
	took := c.waitQuiesced(reshardBound)
	r := c.verify(w)
	retired := stream.Shards{Base: streamKey, N: to}.Retired(old.Keys())
	var left int64
	testwait.Until(t, 10*time.Second, func() bool { left, _ = rdb.Exists(context.Background(), retired...).Result(); return left == 0 },
		func() string { return fmt.Sprintf("%d of the retired keys %v still exist", left, retired) })
	t.Logf("SUMMARY %s: %d → %d shards · committed %d · deliveries %d · duplicates %d · quiesced %s after the last commit, %s after the restart",
		t.Name(), from, to, len(w.committed), r.deliveries, r.duplicates, took.Round(10*time.Millisecond),
		time.Since(restarted).Round(10*time.Millisecond))
	if r.duplicates > 0 {
		t.Errorf("%d deliveries received twice: draining must not duplicate", r.duplicates)
	}
}

// waitEntries waits until every one of keys holds an entry.
func waitEntries(t *testing.T, rdb redis.Cmdable, keys []string) {
	t.Helper()
	empty := keys
	testwait.Until(t, 30*time.Second, func() bool {
		empty = nil
		for _, key := range keys {
			if n, _ := rdb.XLen(context.Background(), key).Result(); n == 0 {
				empty = append(empty, key)
			}
		}
		return len(empty) == 0
	}, func() string { return fmt.Sprintf("no entry yet on %v", empty) })
}

// addShardWebhooks subscribes more endpoints to every event until each shard
// of every count in counts has one, so that every shard carries entries.
func (c *cluster) addShardWebhooks(counts ...int) {
	c.t.Helper()
	for !c.coversShards(counts) {
		secret, err := signature.NewSecret()
		if err != nil {
			c.t.Fatal(err)
		}
		h := webhook{secret: secret, path: fmt.Sprintf("/shard-%d", len(c.hooks)),
			match: func(string, string) bool { return true }}
		err = c.pool.QueryRow(context.Background(), `INSERT INTO hookrelay.webhooks
			(project_id, name, url, secret, event_types) VALUES ($1, $2, $3, $4, '{*}') RETURNING id::text`,
			project, h.path, c.recv.URL+h.path, secret).Scan(&h.id)
		if err != nil {
			c.t.Fatal(err)
		}
		c.hooks = append(c.hooks, h)
	}
}

// coversShards reports whether the active webhooks that take every event
// cover every shard of each count.
func (c *cluster) coversShards(counts []int) bool {
	for _, n := range counts {
		s := stream.Shards{Base: streamKey, N: n}
		seen := map[int]bool{}
		for _, h := range c.hooks {
			if h.path == "/all" || strings.HasPrefix(h.path, "/shard-") {
				seen[s.Index(uuid.MustParse(h.id))] = true
			}
		}
		if len(seen) < n {
			return false
		}
	}
	return true
}

// TestTopology_ClusterSpreadsThreeShardsOverThreeMasters runs the pipeline
// with three shards on a 3-master Cluster: the shard keys are on three
// different masters, every shard carries entries, and every committed
// event is delivered.
func TestTopology_ClusterSpreadsThreeShardsOverThreeMasters(t *testing.T) {
	t.Parallel()
	rc := testredis.StartCluster(t, 0)
	s := stream.Shards{Base: streamKey, N: 3}
	masterOf := map[string]string{}
	masters := map[string]bool{}
	for _, key := range s.Keys() {
		m, err := rc.MasterOf(key)
		if err != nil {
			t.Fatal(err)
		}
		masterOf[key], masters[m] = m, true
	}
	if len(masters) != 3 {
		t.Fatalf("three shards on %d masters: %v", len(masters), masterOf)
	}
	c := newClusterWith(t, setup{redisURL: rc.URL(), env: map[string]string{"HOOKRELAY_STREAM_SHARDS": "3"}})
	c.addShardWebhooks(3)
	for _, name := range topologyProcs {
		c.start(name)
	}
	w := c.write(300, 3*time.Second, func() {})
	took := c.waitQuiesced(time.Minute)
	r := c.verify(w)
	for key, m := range masterOf {
		node := redis.NewClient(&redis.Options{Addr: m})
		info, err := node.XInfoStream(context.Background(), key).Result()
		node.Close()
		if err != nil {
			t.Fatalf("XINFO STREAM %s on %s: %v", key, m, err)
		}
		if info.EntriesAdded == 0 {
			t.Errorf("shard %s on %s carried no entry", key, m)
		}
		t.Logf("shard %s on master %s: %d entries added", key, m, info.EntriesAdded)
	}
	t.Logf("SUMMARY %s: committed %d · deliveries %d · duplicates %d · quiesced %s after the last commit",
		t.Name(), len(w.committed), r.deliveries, r.duplicates, took.Round(10*time.Millisecond))
}
