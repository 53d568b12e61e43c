package deliver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/httpsend"
)

// Why a delivery was deferred (metrics.DeliveriesDeferred labels).
const (
	deferPaused   = "paused"
	deferRate     = "rate_limit"
	deferInFlight = "max_in_flight"
)

// maxHeldWait bounds how long a delivery waits in this process for its
// rate-limit slot (holding one of the worker's slots) before it is deferred
// through Postgres instead. A limited endpoint so holds at most about
// heldSlotsPerEndpoint of the worker's slots, whatever its backlog, so it
// never starves the others; and a fast limit (1,000/s) waits milliseconds in
// process rather than paying a Postgres write per delivery.
const (
	maxHeldWait          = time.Second
	heldSlotsPerEndpoint = 8
)

// deferral is a job whose delivery waits for a later attempt without using one.
type deferral struct {
	j       job
	webhook uuid.UUID // picks the shard its retry job publishes it to
	at      time.Time
	slotAt  *time.Time // the rate-limit slot reserved for it, kept across the wait
	reason  string
}

// regulate applies each webhook's flow control to the jobs of a loaded
// batch, shared across worker processes: a pause (a 429 or 503 with
// Retry-After, from Postgres), the rate limit (a reserved slot, from Redis)
// and the in-flight limit (a lease, from Redis). A job that may go now, or
// within a short wait, is returned to send; the others are deferred through
// Postgres to when they may go, as a retry that uses no attempt. When Redis
// fails, the job goes unlimited (see package flow).
func (w *Worker) regulate(ctx context.Context, jobs []job, targets map[uuid.UUID]*target) []job {
	w.reserve(ctx, jobs, targets)
	now := time.Now()
	send := jobs[:0:0]
	var later []deferral
	for _, j := range jobs {
		t := targets[j.id]
		if t == nil || !t.sendable() {
			send = append(send, j)
			continue
		}
		if t.PausedUntil != nil {
			later = append(later, deferral{j: j, webhook: t.WebhookID, at: t.PausedUntil.Add(spread(time.Second)), reason: deferPaused})
			continue
		}
		slotAt := t.SlotHeld
		if slotAt != nil {
			if t.RateLimit != nil && slotAt.Sub(now) > heldWait(*t.RateLimit) {
				later = append(later, deferral{j: j, webhook: t.WebhookID, at: *slotAt, slotAt: slotAt, reason: deferRate})
				continue
			}
			t.startAt = *slotAt
		}
		if t.MaxInFlight != nil {
			ok, retryAt, err := w.flow.Acquire(ctx, t.WebhookID, int(*t.MaxInFlight), w.lease(), j.id.String())
			switch {
			case err != nil:
				w.flowTrouble(err)
			case !ok:
				later = append(later, deferral{j: j, webhook: t.WebhookID, at: retryAt.Add(spread(10 * time.Millisecond)), slotAt: slotAt, reason: deferInFlight})
				continue
			default:
				t.holding = true
			}
		}
		send = append(send, j)
	}
	w.deferJobs(ctx, later)
	return send
}

// reserve reserves a rate-limit slot for every sendable, unpaused delivery
// of a rate-limited webhook in jobs that holds none, in one round trip per
// webhook (SlotHeld then holds it). When Redis fails they hold none, and go
// unlimited.
func (w *Worker) reserve(ctx context.Context, jobs []job, targets map[uuid.UUID]*target) {
	need := map[uuid.UUID][]*target{}
	var order []uuid.UUID
	for _, j := range jobs {
		t := targets[j.id]
		if t == nil || !t.sendable() || t.PausedUntil != nil || t.RateLimit == nil || t.SlotHeld != nil {
			continue
		}
		if need[t.WebhookID] == nil {
			order = append(order, t.WebhookID)
		}
		need[t.WebhookID] = append(need[t.WebhookID], t)
	}
	for _, wh := range order {
		ts := need[wh]
		slots, err := w.flow.ReserveN(ctx, wh, float64(*ts[0].RateLimit), 1, len(ts))
		if err != nil {
			w.flowTrouble(err)
			continue
		}
		for i, t := range ts {
			t.SlotHeld = &slots[i]
		}
	}
}

