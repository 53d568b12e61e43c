package flow

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Reserve reserves the next slot of webhookID's rate limit — perSecond
// requests a second, burst of them at once — and returns when that slot
// starts: Redis's time of the call when a slot is free now, else a later
// time. The reservation is made whatever at is: the caller sends when at
// comes, without calling Reserve again (deferring the delivery until then
// when it is in the future). Concurrent callers in any process get distinct
// slots, at least 1/perSecond apart beyond the burst.
//
// at is on Redis's clock (TIME in the script, never the caller's): one clock
// for every process, so slots are spaced exactly. A caller should treat an
// at within a few milliseconds of its own clock as now.
//
// A reservation is a commitment that nothing moves: PauseUntil, a change of
// perSecond or the deletion of the webhook apply to later reservations only.
// There is deliberately no cap on how far ahead a slot may be: the state is
// one small hash per endpoint however deep the backlog, and a cap would need
// the callers it refuses to come back later, all at the same moment. At the
// issue's 50k backlog and 10/s the last slot is 5,000 s ahead, which is fine:
// the cost is that a rate raised through the API speeds up only deliveries
// not yet reserved, and a 429 with Retry-After during those 5,000 s is met by
// deliveries already reserved inside the pause (they are sent at most at the
// limit's rate, get 429 in turn, and reserve again past the pause).
//
// If Redis loses the state (a flush, a restart without persistence), slots
// start again from now while deliveries reserved before keep theirs: until
// those are sent the endpoint may see up to twice its rate.
func (l *Limiter) Reserve(ctx context.Context, webhookID uuid.UUID, perSecond float64, burst int) (at time.Time, err error) {
	slots, err := l.ReserveN(ctx, webhookID, perSecond, burst, 1)
	if err != nil {
		return time.Time{}, err
	}
	return slots[0], nil
}

// ReserveN reserves the next n slots of webhookID's rate limit at once, in
// one round trip, as n calls of Reserve would one after the other: the
// worker reserves for every delivery of an endpoint in a batch it read.
func (l *Limiter) ReserveN(ctx context.Context, webhookID uuid.UUID, perSecond float64, burst, n int) ([]time.Time, error) {
	iv, err := interval(perSecond)
	if err != nil {
		return nil, fmt.Errorf("reserve a slot for webhook %s: %w", webhookID, err)
	}
	if burst < 1 || n < 1 {
		return nil, fmt.Errorf("reserve a slot for webhook %s: %w",
			webhookID, invalid("burst %d and n %d, want at least 1", burst, n))
	}
	r, err := reserveScript.Run(ctx, l.rdb, []string{l.key(webhookID, "rate")}, iv, burst, n).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("reserve %d slots for webhook %s: %w", n, webhookID, err)
	}
	slots := make([]time.Time, n)
	for i := range slots {
		slots[i] = fromMicros(r[i+1])
	}
	return slots, nil
}

// PauseUntil makes every slot of webhookID's rate limit reserved from now on
// start no earlier than until (an endpoint's 429 or 503 with Retry-After);
// then up to a burst may start at until and the rest follow at the rate. A
// pause never shortens one already set, and an until already past does
// nothing. Slots reserved before the call keep their times (see Reserve).
//
// Only rate-limited endpoints keep their pause here: an endpoint without a
// rate limit never calls Reserve, so its pause lives in Postgres.
func (l *Limiter) PauseUntil(ctx context.Context, webhookID uuid.UUID, until time.Time) error {
	if err := pauseScript.Run(ctx, l.rdb, []string{l.key(webhookID, "rate")}, micros(until)).Err(); err != nil {
		return fmt.Errorf("pause webhook %s until %s: %w", webhookID, until.Format(time.RFC3339Nano), err)
	}
	return nil
}
