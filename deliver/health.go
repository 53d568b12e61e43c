package deliver

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/httpsend"
)

// Defaults of BreakerConfig, and of HOOKRELAY_BREAKER_FAILURES,
// HOOKRELAY_BREAKER_COOLDOWN, HOOKRELAY_BREAKER_MAX_COOLDOWN and
// HOOKRELAY_DISABLE_AFTER.
const (
	// DefaultBreakerFailures: an endpoint that is down fails 20 attempts in
	// well under a second at any volume worth protecting, while one that
	// fails 10 % of its requests at random fails 20 in a row once in 10^20.
	DefaultBreakerFailures    = 20
	DefaultBreakerCooldown    = 10 * time.Second
	DefaultBreakerMaxCooldown = 10 * time.Minute
	// DefaultDisableAfter is Svix's: five days without a single success.
	DefaultDisableAfter = 5 * 24 * time.Hour
)

// BreakerConfig is the per-webhook circuit breaker and auto-disable policy
// (the state itself is in hookrelay.webhook_health, shared by every worker).
type BreakerConfig struct {
	// Failures is how many consecutive failed attempts open the breaker.
	// A 429 (the endpoint asks to slow down) and a 410 (it is gone for
	// good, and deactivated) do not count; any other unsuccessful attempt does.
	Failures int
	// Cooldown is how long the breaker stays open before a probe; each
	// failed probe doubles it, up to MaxCooldown.
	Cooldown, MaxCooldown time.Duration
	// DisableAfter: a webhook whose endpoint has failed without a single
	// success for this long is deactivated.
	DisableAfter time.Duration
}

func (c *BreakerConfig) setDefaults() {
	c.Failures = cmp.Or(max(c.Failures, 0), DefaultBreakerFailures)
	c.Cooldown = cmp.Or(max(c.Cooldown, 0), DefaultBreakerCooldown)
	c.MaxCooldown = max(cmp.Or(max(c.MaxCooldown, 0), DefaultBreakerMaxCooldown), c.Cooldown)
	c.DisableAfter = cmp.Or(max(c.DisableAfter, 0), DefaultDisableAfter)
}

// Circuit states (hookrelay.webhook_health.circuit).
const (
	circuitClosed   = "closed"
	circuitOpen     = "open"
	circuitHalfOpen = "half_open"
)

// Operational event types hookrelay emits through its own outbox. A webhook
// receives them only when it names them: "*" does not include them.
const (
	EventWebhookDisabled      = "webhook.disabled"
	EventWebhookCircuitOpened = "webhook.circuit_opened"
	EventWebhookCircuitClosed = "webhook.circuit_closed"
	EventDeliveryFailed       = "delivery.failed"
)

// OperationalEventTypes returns hookrelay's own event types, which every
// webhook may subscribe to whatever HOOKRELAY_EVENT_TYPES says.
func OperationalEventTypes() []string {
	return []string{EventWebhookDisabled, EventWebhookCircuitOpened, EventWebhookCircuitClosed, EventDeliveryFailed}
}

// breakerFailure reports whether an attempt counts against its endpoint's breaker.
func breakerFailure(res httpsend.Result) bool {
	return !res.Success() && res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusGone
}

// triage sorts out the jobs of a loaded batch whose webhook's breaker is not
// closed: the first one past the cool-down becomes the probe and is sent;
// the others are to park (see parkHeld). It returns the jobs to send.
func (w *Worker) triage(ctx context.Context, jobs []job, targets map[uuid.UUID]*target) (send, park []job) {
	var held []job
	seen := map[uuid.UUID]bool{}
	for _, j := range jobs {
		if t := targets[j.id]; t != nil && !seen[t.WebhookID] {
			seen[t.WebhookID] = true
			// For the deliveries waiting in line here.
			if line := w.shares.setOpen(t.WebhookID, t.Circuit != circuitClosed); len(line) > 0 {
				go w.parkLines(ctx, line)
			}
		}
		if t := targets[j.id]; t != nil && t.Circuit != circuitClosed && t.sendable() {
			held = append(held, j)
			continue
		}
		send = append(send, j)
	}
	probed := map[uuid.UUID]bool{}
	for _, j := range held {
		t := targets[j.id]
		if t.ProbeDue && !probed[t.WebhookID] {
			probed[t.WebhookID] = true
			if w.claimProbe(ctx, t.WebhookID) {
				send = append(send, j)
				continue
			}
		}
		park = append(park, j)
	}
	return send, park
}