// heldWait is how long a delivery may wait in the worker for its slot of an
// endpoint limited to rate a second; a later slot is waited for through
// Postgres.
func heldWait(rate int32) time.Duration {
	return min(maxHeldWait, time.Duration(heldSlotsPerEndpoint/float64(rate)*float64(time.Second)))
}

// lease is how long an in-flight place is held at most: the attempt's
// timeout and a margin, after which a dead worker's place frees itself.
func (w *Worker) lease() time.Duration { return w.cfg.Send.Timeout + 5*time.Second }

// flowTrouble notes a Redis error of flow control; the delivery goes unlimited.
func (w *Worker) flowTrouble(err error) {
	w.flowTrack.Fail(fmt.Errorf("flow control (sending unlimited meanwhile): %w", err))
}

// spread is a random delay below d, so that deliveries deferred to one
// instant do not all arrive at the endpoint at once.
func spread(d time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(d))) }

// deferJobs moves the deliveries of later to their times in one transaction
// (with a retry job each, which publishes it when due) and acknowledges
// their entries. If Postgres refuses, the entries stay pending for reclaim.
func (w *Worker) deferJobs(ctx context.Context, later []deferral) {
	if len(later) == 0 {
		return
	}
	ids := make([]pgtype.UUID, len(later))
	at := make([]time.Time, len(later))
	slots := make([]*time.Time, len(later))
	retries := make([]river.InsertManyParams, len(later))
	for i, d := range later {
		ids[i], at[i], slots[i] = pgUUID(d.j.id), d.at, d.slotAt
		retries[i] = river.InsertManyParams{Args: RetryArgs{DeliveryID: d.j.id, WebhookID: d.webhook}, InsertOpts: &river.InsertOpts{ScheduledAt: d.at}}
	}
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, deferSQL, ids, at, slots); err != nil {
			return err
		}
		_, err := w.jobs.InsertManyTx(ctx, tx, retries)
		return err
	})
	var entries []entry
	for _, d := range later {
		if err == nil {
			entries = append(entries, w.withHeld(d.j)...)
			w.m.DeliveriesDeferred.WithLabelValues(d.reason).Inc()
		}
		w.finish(d.j)
	}
	w.release(len(later))
	if err != nil {
		if !w.isKilled() {
			w.log.Error("defer deliveries of limited endpoints; entries left pending for reclaim", "entries", len(later), "err", err)
		}
		return
	}
	if err := w.ack(ctx, entries...); err != nil && !w.isKilled() {
		w.log.Warn("acknowledge deferred deliveries; their entries stay pending (a second read defers them again)", "err", err)
	}
}

// waitForSlot waits until the delivery's rate-limit slot, if it has one
// ahead; it reports false if ctx ended first.
func waitForSlot(ctx context.Context, t *target) bool {
	d := time.Until(t.startAt)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// afterAttempt releases the delivery's in-flight place and, when the
// endpoint asked to wait (429 or 503 with Retry-After), pauses its rate
// limiter until then; Postgres learns of the pause when the attempt is
// recorded (hookrelay.record_health), for every webhook.
func (w *Worker) afterAttempt(ctx context.Context, t *target, res httpsend.Result) {
	if t.holding {
		if err := w.flow.Release(context.WithoutCancel(ctx), t.WebhookID, t.ID.String()); err != nil {
			w.flowTrouble(err)
		}
	}
	if until, ok := pauseOf(res); ok && t.RateLimit != nil {
		if err := w.flow.PauseUntil(ctx, t.WebhookID, until); err != nil {
			w.flowTrouble(err)
		}
	}
}

// pauseOf is until when an attempt's answer asks the whole endpoint to wait.
func pauseOf(res httpsend.Result) (time.Time, bool) {
	if (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable) && res.RetryAfter > 0 {
		return res.Started.Add(res.RetryAfter), true
	}
	return time.Time{}, false
}
