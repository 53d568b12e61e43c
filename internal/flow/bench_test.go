package flow

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The figures in doc.go's "Cost" come from
//
//	go test -run '^$' -bench . -count 5 ./internal/flow
//
// against the local Redis: each call is one EVALSHA round trip.

func BenchmarkRedis_Ping(b *testing.B) {
	_, _, rdb := processes(b)
	ctx := context.Background()
	for b.Loop() {
		if err := rdb.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLimiter_Reserve(b *testing.B) {
	id := uuid.New()
	l, _, _ := processes(b, id)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Reserve(ctx, id, 1e6, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Reserve(ctx, id, 1e6, 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkLimiter_Acquire(b *testing.B) {
	id := uuid.New()
	l, _, _ := processes(b, id)
	ctx := context.Background()
	var n atomic.Int64
	cycle := func() error {
		holder := fmt.Sprint("h", n.Add(1))
		if _, _, err := l.Acquire(ctx, id, 1<<20, time.Minute, holder); err != nil {
			return err
		}
		return l.Release(ctx, id, holder)
	}
	b.Run("acquire+release", func(b *testing.B) {
		for b.Loop() {
			if err := cycle(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("acquire+release/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := cycle(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	full := uuid.New()
	b.Cleanup(func() { l.rdb.Del(ctx, l.key(full, "inflight"), l.key(full, "holds")) })
	if _, _, err := l.Acquire(ctx, full, 1, time.Hour, "holder"); err != nil {
		b.Fatal(err)
	}
	b.Run("refused", func(b *testing.B) {
		for b.Loop() {
			if ok, _, err := l.Acquire(ctx, full, 1, time.Minute, "waiting"); err != nil || ok {
				b.Fatal(ok, err)
			}
		}
	})
}
