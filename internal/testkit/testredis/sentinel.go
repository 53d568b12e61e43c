package testredis

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// SentinelDownAfter is the down-after-milliseconds of a test Sentinel setup:
// how long the master may be silent before the Sentinels fail it over
// (production's default is 30 s; a test wants its failover in seconds).
const SentinelDownAfter = time.Second

// The names and passwords of a Sentinel setup: the data nodes and the
// Sentinels each require their own password, so that a test proves the
// URL hands each side its own.
const (
	SentinelMasterName = "hookrelay-test"
	sentinelDataPass   = "data-pass"
	sentinelOwnPass    = "sentinel-pass"
	sentinelCount      = 3
	sentinelQuorum     = 2
)

// Sentinels is a private master, its replica and three Sentinels watching
// them, on loopback ports; everything is killed, and its files deleted,
// when the test ends.
type Sentinels struct {
	t         testing.TB
	data      []*node // the master first, as started
	sentinels []*node
}

// StartSentinels starts a master, a replica and three Sentinels (quorum 2),
// and returns once the replica is in sync and the Sentinels know the
// replica and one another. A missing redis-server fails the test.
func StartSentinels(t testing.TB) *Sentinels {
	t.Helper()
	requireTools(t, "redis-server")
	s := &Sentinels{t: t}
	t.Cleanup(s.kill)
	auth := []string{"--requirepass", sentinelDataPass, "--masterauth", sentinelDataPass}
	master := &node{port: testbin.FreePort(t)}
	master.cmd = launch(t, t.TempDir(), dataNodeArgs(master.port, auth...)...)
	replica := &node{port: testbin.FreePort(t)}
	replica.cmd = launch(t, t.TempDir(), dataNodeArgs(replica.port,
		append(auth, "--replicaof", "127.0.0.1", fmt.Sprint(master.port))...)...)
	s.data = []*node{master, replica}
	for _, nd := range s.data {
		rdb := redis.NewClient(&redis.Options{Addr: nd.addr(), Password: sentinelDataPass})
		waitAnswers(t, rdb)
		rdb.Close()
	}
	testwait.Until(t, 10*time.Second, func() bool { return s.replicaInSync(replica) == nil },
		func() string { return fmt.Sprintf("testredis: replica: %v", s.replicaInSync(replica)) })

	for range sentinelCount {
		nd := &node{port: testbin.FreePort(t)}
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites it: its own copy
		text := strings.Join([]string{
			fmt.Sprintf("port %d", nd.port),
			"bind 127.0.0.1",
			"requirepass " + sentinelOwnPass,
			"sentinel sentinel-pass " + sentinelOwnPass,
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", SentinelMasterName, master.port, sentinelQuorum),
			fmt.Sprintf("sentinel auth-pass %s %s", SentinelMasterName, sentinelDataPass),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", SentinelMasterName, SentinelDownAfter.Milliseconds()),
			// A failed election is tried again after twice this.
			fmt.Sprintf("sentinel failover-timeout %s 3000", SentinelMasterName),
		}, "\n") + "\n"
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		nd.cmd = launch(t, dir, conf, "--sentinel")
		s.sentinels = append(s.sentinels, nd)
	}
	var err error
	if !testwait.Poll(20*time.Second, 100*time.Millisecond, func() bool { err = s.settled(); return err == nil }) {
		t.Fatalf("testredis: the Sentinels did not settle: %v", err)
	}
	return s
}

// URL is the setup's REDIS_URL: every Sentinel, the master's name, the
// data nodes' password in the user info and the Sentinels' as a parameter.
func (s *Sentinels) URL() string {
	addrs := make([]string, len(s.sentinels))
	for i, nd := range s.sentinels {
		addrs[i] = nd.addr()
	}
	return fmt.Sprintf("redis-sentinel://:%s@%s/%s?sentinel_password=%s",
		sentinelDataPass, strings.Join(addrs, ","), SentinelMasterName, sentinelOwnPass)
}

// Master is the address of the master as a majority of the Sentinels sees it.
func (s *Sentinels) Master() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	votes := map[string]int{}
	for _, nd := range s.sentinels {
		sc := s.sentinelClient(nd)
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMasterName).Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			a := addr[0] + ":" + addr[1]
			if votes[a]++; votes[a] >= sentinelQuorum {
				return a, nil
			}
		}
	}
	return "", fmt.Errorf("no master agreed by %d Sentinels: %v", sentinelQuorum, votes)
}

// KillMaster kills (SIGKILL) the current master, as a crash would, and
// returns its address; the Sentinels promote the replica after
// SentinelDownAfter (see WaitFailover). With lag > 0 the replica is
// stopped for that long before the kill, so it lacks the master's last
// writes when it is promoted.
func (s *Sentinels) KillMaster(lag time.Duration) string {
	s.t.Helper()
	addr, err := s.Master()
	if err != nil {
		s.t.Fatalf("testredis: %v", err)
	}
	nd := nodeByAddr(s.data, addr)
	if nd == nil || nd.cmd == nil {
		s.t.Fatalf("testredis: the master %s is not a live node of this setup", addr)
	}
	killAfterLag(s.t, nd, sentinelDataPass, s.data, lag)
	return addr
}

// WaitFailover waits until the Sentinels name a master other than old and
// that master answers as one, and returns how long that took.
func (s *Sentinels) WaitFailover(old string, within time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	testwait.Until(s.t, within, func() bool {
		addr, err := s.Master()
		if err != nil || addr == old {
			return false
		}
		rdb := redis.NewClient(&redis.Options{Addr: addr, Password: sentinelDataPass})
		defer rdb.Close()
		info, err := rdb.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	}, func() string { return fmt.Sprintf("testredis: the Sentinels promoted no replica in place of %s", old) })
	return time.Since(start)
}

// settled reports why the Sentinels are not ready to fail over yet, or nil:
// each must know the replica and the other Sentinels (their hello messages
// take a few seconds) and see a quorum.
func (s *Sentinels) settled() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, nd := range s.sentinels {
		sc := s.sentinelClient(nd)
		m, err := sc.Master(ctx, SentinelMasterName).Result()
		if err == nil {
			err = sc.CkQuorum(ctx, SentinelMasterName).Err()
		}
		sc.Close()
		switch {
		case err != nil:
			return fmt.Errorf("sentinel %s: %w", nd.addr(), err)
		case m["num-slaves"] != "1" || m["num-other-sentinels"] != fmt.Sprint(sentinelCount-1):
			return fmt.Errorf("sentinel %s knows %s replicas and %s other Sentinels", nd.addr(), m["num-slaves"], m["num-other-sentinels"])
		}
	}
	return nil
}

func (s *Sentinels) replicaInSync(replica *node) error {
	rdb := redis.NewClient(&redis.Options{Addr: replica.addr(), Password: sentinelDataPass})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "replication").Result()
	if err == nil && !strings.Contains(info, "master_link_status:up") {
		err = fmt.Errorf("link to the master is not up")
	}
	return err
}

func (s *Sentinels) sentinelClient(nd *node) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: nd.addr(), Password: sentinelOwnPass})
}

func (s *Sentinels) kill() {
	for _, nd := range append(s.sentinels, s.data...) {
		kill(nd.cmd)
		nd.cmd = nil
	}
}
