package flow

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// reserveConcurrently has each of limiters reserve n slots for id at once,
// and returns all the slots, sorted.
func reserveConcurrently(t *testing.T, id uuid.UUID, perSecond float64, burst, n int, limiters ...*Limiter) []time.Time {
	t.Helper()
	var (
		mu    sync.Mutex
		slots []time.Time
		wg    sync.WaitGroup
	)
	for _, l := range limiters {
		for range n {
			wg.Go(func() {
				at, err := l.Reserve(context.Background(), id, perSecond, burst)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				slots = append(slots, at)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.SortFunc(slots, time.Time.Compare)
	return slots
}

func TestReserve_TwoProcessesGetDistinctSlotsAnIntervalApartTheFirstAtNow(t *testing.T) {
	id := uuid.New()
	a, b, rdb := processes(t, id)
	before := redisNow(t, rdb)
	slots := reserveConcurrently(t, id, 50, 1, 40, a, b)
	after := redisNow(t, rdb)

	if len(slots) != 80 {
		t.Fatalf("%d slots, want 80", len(slots))
	}
	if slots[0].Before(before) || slots[0].After(after) {
		t.Errorf("first slot %s, want now: between %s and %s", slots[0], before, after)
	}
	for i := 1; i < len(slots); i++ {
		if gap := slots[i].Sub(slots[i-1]); gap < 20*time.Millisecond {
			t.Errorf("slots %d and %d are %s apart, want at least 1/50 s", i-1, i, gap)
		}
	}
}

func TestReserve_BurstStartsAtOnceThenFollowsTheRate(t *testing.T) {
	id := uuid.New()
	a, b, rdb := processes(t, id)
	const burst = 5
	// 1/s: the 10 calls take far less than the interval, so the slots past
	// the burst are exact multiples of it.
	before := redisNow(t, rdb)
	slots := reserveConcurrently(t, id, 1, burst, 5, a, b)
	after := redisNow(t, rdb)

	for i, at := range slots[:burst] {
		if at.Before(before) || at.After(after) {
			t.Errorf("slot %d of the burst at %s, want now: between %s and %s", i, at, before, after)
		}
	}
	for i, at := range slots[burst:] {
		if want := slots[0].Add(time.Duration(i+1) * time.Second); !at.Equal(want) {
			t.Errorf("slot %d past the burst at %s, want %s", i, at, want)
		}
	}
}

func TestReserve_EndpointsAreIndependent(t *testing.T) {
	busy, idle := uuid.New(), uuid.New()
	a, b, rdb := processes(t, busy, idle)
	reserveConcurrently(t, busy, 1, 1, 10, a, b) // busy's next slot is 20 s ahead

	before := redisNow(t, rdb)
	at, err := b.Reserve(context.Background(), idle, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if at.After(redisNow(t, rdb)) || at.Before(before) {
		t.Errorf("idle endpoint's first slot at %s, want now (%s), whatever the busy one has reserved", at, before)
	}
}

func TestReserve_StateExpiresWhenItsLastSlotIsPast(t *testing.T) {
	id := uuid.New()
	a, _, rdb := processes(t, id)
	var last time.Time
	for range 3 {
		at, err := a.Reserve(context.Background(), id, 2, 1)
		if err != nil {
			t.Fatal(err)
		}
		last = at
	}
	// The state after three slots at 2/s is the slot after the last: last + 500 ms.
	exp, err := rdb.PExpireTime(context.Background(), a.key(id, "rate")).Result()
	if err != nil {
		t.Fatal(err)
	}
	next := last.Add(500 * time.Millisecond).UnixMicro()
	if want := (next + 999) / 1000; exp.Milliseconds() != want {
		t.Errorf("rate state expires at %d ms, want %d (the first ms at which the next free slot is now)", exp.Milliseconds(), want)
	}
}

func TestPauseUntil_LaterReservationsStartNoEarlierThanUntil(t *testing.T) {
	id := uuid.New()
	a, b, rdb := processes(t, id)
	ctx := context.Background()
	until := redisNow(t, rdb).Add(30 * time.Second).Truncate(time.Microsecond)
	if err := a.PauseUntil(ctx, id, until); err != nil {
		t.Fatal(err)
	}
	// A shorter pause, and one already past, change nothing.
	if err := b.PauseUntil(ctx, id, until.Add(-20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := b.PauseUntil(ctx, id, redisNow(t, rdb).Add(-time.Second)); err != nil {
		t.Fatal(err)
	}

	slots := reserveConcurrently(t, id, 10, 2, 3, a, b)
	for i, want := range []time.Duration{0, 0, 100, 200, 300, 400} {
		if w := until.Add(want * time.Millisecond); !slots[i].Equal(w) {
			t.Errorf("slot %d after the pause at %s, want %s (burst 2 at until, then 10/s)", i, slots[i], w)
		}
	}
}

func TestPauseUntil_PushesPastSlotsAlreadyReservedFurther(t *testing.T) {
	id := uuid.New()
	a, _, rdb := processes(t, id)
	ctx := context.Background()
	reserved := reserveConcurrently(t, id, 1, 1, 10, a) // up to ~9 s ahead
	until := redisNow(t, rdb).Add(2 * time.Second).Truncate(time.Microsecond)
	if err := a.PauseUntil(ctx, id, until); err != nil {
		t.Fatal(err)
	}
	at, err := a.Reserve(ctx, id, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := reserved[len(reserved)-1].Add(time.Second); !at.Equal(want) {
		t.Errorf("slot after a pause shorter than the backlog at %s, want %s: the next after those reserved", at, want)
	}
}

func TestReserveN_ReservesConsecutiveSlotsInOneCall(t *testing.T) {
	id := uuid.New()
	a, b, _ := processes(t, id)
	slots, err := a.ReserveN(context.Background(), id, 50, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Burst 2: the first two at once, then 20 ms apart.
	if !slots[1].Equal(slots[0]) {
		t.Fatalf("slots %v: want the first two at once (burst 2)", slots)
	}
	for i := 2; i < len(slots); i++ {
		if gap := slots[i].Sub(slots[i-1]); gap != 20*time.Millisecond {
			t.Fatalf("slots %d and %d are %s apart, want 1/50 s", i-1, i, gap)
		}
	}
	next, err := b.Reserve(context.Background(), id, 50, 2)
	if err != nil {
		t.Fatal(err)
	}
	if gap := next.Sub(slots[4]); gap != 20*time.Millisecond {
		t.Fatalf("the next process's slot is %s after the batch's last, want 1/50 s", gap)
	}
}
