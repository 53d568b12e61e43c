package flow

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// processes returns two Limiters with the same prefix on separate clients of
// the shared Redis, as two worker processes have, and the first's client;
// the keys of ids are deleted when t ends.
func processes(t testing.TB, ids ...uuid.UUID) (a, b *Limiter, rdb *redis.Client) {
	t.Helper()
	rdb, keys := testredis.New(t)
	other, err := testredis.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, b = New(rdb, keys.Stream), New(other, keys.Stream)
	t.Cleanup(func() {
		for _, id := range ids {
			rdb.Del(context.Background(), a.key(id, "rate"), a.key(id, "inflight"), a.key(id, "holds"))
		}
		other.Close()
	})
	return a, b, rdb
}

// redisNow is Redis's clock, the one the scripts use.
func redisNow(t testing.TB, rdb redis.Cmdable) time.Time {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func TestLimiter_KeysOfOneEndpointShareAClusterSlot(t *testing.T) {
	id := uuid.MustParse("0193d6a4-4b2e-7c6a-9e4f-1a2b3c4d5e6f")
	l := New(nil, "queues:webhooks")
	want := "queues:webhooks:flow:{0193d6a4-4b2e-7c6a-9e4f-1a2b3c4d5e6f}:rate"
	if got := l.key(id, "rate"); got != want {
		t.Errorf("rate key %q, want %q", got, want)
	}
	for _, k := range []string{l.key(id, "rate"), l.key(id, "inflight"), l.key(id, "holds")} {
		// Cluster hashes what stands between the first '{' and the '}' after it.
		_, rest, _ := strings.Cut(k, "{")
		if tag, _, _ := strings.Cut(rest, "}"); tag != id.String() {
			t.Errorf("key %q: hash tag %q, want the webhook id", k, tag)
		}
	}
}

func TestLimiter_RefusesArgumentsNoLimitCanMean(t *testing.T) {
	l, _, _ := processes(t)
	ctx, id := context.Background(), uuid.New()
	for name, err := range map[string]error{
		"rate 0":   errOf(l.Reserve(ctx, id, 0, 1)),
		"rate NaN": errOf(l.Reserve(ctx, id, nanRate(), 1)),
		"burst 0":  errOf(l.Reserve(ctx, id, 10, 0)),
	} {
		if !IsInvalid(err) {
			t.Errorf("%s: got %v, want an invalid-argument error", name, err)
		}
	}
}

func errOf(_ time.Time, err error) error          { return err }
func errOf3(_ bool, _ time.Time, err error) error { return err }
func nanRate() float64                            { zero := 0.0; return zero / zero }
