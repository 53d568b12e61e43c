package deliver

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/httpsend"
)

// Metric outcomes (metrics.Deliveries and AttemptDuration labels).
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeFailed    = "failed"
	outcomeGone      = "gone"
)

// maxErrorLen caps the error text stored on attempts and deliveries.
const maxErrorLen = 1024

// decision is what one attempt does to its delivery.
type decision struct {
	attempt   int
	status    string
	outcome   string
	next      *time.Time // when the retry is due; nil unless status is pending
	lastError *string
	gone      bool // the endpoint answered 410: deactivate the webhook
	exhausted bool // failed after the last attempt: a dead letter
}

// decide turns the result of attempt number attempt into the delivery's next
// state. current is the delivery's status when the attempt is recorded: a
// delivery that another worker already finished is never downgraded.
func (w *Worker) decide(current string, attempt, maxAttempts int, res httpsend.Result, now time.Time) decision {
	d := decision{attempt: attempt, lastError: attemptError(res)}
	switch {
	case res.Success():
		d.status, d.outcome = statusDelivered, outcomeDelivered
		return d
	case res.StatusCode == http.StatusGone:
		d.status, d.outcome, d.gone = statusFailed, outcomeGone, true
	case attempt >= maxAttempts:
		d.status, d.outcome, d.exhausted = statusFailed, outcomeFailed, true
	default:
		delay := res.RetryAfter
		if delay <= 0 {
			delay = jitter(retryDelay(w.cfg.RetrySchedule, attempt))
		}
		next := now.Add(delay)
		d.status, d.outcome, d.next = statusPending, outcomeRetry, &next
	}
	if current != statusPending {
		// Finished elsewhere meanwhile (a duplicate entry): keep that outcome.
		d.status, d.next, d.exhausted = current, nil, false
	}
	return d
}

// rowState is a delivery's state while a batch is recorded: as locked, then
// after each of the batch's attempts on it.
type rowState struct {
	status      string
	attempts    int
	maxAttempts int
	latest      int // index in the batch of the delivery's latest attempt; -1 before any
}

// recordBatch writes the attempts of batch and their deliveries' new states in
// one transaction, with the retry jobs that are due, so that Postgres never
// holds one without the others. It locks every delivery of the batch first
// (waiting at most lockTimeout for a row): attempts are numbered after what
// Postgres holds, and attempts of the same delivery within the batch are
// numbered in batch order. Due times are computed from the database's clock,
// never the worker's. It fills in found and d of each attempt and, once
// committed, updates the metrics.
//
// recheck says an earlier try at some of these attempts may have committed
// without the worker learning it (the connection broke during COMMIT):
// attempts already in delivery_attempts are then left out, so that one HTTP
// attempt is always one row.
func (w *Worker) recordBatch(ctx context.Context, batch []attempted, recheck bool) error {
	var transitions []transition
	err := pgx.BeginTxFunc(ctx, w.pool, pgx.TxOptions{BeginQuery: beginRecordSQL}, func(tx pgx.Tx) error {
		states, now, err := lockStates(ctx, tx, batch)
		if err != nil {
			return err
		}
		if recheck {
			if err := markRecorded(ctx, tx, batch); err != nil {
				return err
			}
		}
		b := &pgx.Batch{}
		var rows attemptRows
		var gone []*attempted
		var failed failedEvents
		for i := range batch {
			a := &batch[i]
			s, ok := states[a.t.ID]
			a.found = ok
			if !ok || a.recorded {
				continue // deleted meanwhile, or recorded by an earlier try
			}
			a.d = w.decide(s.status, s.attempts+1, cmp.Or(max(s.maxAttempts, 0), w.cfg.MaxAttempts), a.res, now)
			s.status, s.attempts, s.latest = a.d.status, a.d.attempt, i
			rows.add(a)
			if a.d.gone {
				gone = append(gone, a)
			}
			if err := failed.add(a); err != nil {
				return err
			}
		}
		if rows.n == 0 {
			return nil
		}
		if len(failed.data) > 0 {
			b.Queue(emitFailedSQL, failed.projects, failed.data)
		}
		// One update and at most one retry job per delivery: its latest
		// attempt's (an earlier attempt of the same batch was overtaken).
		var latest deliveryUpdates
		var retries []river.InsertManyParams
		for _, s := range states {
			if s.latest < 0 {
				continue
			}
			a := &batch[s.latest]
			latest.add(a)
			if a.d.next != nil {
				retries = append(retries, river.InsertManyParams{Args: RetryArgs{DeliveryID: a.t.ID, WebhookID: a.t.WebhookID},
					InsertOpts: &river.InsertOpts{ScheduledAt: *a.d.next}})
			}
		}
		b.Queue(updateDeliveriesSQL, latest.args()...)
		b.Queue(insertAttemptsSQL, rows.args()...)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("record %d attempts: %w", rows.n, err)
		}
		if len(retries) > 0 {
			if _, err := w.jobs.InsertManyTx(ctx, tx, retries); err != nil {
				return fmt.Errorf("schedule %d retries: %w", len(retries), err)
			}
		}
		return w.recordHealth(ctx, tx, batch, gone, &transitions)
	})
	if err != nil {
		return fmt.Errorf("record %d deliveries: %w", len(batch), err)
	}
	w.recordTxs.Add(1)
	w.observeTransitions(ctx, transitions)
	for i := range batch {
		if a := &batch[i]; a.found && !a.recorded {
			a.recorded = true
			w.observe(a.t, a.d, a.res)
		}
	}
	return nil
}

