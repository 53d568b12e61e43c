package testredis

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// requireTools fails the test, naming what is missing, unless every tool is
// on PATH: a topology test that cannot run must say so, never skip.
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("testredis: %s required on PATH for this test (Redis's server and CLI packages)", strings.Join(missing, " and "))
	}
}

// dataNodeArgs are the arguments of a data node on port: loopback only, no
// persistence (a killed node loses everything, which is the point).
func dataNodeArgs(port int, more ...string) []string {
	return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, more...)
}

// launch starts redis-server with args, its working files and log in dir.
// The caller kills it (kill) and waits for it to answer (waitAnswers).
func launch(t testing.TB, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("redis-server", append(args, "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testredis: start redis-server %v: %v", args, err)
	}
	return cmd
}

// kill stops a process launched by launch with SIGKILL (nil: nothing).
func kill(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// waitAnswers waits until rdb's server answers PING.
func waitAnswers(t testing.TB, rdb *redis.Client) {
	t.Helper()
	testwait.Until(t, 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil },
		func() string { return fmt.Sprintf("testredis: redis-server at %s did not answer", rdb.Options().Addr) })
}

// node is one redis-server process of a Cluster or a Sentinel setup.
type node struct {
	port int
	cmd  *exec.Cmd
}

func (n *node) addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// nodeByAddr is the node of nodes listening at addr, or nil.
func nodeByAddr(nodes []*node, addr string) *node {
	for _, n := range nodes {
		if n.addr() == addr {
			return n
		}
	}
	return nil
}

// killAfterLag kills master (SIGKILL) after stopping its replicas
// (SIGSTOP) for lag, then lets them go on: the replica promoted next lacks
// the master's writes of that while, as an asynchronous replica that fell
// behind would. With lag 0 it just kills the master.
func killAfterLag(t testing.TB, master *node, password string, all []*node, lag time.Duration) {
	t.Helper()
	var stopped []*node
	if lag > 0 {
		rdb := redis.NewClient(&redis.Options{Addr: master.addr(), Password: password})
		info, err := rdb.Info(context.Background(), "replication").Result()
		rdb.Close()
		if err != nil {
			t.Fatalf("testredis: replicas of %s: %v", master.addr(), err)
		}
		for _, line := range strings.Split(info, "\n") {
			// slave0:ip=127.0.0.1,port=41234,state=online,offset=...,lag=0
			_, rest, ok := strings.Cut(line, ",port=")
			port, _, _ := strings.Cut(rest, ",")
			if r := nodeByAddr(all, "127.0.0.1:"+port); ok && r != nil && r.cmd != nil {
				_ = r.cmd.Process.Signal(syscall.SIGSTOP)
				stopped = append(stopped, r)
			}
		}
		if len(stopped) == 0 {
			t.Fatalf("testredis: %s has no replica to hold back", master.addr())
		}
		time.Sleep(lag)
	}
	kill(master.cmd)
	master.cmd = nil
	for _, r := range stopped {
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
	}
}
