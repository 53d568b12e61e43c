package testredis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

func TestServer_RestrictedUserIsRefusedDangerousCommandsEvenAfterARestart(t *testing.T) {
	t.Parallel()
	s := testredis.StartServer(t)
	url := s.AddUser("reconciler", "pass", testredis.RestrictedUser...)
	check := func() {
		t.Helper()
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		ctx := context.Background()
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: []string{"k", "v"}}).Err(); err != nil {
			t.Fatalf("XADD as the restricted user: %v", err)
		}
		if err := rdb.Info(ctx, "server").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("INFO as the restricted user: got %v, want NOPERM", err)
		}
	}
	check()
	s.Restart()
	check()
}

func TestServer_OutageRefusesConnectionsThenComesBackEmptyOnTheSamePort(t *testing.T) {
	t.Parallel()
	s := testredis.StartServer(t)
	rdb := s.Client()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	port, calls, refused := s.Port, 0, 0
	s.Outage(2*time.Second, func() {
		calls++
		if rdb.Ping(ctx).Err() != nil {
			refused++
		}
	})
	if calls == 0 || refused != calls {
		t.Errorf("during the outage %d of %d pings were refused, want all (and at least one)", refused, calls)
	}
	if s.Port != port {
		t.Errorf("port changed from %d to %d", port, s.Port)
	}
	// go-redis keeps answering with its last dial error until its
	// background dial succeeds (about a second): wait for the reconnect.
	var err error
	testwait.Until(t, 5*time.Second, func() bool {
		err = rdb.Get(ctx, "k").Err()
		return err == redis.Nil
	}, func() string {
		return fmt.Sprintf("GET after the outage: %v, want redis.Nil (the server comes back empty)", err)
	})
}
