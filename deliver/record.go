package deliver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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

// record writes the attempt and the delivery's new state in one transaction,
// with the retry job when one is due, so that Postgres never holds one without
// the others.
func (w *Worker) record(ctx context.Context, t *target, res httpsend.Result) error {
	var d decision
	var found bool
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		var current string
		var attempts, maxAttempts int
		err := tx.QueryRow(ctx, lockDelivery, t.ID).Scan(&current, &attempts, &maxAttempts)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // deleted meanwhile: nothing left to record against
		}
		if err != nil {
			return fmt.Errorf("lock delivery: %w", err)
		}
		found = true
		d = w.decide(current, attempts+1, cmpPositive(maxAttempts, w.cfg.MaxAttempts), res, time.Now())

		var status *int
		if res.StatusCode != 0 {
			status = &res.StatusCode
		}
		var class *string
		if res.ErrorClass != "" {
			class = &res.ErrorClass
		}
		b := &pgx.Batch{}
		b.Queue(updateDelivery, t.ID, d.attempt, d.status, d.next, res.Started, status, d.lastError)
		b.Queue(insertAttempt, t.ID, d.attempt, res.Started, float64(res.Duration)/float64(time.Millisecond),
			status, class, d.lastError, res.Body)
		if d.gone {
			b.Queue(deactivateWebhook, t.WebhookID,
				fmt.Sprintf("endpoint answered 410 Gone at %s (delivery %s)", res.Started.UTC().Format(time.RFC3339), t.ID))
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("record attempt %d: %w", d.attempt, err)
		}
		if d.next != nil {
			if _, err := w.jobs.InsertTx(ctx, tx, RetryArgs{DeliveryID: t.ID},
				&river.InsertOpts{ScheduledAt: *d.next}); err != nil {
				return fmt.Errorf("schedule retry: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record delivery %s: %w", t.ID, err)
	}
	if !found {
		return nil
	}
	w.observe(t, d, res)
	return nil
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