// parkHeld parks jobs that hold worker slots, as triage sorted them out, and
// frees their slots. It returns the jobs whose breakers closed meanwhile, to
// send.
func (w *Worker) parkHeld(ctx context.Context, park []job, targets map[uuid.UUID]*target) []job {
	closed, err := w.park(ctx, park, targets)
	if err != nil {
		if !w.isKilled() {
			w.log.Error("park deliveries of an open circuit; entries left pending for reclaim", "entries", len(park), "err", err)
		}
		for _, j := range park {
			w.finish(j)
		}
		w.release(len(park))
		return nil
	}
	w.release(len(park) - len(closed))
	return closed
}

// claimProbe makes this worker's next attempt on webhook the breaker's
// probe, if the cool-down is over and no other worker took it.
func (w *Worker) claimProbe(ctx context.Context, webhook uuid.UUID) bool {
	lease := w.cfg.Send.Timeout + 5*time.Second
	tag, err := w.pool.Exec(ctx, claimProbeSQL, webhook, lease)
	if err != nil {
		w.log.Warn("claim a circuit probe; parking instead", "webhook_id", webhook, "err", err)
		return false
	}
	return tag.RowsAffected() == 1
}

// park parks the deliveries of jobs, whose webhooks' breakers were open when
// they were loaded, and acknowledges their entries; the caller frees the
// worker slots of the parked ones, if they hold any. Deliveries of a webhook
// whose breaker closed meanwhile are not parked: park returns their jobs, to
// send. The deliveries are locked before the health rows (the lock order),
// and the health rows are read FOR SHARE: a breaker closing concurrently
// either commits first (and its deliveries come back here, to send) or
// waits for this transaction, and then finds them parked.
func (w *Worker) park(ctx context.Context, jobs []job, targets map[uuid.UUID]*target) (closed []job, err error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	ids := make([]pgtype.UUID, len(jobs))
	var webhooks []pgtype.UUID
	for i, j := range jobs {
		ids[i] = pgUUID(j.id)
		webhooks = append(webhooks, pgUUID(targets[j.id].WebhookID))
	}
	open := map[uuid.UUID]bool{}
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, parkSQL, ids); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, openCircuitsSQL, webhooks)
		if err != nil {
			return err
		}
		var id uuid.UUID
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { open[id] = true; return nil }); err != nil {
			return err
		}
		var unpark []pgtype.UUID
		for _, j := range jobs {
			if !open[targets[j.id].WebhookID] {
				unpark = append(unpark, pgUUID(j.id))
			}
		}
		if len(unpark) > 0 {
			_, err = tx.Exec(ctx, unparkSQL, unpark)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("park %d deliveries: %w", len(jobs), err)
	}
	var entries []entry
	for _, j := range jobs {
		if !open[targets[j.id].WebhookID] {
			closed = append(closed, j)
			continue
		}
		entries = append(entries, w.withHeld(j)...)
		w.finish(j)
	}
	w.m.DeliveriesParked.Add(float64(len(jobs) - len(closed)))
	if err := w.ack(ctx, entries...); err != nil && !w.isKilled() {
		w.log.Warn("acknowledge parked deliveries; their entries stay pending (a second read parks them again)", "err", err)
	}
	return closed, nil
}

// healthBatch is the arguments of hookrelay.record_health: one element per
// webhook of a recording batch.
type healthBatch struct {
	ids                                       []pgtype.UUID
	succeeded                                 []bool
	tail                                      []int32
	firstTail, lastSuccess, lastFailed, pause []*time.Time
}

// health summarizes, per webhook, the attempts of a batch that change its
// endpoint's health: it is empty when every attempt succeeded on an endpoint
// that was not failing when its delivery was loaded, so a healthy endpoint
// costs no statement.
func health(batch []attempted) *healthBatch {
	type sum struct {
		ok                             bool
		tail                           int32
		firstTail, lastOK, last, pause *time.Time
	}
	per := map[uuid.UUID]*sum{}
	var order []uuid.UUID
	var idx []int
	for i := range batch {
		if a := &batch[i]; a.found && !a.recorded {
			idx = append(idx, i)
		}
	}
	// In the order the attempts started: failures after the last success
	// are the ones that count.
	slices.SortStableFunc(idx, func(x, y int) int { return batch[x].res.Started.Compare(batch[y].res.Started) })
	needed := false
	for _, i := range idx {
		a := &batch[i]
		s := per[a.t.WebhookID]
		if s == nil {
			s = &sum{}
			per[a.t.WebhookID] = s
			order = append(order, a.t.WebhookID)
		}
		at := a.res.Started
		if until, ok := pauseOf(a.res); ok {
			if s.pause == nil || until.After(*s.pause) {
				s.pause = &until
			}
			needed = true
		}
		switch {
		case a.res.Success():
			s.ok, s.tail, s.firstTail, s.lastOK = true, 0, nil, &at
			needed = needed || a.t.Unhealthy
		case breakerFailure(a.res):
			if s.tail == 0 {
				s.firstTail = &at
			}
			s.tail++
			s.last = &at
			needed = true
		}
	}
	if !needed {
		return nil
	}
	hb := &healthBatch{}
	for _, id := range order {
		s := per[id]
		hb.ids = append(hb.ids, pgUUID(id))
		hb.succeeded = append(hb.succeeded, s.ok)
		hb.tail = append(hb.tail, s.tail)
		hb.firstTail = append(hb.firstTail, s.firstTail)
		hb.lastSuccess = append(hb.lastSuccess, s.lastOK)
		hb.lastFailed = append(hb.lastFailed, s.last)
		hb.pause = append(hb.pause, s.pause)
	}
	return hb
}

