// Package testredis gives tests real Redis: either a private stream key on the
// shared server (REDIS_URL), or a private redis-server process for tests that
// flush, kill, restart or stop Redis for a while, or that need an ACL user
// with fewer rights than the default one.
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/config"
	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
)

// Keys are a test's private stream and consumer group names.
type Keys struct {
	Stream string
	Group  string
}

// New returns a client of the shared Redis and keys no other test uses; the
// stream, and every key named after it (its shards, dead streams, shard
// registry), is deleted when t ends. It fails the test, naming Redis, when
// the server cannot be reached.
func New(t testing.TB) (*redis.Client, Keys) {
	t.Helper()
	rdb, err := Dial(context.Background())
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	id := randomHex(6)
	keys := Keys{Stream: "test:" + id + ":webhooks", Group: "test-" + id}
	t.Cleanup(func() {
		ctx := context.Background()
		rdb.Del(ctx, keys.Stream)
		iter := rdb.Scan(ctx, 0, keys.Stream+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	return rdb, keys
}

// Dial returns a client of the shared Redis (REDIS_URL), for examples and
// other callers without a testing.TB; the caller closes it. Its error names
// Redis when the server cannot be reached.
func Dial(ctx context.Context) (*redis.Client, error) {
	c, err := config.Load(ctx)
	if err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("Redis is required (REDIS_URL=%s): %w", c.RedisURL, err)
	}
	return rdb, nil
}

// Server is a private redis-server process (no persistence) on a free port.
type Server struct {
	t     testing.TB
	Port  int
	cmd   *exec.Cmd
	users [][]any // ACL SETUSER arguments, applied again by every Start
}

// StartServer starts a private redis-server; it is killed when t ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	requireTools(t, "redis-server")
	s := &Server{t: t, Port: testbin.FreePort(t)}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// URL is the server's redis:// address.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	s.t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Start (re)starts the server on its port, empty, and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	s.cmd = launch(s.t, s.t.TempDir(), dataNodeArgs(s.Port)...)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	defer rdb.Close()
	waitAnswers(s.t, rdb)
	for _, args := range s.users {
		if err := rdb.Do(context.Background(), args...).Err(); err != nil {
			s.t.Fatalf("testredis: %v: %v", args[:3], err)
		}
	}
}

// Kill stops the server with SIGKILL; everything it held is lost.
func (s *Server) Kill() {
	kill(s.cmd)
	s.cmd = nil
}

// Restart kills the server and starts an empty one on the same port.
func (s *Server) Restart() {
	s.Kill()
	s.Start()
}

// Stop kills the server; Start brings an empty one back on the same port.
// Between the two, clients get connection refused: an outage.
func (s *Server) Stop() { s.Kill() }

// Outage stops the server for d, calling during about once a second
// meanwhile (to observe clients; it may be nil), then starts an empty
// server on the same port and returns when it answers.
func (s *Server) Outage(d time.Duration, during func()) {
	s.t.Helper()
	s.Stop()
	end := time.After(d)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-end:
			s.Start()
			return
		case <-tick.C:
			if during != nil {
				during()
			}
		}
	}
}

// RestrictedUser is the ACL of a user that may run every command but the
// @dangerous ones (FLUSHALL, INFO, CONFIG, DEBUG, KEYS, ...), as managed
// Redis services often grant.
var RestrictedUser = []string{"~*", "&*", "+@all", "-@dangerous"}

// AddUser creates the ACL user name with password pass and the given rules
// (for example RestrictedUser), now and after every restart, and returns a
// redis:// URL that logs in as that user.
func (s *Server) AddUser(name, pass string, rules ...string) string {
	s.t.Helper()
	args := []any{"ACL", "SETUSER", name, "reset", "on", ">" + pass}
	for _, r := range rules {
		args = append(args, r)
	}
	s.users = append(s.users, args)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.Port)})
	defer rdb.Close()
	if err := rdb.Do(context.Background(), args...).Err(); err != nil {
		s.t.Fatalf("testredis: ACL SETUSER %s: %v", name, err)
	}
	return fmt.Sprintf("redis://%s:%s@127.0.0.1:%d/0", name, pass, s.Port)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
