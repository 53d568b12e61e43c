package flow

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Limiter enforces per-endpoint flow control in Redis, shared by every
// process that uses the same Redis and prefix. It is safe for concurrent use.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns a Limiter whose keys start with prefix (the worker passes its
// stream key, e.g. "queues:webhooks"). The prefix should not contain '{':
// Redis Cluster hashes the first {…} of a key, so a braced prefix would put
// every endpoint on one slot (still correct, no longer spread).
func New(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix}
}

// key names one of an endpoint's keys; the webhook id is the hash tag, so
// all of an endpoint's keys share a Cluster slot and one script may touch
// them together.
func (l *Limiter) key(webhookID uuid.UUID, what string) string {
	return l.prefix + ":flow:{" + webhookID.String() + "}:" + what
}

// errInvalid marks a call with arguments no limit can mean (a rate of 0, a
// burst of 0, …): a bug of the caller's, not a Redis failure.
var errInvalid = errors.New("flow: invalid argument")

// IsInvalid reports whether err is a refusal of the call's arguments rather
// than a Redis failure; a caller that fails open on Redis errors should not
// fail open on these.
func IsInvalid(err error) bool { return errors.Is(err, errInvalid) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)
}

// micros is t as microseconds since the epoch, Redis TIME's resolution.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros is the time of a script's reply, microseconds since the epoch.
func fromMicros(us int64) time.Time { return time.UnixMicro(us) }

// interval is the emission interval of perSecond in whole microseconds,
// rounded up so that slots are never closer than 1/perSecond.
func interval(perSecond float64) (int64, error) {
	if !(perSecond > 0) || math.IsInf(perSecond, 1) {
		return 0, invalid("rate %v per second, want a positive finite number", perSecond)
	}
	return max(1, int64(math.Ceil(1e6/perSecond))), nil
}