// recordHealth updates the health of the batch's endpoints and deactivates
// the webhooks that answered 410, last in the recording transaction: a
// failing endpoint's health row is one row that every recording transaction
// of its attempts updates, so it is locked for as short a time as possible
// (only the commit follows). Health rows are locked before webhooks (the
// lock order): a breaker transition may disable one, as a 410 does. The
// transitions' jobs are inserted in the same transaction.
func (w *Worker) recordHealth(ctx context.Context, tx pgx.Tx, batch []attempted, gone []*attempted, transitions *[]transition) error {
	b := &pgx.Batch{}
	if hb := health(batch); hb != nil {
		w.queueHealth(b, hb, transitions)
	}
	for _, a := range gone {
		b.Queue(deactivateWebhookSQL, a.t.WebhookID, fmt.Sprintf("endpoint answered 410 Gone at %s (delivery %s)",
			a.res.Started.UTC().Format(time.RFC3339), a.t.ID))
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record endpoint health: %w", err)
	}
	if jobs := transitionJobs(*transitions); len(jobs) > 0 {
		if _, err := w.jobs.InsertManyTx(ctx, tx, jobs); err != nil {
			return fmt.Errorf("schedule %d jobs of endpoint health: %w", len(jobs), err)
		}
	}
	return nil
}

// lockStates locks the deliveries of a batch and returns their states and
// the database's clock.
func lockStates(ctx context.Context, tx pgx.Tx, batch []attempted) (map[uuid.UUID]*rowState, time.Time, error) {
	var now time.Time
	ids := make([]pgtype.UUID, len(batch))
	for i, a := range batch {
		ids[i] = pgUUID(a.t.ID)
	}
	rows, err := tx.Query(ctx, lockDeliveriesSQL, ids)
	if err != nil {
		return nil, now, fmt.Errorf("lock deliveries: %w", err)
	}
	states := make(map[uuid.UUID]*rowState, len(batch))
	for rows.Next() {
		var id uuid.UUID
		s := &rowState{latest: -1}
		if err := rows.Scan(&id, &s.status, &s.attempts, &s.maxAttempts, &now); err != nil {
			rows.Close()
			return nil, now, fmt.Errorf("lock deliveries: %w", err)
		}
		states[id] = s
	}
	if err := rows.Err(); err != nil {
		return nil, now, fmt.Errorf("lock deliveries: %w", err)
	}
	return states, now, nil
}

// markRecorded sets recorded on the attempts of batch that delivery_attempts
// already holds (same delivery, same start time).
func markRecorded(ctx context.Context, tx pgx.Tx, batch []attempted) error {
	ids := make([]pgtype.UUID, 0, len(batch))
	started := make([]time.Time, 0, len(batch))
	for _, a := range batch {
		if !a.recorded {
			ids = append(ids, pgUUID(a.t.ID))
			started = append(started, a.res.Started)
		}
	}
	rows, err := tx.Query(ctx, recordedAttemptsSQL, ids, started)
	if err != nil {
		return fmt.Errorf("look for attempts already recorded: %w", err)
	}
	type key struct {
		id uuid.UUID
		at int64
	}
	done := map[key]bool{}
	var (
		id uuid.UUID
		at time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		done[key{id, at.UnixMicro()}] = true
		return nil
	}); err != nil {
		return fmt.Errorf("look for attempts already recorded: %w", err)
	}
	for i := range batch {
		a := &batch[i]
		if done[key{a.t.ID, a.res.Started.UnixMicro()}] {
			a.recorded, a.found = true, true
		}
	}
	return nil
}

