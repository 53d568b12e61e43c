package testredis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redisurl"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// writesResumeAfter kills a master with kill, then writes to key through
// rdb (a client built from the topology's REDIS_URL) until a write
// succeeds, and returns how long after the kill that was.
func writesResumeAfter(t *testing.T, rdb redis.UniversalClient, key string, kill func()) time.Duration {
	ctx := context.Background()
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{"k", "before"}}).Err(); err != nil {
		t.Fatalf("XADD before the failover: %v", err)
	}
	kill()
	start := time.Now()
	var err error
	testwait.Until(t, 30*time.Second, func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err = rdb.XAdd(c, &redis.XAddArgs{Stream: key, Values: []string{"k", "after"}}).Err()
		return err == nil
	}, func() string { return fmt.Sprintf("writes did not resume after the failover: %v", err) })
	return time.Since(start)
}

func TestCluster_ClientFollowsAMasterFailover(t *testing.T) {
	t.Parallel()
	c := testredis.StartCluster(t, 1)
	rdb, err := redisurl.NewClient(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	const key = "queues:webhooks"
	var old string
	took := writesResumeAfter(t, rdb, key, func() { old = c.KillMasterOf(key, 0) })
	c.WaitFailover(key, old, 10*time.Second) // every node agrees on the new master
	t.Logf("Cluster: writes to %s resumed %s after its master %s was killed", key, took.Round(10*time.Millisecond), old)
}

func TestSentinels_ClientFollowsAMasterFailover(t *testing.T) {
	t.Parallel()
	s := testredis.StartSentinels(t)
	rdb, err := redisurl.NewClient(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var old string
	took := writesResumeAfter(t, rdb, "queues:webhooks", func() { old = s.KillMaster(0) })
	s.WaitFailover(old, 10*time.Second) // the other Sentinels learn of it from the leader
	t.Logf("Sentinel: writes resumed %s after the master %s was killed", took.Round(10*time.Millisecond), old)
}
