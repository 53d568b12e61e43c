package flow

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// statsTTL is how long an endpoint's hold statistics outlive their last use:
// long enough to span the pauses of a busy endpoint, short enough that a
// quiet one leaves nothing behind.
const statsTTL = time.Hour

// Acquire takes one of webhookID's at most max in-flight places for holder
// (unique per request, e.g. the delivery id with its attempt) until Release
// or until lease has passed, whichever is first: a holder whose process dies
// frees its place when its lease ends. Acquiring again as a holder that
// holds a place renews its lease and succeeds even when the endpoint is full.
//
// When ok is false, retryAt says when to try again, on Redis's clock: the
// earlier of when the first lease ends (a place is free by then for sure)
// and now plus the endpoint's average hold (a place is likely free by
// then), at least a millisecond ahead. When ok is true, retryAt is when the
// lease ends.
func (l *Limiter) Acquire(ctx context.Context, webhookID uuid.UUID, max int, lease time.Duration, holder string) (ok bool, retryAt time.Time, err error) {
	if max < 1 || lease < time.Microsecond || holder == "" {
		return false, time.Time{}, fmt.Errorf("acquire an in-flight place at webhook %s: %w", webhookID,
			invalid("max %d, lease %s, holder %q: want max ≥ 1, lease ≥ 1µs and a holder", max, lease, holder))
	}
	r, err := acquireScript.Run(ctx, l.rdb, l.inflightKeys(webhookID),
		max, lease.Microseconds(), holder, statsTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("acquire an in-flight place at webhook %s: %w", webhookID, err)
	}
	return r[0] == 1, fromMicros(r[1]), nil
}

// Release gives back holder's in-flight place at webhookID; releasing a
// place not held (released already, or its lease ended) does nothing.
func (l *Limiter) Release(ctx context.Context, webhookID uuid.UUID, holder string) error {
	err := releaseScript.Run(ctx, l.rdb, l.inflightKeys(webhookID), 0, 0, holder, statsTTL.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("release in-flight place of %s at webhook %s: %w", holder, webhookID, err)
	}
	return nil
}

func (l *Limiter) inflightKeys(webhookID uuid.UUID) []string {
	return []string{l.key(webhookID, "inflight"), l.key(webhookID, "holds")}
}
