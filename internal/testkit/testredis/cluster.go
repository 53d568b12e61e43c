package testredis

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// ClusterNodeTimeout is the cluster-node-timeout of a test Cluster: how long
// a master may be silent before its replica takes over (production's
// default is 15 s; a test wants its failover in seconds).
const ClusterNodeTimeout = time.Second

// clusterMasters is how many masters a test Cluster has: the fewest Redis
// accepts.
const clusterMasters = 3

// Cluster is a private Redis Cluster of three masters, each with replicas,
// on loopback ports; it is killed, and its files deleted, when its test ends.
type Cluster struct {
	t     testing.TB
	nodes []*node
}

// StartCluster starts three masters with replicasPerMaster replicas each
// (at least 1 to kill a master and have its slots taken over), joins them
// with redis-cli --cluster create, and returns once every node sees every
// slot served and every replica is in sync. Missing redis-server or
// redis-cli fails the test.
func StartCluster(t testing.TB, replicasPerMaster int) *Cluster {
	t.Helper()
	requireTools(t, "redis-server", "redis-cli")
	c := &Cluster{t: t}
	t.Cleanup(c.kill)
	n := clusterMasters * (1 + replicasPerMaster)
	addrs := make([]string, n)
	for i := range n {
		nd := &node{port: testbin.FreePort(t)}
		nd.cmd = launch(t, t.TempDir(), dataNodeArgs(nd.port,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
			// A replica cut off for a while may still take over: the test
			// kills masters under load, not after a long partition.
			"--cluster-replica-validity-factor", "0")...)
		c.nodes = append(c.nodes, nd)
		addrs[i] = nd.addr()
	}
	for _, nd := range c.nodes {
		rdb := redis.NewClient(&redis.Options{Addr: nd.addr()})
		waitAnswers(t, rdb)
		rdb.Close()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("testredis: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitHealthy(15 * time.Second)
	return c
}

// URL is the Cluster's REDIS_URL, every node a seed.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		addrs[i] = nd.addr()
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// MasterOf is the address of the master that serves key's slot, as the
// live nodes see it.
func (c *Cluster) MasterOf(key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var lastErr error
	for _, nd := range c.nodes {
		if nd.cmd == nil {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: nd.addr()})
		addr, err := slotMaster(ctx, rdb, key)
		rdb.Close()
		if err == nil {
			return addr, nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("master of %q: %w", key, lastErr)
}

// slotMaster asks one node which master serves key's slot.
func slotMaster(ctx context.Context, rdb *redis.Client, key string) (string, error) {
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", err
	}
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("slot %d is not served", slot)
}

// KillMasterOf kills (SIGKILL) the master serving key's slot, as a crash
// would, and returns its address; one of its replicas takes over after
// ClusterNodeTimeout (see WaitFailover). With lag > 0 its replicas are
// stopped for that long before the kill, so the one promoted lacks the
// master's last writes.
func (c *Cluster) KillMasterOf(key string, lag time.Duration) string {
	c.t.Helper()
	addr, err := c.MasterOf(key)
	if err != nil {
		c.t.Fatalf("testredis: %v", err)
	}
	nd := nodeByAddr(c.nodes, addr)
	if nd == nil {
		c.t.Fatalf("testredis: the master of %q is %s, not a node of this Cluster", key, addr)
	}
	killAfterLag(c.t, nd, "", c.nodes, lag)
	return addr
}

// WaitFailover waits until key's slot is served by a master other than
// old and the Cluster is healthy again, and returns how long that took.
func (c *Cluster) WaitFailover(key, old string, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	testwait.Until(c.t, within, func() bool {
		addr, err := c.MasterOf(key)
		return err == nil && addr != old && c.healthy() == nil
	}, func() string { return fmt.Sprintf("testredis: no replica took over %q from %s", key, old) })
	return time.Since(start)
}

// waitHealthy waits until every live node reports cluster_state:ok and
// every replica's link to its master is up.
func (c *Cluster) waitHealthy(within time.Duration) {
	c.t.Helper()
	var err error
	if !testwait.Poll(within, 100*time.Millisecond, func() bool { err = c.healthy(); return err == nil }) {
		c.t.Fatalf("testredis: the Cluster is not healthy after %s: %v", within, err)
	}
}

func (c *Cluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, nd := range c.nodes {
		if nd.cmd == nil {
			continue
		}
		rdb := redis.NewClient(&redis.Options{Addr: nd.addr()})
		info, err := rdb.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("%s: cluster_state is not ok", nd.addr())
		}
		var repl string
		if err == nil {
			repl, err = rdb.Info(ctx, "replication").Result()
		}
		rdb.Close()
		if err != nil {
			return err
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("%s: replica not in sync with its master", nd.addr())
		}
	}
	return nil
}

func (c *Cluster) kill() {
	for _, nd := range c.nodes {
		kill(nd.cmd)
		nd.cmd = nil
	}
}
