package flow

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

func TestAcquire_HoldersAcrossTwoProcessesNeverExceedMax(t *testing.T) {
	id := uuid.New()
	a, b, rdb := processes(t, id)
	const max, workers, rounds = 3, 12, 40
	var (
		held, peak, taken atomic.Int64
		wg                sync.WaitGroup
	)
	for w := range workers {
		l := a
		if w%2 == 1 {
			l = b
		}
		wg.Go(func() {
			ctx := context.Background()
			for r := range rounds {
				holder := fmt.Sprintf("w%d-r%d", w, r)
				ok, _, err := l.Acquire(ctx, id, max, time.Minute, holder)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					continue
				}
				taken.Add(1)
				// Counted between the grant and the release: while Redis still
				// counts the place as held.
				n := held.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				// The holder's work: a round trip that also reads Redis's count.
				if c, err := rdb.ZCard(ctx, a.key(id, "inflight")).Result(); err != nil || c > max {
					t.Errorf("Redis counts %d holders (%v), want at most %d", c, err, max)
				}
				held.Add(-1)
				if err := l.Release(ctx, id, holder); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Errorf("%d places held at once, want at most %d", p, max)
	}
	if taken.Load() == 0 {
		t.Error("no place was ever granted")
	}
	t.Logf("%d of %d acquisitions granted, at most %d held at once", taken.Load(), workers*rounds, peak.Load())
}

func TestRelease_FreesThePlaceForAnotherProcess(t *testing.T) {
	id := uuid.New()
	a, b, _ := processes(t, id)
	ctx := context.Background()
	mustAcquire(t, a, id, 1, time.Minute, "first", true)
	mustAcquire(t, b, id, 1, time.Minute, "second", false)
	if err := a.Release(ctx, id, "first"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, id, "first"); err != nil {
		t.Fatalf("releasing twice: %v, want nothing", err)
	}
	mustAcquire(t, b, id, 1, time.Minute, "second", true)
}

func TestAcquire_AgainAsTheSameHolderRenewsItsLeaseWhenFull(t *testing.T) {
	id := uuid.New()
	a, _, _ := processes(t, id)
	first := mustAcquire(t, a, id, 1, time.Minute, "h", true)
	renewed := mustAcquire(t, a, id, 1, 2*time.Minute, "h", true)
	if renewed.Sub(first) < time.Minute {
		t.Errorf("renewed lease ends at %s, want about a minute after the first's %s", renewed, first)
	}
}

func TestAcquire_ALeaseThatEndsFreesThePlace(t *testing.T) {
	id := uuid.New()
	a, b, _ := processes(t, id)
	// The holder "dies": it never releases.
	leaseEnd := mustAcquire(t, a, id, 1, 300*time.Millisecond, "dead", true)
	retryAt := mustAcquire(t, b, id, 1, time.Minute, "next", false)
	if !retryAt.Equal(leaseEnd) {
		t.Errorf("refused with retry at %s, want the dead holder's lease end %s", retryAt, leaseEnd)
	}
	var granted time.Time
	testwait.For(t, 5*time.Second, "the dead holder's place", func() bool {
		ok, at, err := b.Acquire(context.Background(), id, 1, time.Minute, "next")
		if err != nil {
			t.Fatal(err)
		}
		granted = at.Add(-time.Minute) // Redis's time of the grant
		return ok
	})
	if granted.Before(leaseEnd) {
		t.Errorf("place granted at %s, before the dead holder's lease ended at %s", granted, leaseEnd)
	}
}

func TestAcquire_RefusedAfterReleasesSaysToRetryAfterTheAverageHold(t *testing.T) {
	id := uuid.New()
	a, b, rdb := processes(t, id)
	ctx := context.Background()
	for i := range 3 {
		holder := fmt.Sprint("quick", i)
		mustAcquire(t, a, id, 1, time.Hour, holder, true)
		if err := a.Release(ctx, id, holder); err != nil {
			t.Fatal(err)
		}
	}
	mustAcquire(t, a, id, 1, time.Hour, "busy", true)
	before := redisNow(t, rdb)
	retryAt := mustAcquire(t, b, id, 1, time.Hour, "waiting", false)
	// The quick holders held their place for well under a second: the hint
	// is now plus that, not the busy holder's lease end an hour away.
	if retryAt.Before(before.Add(time.Millisecond)) || retryAt.After(before.Add(time.Second)) {
		t.Errorf("retry at %s, want between 1 ms and 1 s after %s (the average hold)", retryAt, before)
	}
}

func TestAcquire_RefusesArgumentsNoLimitCanMean(t *testing.T) {
	l, _, _ := processes(t)
	ctx, id := context.Background(), uuid.New()
	for name, call := range map[string]func() error{
		"max 0":   func() error { _, _, err := l.Acquire(ctx, id, 0, time.Second, "h"); return err },
		"lease 0": func() error { _, _, err := l.Acquire(ctx, id, 1, 0, "h"); return err },
		"holder":  func() error { _, _, err := l.Acquire(ctx, id, 1, time.Second, ""); return err },
	} {
		if err := call(); !IsInvalid(err) {
			t.Errorf("%s: got %v, want an invalid-argument error", name, err)
		}
	}
}

// mustAcquire acquires and checks the outcome, returning the lease end (when
// granted) or when to retry (when refused).
func mustAcquire(t *testing.T, l *Limiter, id uuid.UUID, max int, lease time.Duration, holder string, want bool) time.Time {
	t.Helper()
	ok, at, err := l.Acquire(context.Background(), id, max, lease, holder)
	if err != nil {
		t.Fatal(err)
	}
	if ok != want {
		t.Fatalf("Acquire(max %d) as %s: ok %v, want %v", max, holder, ok, want)
	}
	return at
}