// deliveryUpdates are the columns of updateDeliveriesSQL, one element per delivery.
type deliveryUpdates struct {
	ids               []pgtype.UUID
	attempts          []int32
	statuses          []string
	next, lastAttempt []*time.Time
	lastStatus        []*int32
	lastError         []*string
}

func (u *deliveryUpdates) add(a *attempted) {
	started := a.res.Started
	u.ids = append(u.ids, pgUUID(a.t.ID))
	u.attempts = append(u.attempts, int32(a.d.attempt))
	u.statuses = append(u.statuses, a.d.status)
	u.next = append(u.next, a.d.next)
	u.lastAttempt = append(u.lastAttempt, &started)
	u.lastStatus = append(u.lastStatus, statusCode(a.res))
	u.lastError = append(u.lastError, a.d.lastError)
}

func (u *deliveryUpdates) args() []any {
	return []any{u.ids, u.attempts, u.statuses, u.next, u.lastAttempt, u.lastStatus, u.lastError}
}

// attemptRows are the columns of insertAttemptsSQL, one element per attempt.
type attemptRows struct {
	n          int
	ids        []pgtype.UUID
	attempts   []int32
	started    []time.Time
	durationMS []float64
	status     []*int32
	class      []*string
	errs       []*string
	bodies     []string
}

func (r *attemptRows) add(a *attempted) {
	var class *string
	if a.res.ErrorClass != "" {
		class = &a.res.ErrorClass
	}
	r.n++
	r.ids = append(r.ids, pgUUID(a.t.ID))
	r.attempts = append(r.attempts, int32(a.d.attempt))
	r.started = append(r.started, a.res.Started)
	r.durationMS = append(r.durationMS, float64(a.res.Duration)/float64(time.Millisecond))
	r.status = append(r.status, statusCode(a.res))
	r.class = append(r.class, class)
	r.errs = append(r.errs, a.d.lastError)
	r.bodies = append(r.bodies, a.res.Body)
}

func (r *attemptRows) args() []any {
	return []any{r.ids, r.attempts, r.started, r.durationMS, r.status, r.class, r.errs, r.bodies}
}

// pgUUID is id as pgx encodes it in binary (uuid.UUID goes through its text
// form, which costs more than the rest of an array parameter).
func pgUUID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// statusCode is the response status of an attempt, nil when there was no response.
func statusCode(res httpsend.Result) *int32 {
	if res.StatusCode == 0 {
		return nil
	}
	c := int32(res.StatusCode)
	return &c
}

// observe updates metrics and logs what an operator should see.
func (w *Worker) observe(t *target, d decision, res httpsend.Result) {
	w.m.Deliveries.WithLabelValues(d.outcome).Inc()
	w.m.AttemptDuration.WithLabelValues(d.outcome).Observe(res.Duration.Seconds())
	switch {
	case d.next != nil:
		w.m.RetriesScheduled.Inc()
	case d.exhausted:
		w.m.DeadLetters.Inc()
		w.log.Warn("delivery failed after its last attempt", "delivery_id", t.ID, "webhook_id", t.WebhookID,
			"attempts", d.attempt, "last_error", deref(d.lastError))
	case d.gone:
		w.log.Warn("endpoint answered 410 Gone; webhook deactivated", "delivery_id", t.ID, "webhook_id", t.WebhookID)
	}
}

// attemptError is the error text of an attempt: nil on success, the status
// for an unsuccessful answer, the class and error when there was no answer.
func attemptError(res httpsend.Result) *string {
	var s string
	switch {
	case res.Success():
		return nil
	case res.StatusCode != 0:
		s = fmt.Sprintf("receiver answered %d %s", res.StatusCode, http.StatusText(res.StatusCode))
	case res.Err != nil:
		s = res.ErrorClass + ": " + res.Err.Error()
	default:
		s = res.ErrorClass
	}
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	if len(s) > maxErrorLen {
		s = strings.ToValidUTF8(s[:maxErrorLen], "")
	}
	return &s
}

// retryDelay is the delay before attempt n+1 after attempt n failed; past the
// end of the schedule its last delay repeats.
func retryDelay(schedule []time.Duration, attempt int) time.Duration {
	return schedule[min(max(attempt-1, 0), len(schedule)-1)]
}

// jitter spreads d by ±10% so that retries of many deliveries do not arrive
// at a recovering endpoint all at once.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