// transition is a change of one webhook's breaker or state, returned by
// hookrelay.record_health.
type transition struct {
	WebhookID, ProjectID uuid.UUID
	Kind                 string // opened, reopened, closed, disabled
	Failures             int
	FailingSince         *time.Time
	RetryAt              *time.Time
}

// queueHealth adds the health update of a batch to b; the transitions it
// makes land in out.
func (w *Worker) queueHealth(b *pgx.Batch, hb *healthBatch, out *[]transition) {
	c := w.cfg.Breaker
	b.Queue(recordHealthSQL, hb.ids, hb.succeeded, hb.tail, hb.firstTail, hb.lastSuccess, hb.lastFailed, hb.pause,
		c.Failures, c.Cooldown, c.MaxCooldown, c.DisableAfter).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var t transition
			if err := rows.Scan(&t.WebhookID, &t.ProjectID, &t.Kind, &t.Failures, &t.FailingSince, &t.RetryAt); err != nil {
				return fmt.Errorf("scan health transition: %w", err)
			}
			*out = append(*out, t)
		}
		return rows.Err()
	})
}

// transitionJobs are the River jobs a batch's transitions call for: a probe
// when the breaker opened (for parked deliveries, should no new delivery
// come to probe), publishing the parked deliveries when it closed, and
// skipping them when the webhook was disabled.
func transitionJobs(ts []transition) []river.InsertManyParams {
	var out []river.InsertManyParams
	for _, t := range ts {
		switch t.Kind {
		case "opened", "reopened":
			at := time.Now()
			if t.RetryAt != nil {
				at = *t.RetryAt
			}
			out = append(out, river.InsertManyParams{Args: ParkedArgs{WebhookID: t.WebhookID, Action: ParkedProbe},
				InsertOpts: &river.InsertOpts{ScheduledAt: at}})
		case "closed":
			out = append(out, river.InsertManyParams{Args: ParkedArgs{WebhookID: t.WebhookID, Action: ParkedPublish}})
		case "disabled":
			out = append(out, river.InsertManyParams{Args: ParkedArgs{WebhookID: t.WebhookID, Action: ParkedSkip}})
		}
	}
	return out
}

// observeTransitions counts and logs a committed batch's transitions.
// An endpoint whose breaker opened has its line here parked.
func (w *Worker) observeTransitions(ctx context.Context, ts []transition) {
	for _, t := range ts {
		if park := w.shares.setOpen(t.WebhookID, t.Kind == "opened" || t.Kind == "reopened"); len(park) > 0 {
			go w.parkLines(ctx, park)
		}
		w.m.CircuitTransitions.WithLabelValues(t.Kind).Inc()
		w.log.Warn("endpoint health changed", "webhook_id", t.WebhookID, "transition", t.Kind,
			"consecutive_failures", t.Failures, "failing_since", t.FailingSince, "retry_at", t.RetryAt)
	}
}

// failedEvents are the delivery.failed events of a batch: one per delivery
// that failed after its last attempt, but none for deliveries of
// delivery.failed events themselves (an endpoint subscribed to them that
// fails would otherwise feed itself).
type failedEvents struct {
	projects []pgtype.UUID
	data     [][]byte
}

func (f *failedEvents) add(a *attempted) error {
	if !a.d.exhausted || a.t.EventType == EventDeliveryFailed {
		return nil
	}
	data, err := json.Marshal(map[string]any{
		"delivery": map[string]any{
			"id": a.t.ID, "event_id": a.t.EventID, "event_type": a.t.EventType,
			"attempts": a.d.attempt, "last_response_status": statusCode(a.res), "last_error": a.d.lastError,
		},
		"webhook": map[string]any{"id": a.t.WebhookID, "url": deref(a.t.URL)},
	})
	if err != nil {
		return fmt.Errorf("encode delivery.failed: %w", err)
	}
	f.projects = append(f.projects, pgUUID(a.t.ProjectID))
	f.data = append(f.data, data)
	return nil
}
