package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/hookrelay/hookrelay/internal/dberr"
)

// States of a Recovery.
const (
	RecoveryRunning  = "running"
	RecoveryDone     = "done"
	RecoveryCanceled = "canceled" // its webhook was deleted or deactivated while it ran
)

// RecoverableStatuses returns the delivery statuses a recovery re-sends, in
// the order a Recovery lists them. Each call returns a new slice.
func RecoverableStatuses() []string { return []string{statusFailed, statusSkipped} }

// Errors of StartRecovery and LoadRecovery. Compare with errors.Is.
var (
	// ErrWebhookInactive: the webhook is disabled; a recovery would only
	// mark its deliveries skipped again.
	ErrWebhookInactive = errors.New("webhook is disabled")
	// ErrEmptyWindow: since is not before until (the request's time when
	// no until was given).
	ErrEmptyWindow = errors.New("since is not before until")
	// ErrRecoveryNotFound: no such recovery of that project's webhook.
	ErrRecoveryNotFound = errors.New("recovery not found")
)

// RecoveryRequest asks to re-send a webhook's failed or skipped deliveries
// created in [Since, Until).
type RecoveryRequest struct {
	ProjectID, WebhookID uuid.UUID
	Since                time.Time
	// Until is the window's end; nil means the request's time (Postgres'
	// clock), and a later time is cut to it.
	Until *time.Time
	// Statuses are the statuses to re-send, of RecoverableStatuses(); empty
	// means all of them.
	Statuses []string
}

// Recovery is a bulk recovery and its progress. Total is how many deliveries
// the window held with a chosen status when the recovery was created; Done
// is how many have been made pending with one more attempt and put on the
// stream. Done can end below Total when some were re-sent meanwhile by a
// replay or another recovery.
type Recovery struct {
	ID         uuid.UUID
	ProjectID  uuid.UUID
	WebhookID  uuid.UUID
	Since      time.Time
	Until      time.Time
	Statuses   []string
	State      string
	Total      int
	Done       int
	CreatedAt  time.Time
	FinishedAt *time.Time
}

func scanRecovery(row pgx.Row) (Recovery, error) {
	var r Recovery
	err := row.Scan(&r.ID, &r.ProjectID, &r.WebhookID, &r.Since, &r.Until, &r.Statuses, &r.State,
		&r.Total, &r.Done, &r.CreatedAt, &r.FinishedAt)
	return r, err
}

// JobInserter inserts River jobs in a caller's transaction; a
// *river.Client[pgx.Tx] is one, an insert-only client included.
type JobInserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// StartRecovery creates, in tx, the recovery req asks for and inserts its
// job (RecoverArgs), which runs once tx commits. The same request again
// (the same webhook, since, until as given or none, and statuses) finds the
// first recovery instead, whether it is running or done, and created is
// false: nothing is sent twice. A canceled recovery does not count. It
// returns ErrWebhookNotFound when the project has no such webhook,
// ErrWebhookInactive when it is disabled and ErrEmptyWindow when the window
// is empty; Statuses must be of RecoverableStatuses() (the caller validates).
func StartRecovery(ctx context.Context, tx pgx.Tx, jobs JobInserter, req RecoveryRequest) (rec Recovery, created bool, err error) {
	statuses := canonicalStatuses(req.Statuses)
	var active bool
	err = tx.QueryRow(ctx, lockWebhookForRecoverySQL, req.WebhookID, req.ProjectID).Scan(&active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return rec, false, ErrWebhookNotFound
	case err != nil:
		return rec, false, fmt.Errorf("start recovery: lock webhook: %w", err)
	case !active:
		return rec, false, ErrWebhookInactive
	}
	find := func() (Recovery, error) {
		return scanRecovery(tx.QueryRow(ctx, findRecoverySQL, req.WebhookID, req.ProjectID, req.Since, req.Until, statuses))
	}
	if rec, err = find(); !errors.Is(err, pgx.ErrNoRows) {
		if err != nil {
			return rec, false, fmt.Errorf("start recovery: find an identical one: %w", err)
		}
		return rec, false, nil
	}
	rec, err = scanRecovery(tx.QueryRow(ctx, insertRecoverySQL, req.ProjectID, req.WebhookID, req.Since, req.Until, statuses))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// An identical request committed between the two statements; this
		// statement's snapshot is newer than the conflict, so it is seen.
		if rec, err = find(); err != nil {
			return rec, false, fmt.Errorf("start recovery: find the identical one: %w", err)
		}
		return rec, false, nil
	case dberr.IsConstraint(err, "recoveries_window"):
		return rec, false, ErrEmptyWindow
	case err != nil:
		return rec, false, fmt.Errorf("start recovery: %w", err)
	}
	if _, err := jobs.InsertTx(ctx, tx, RecoverArgs{RecoveryID: rec.ID}, nil); err != nil {
		return rec, false, fmt.Errorf("start recovery: insert job: %w", err)
	}
	return rec, true, nil
}

// canonicalStatuses returns statuses in RecoverableStatuses' order without
// repeats, or all of them when it is empty: one spelling per set, for the
// idempotence key.
func canonicalStatuses(statuses []string) []string {
	all := RecoverableStatuses()
	if len(statuses) == 0 {
		return all
	}
	out := make([]string, 0, len(all))
	for _, s := range all {
		if slices.Contains(statuses, s) {
			out = append(out, s)
		}
	}
	return out
}

// LoadRecovery reads one recovery of a project's webhook, or
// ErrRecoveryNotFound.
func LoadRecovery(ctx context.Context, db Querier, projectID, webhookID, id uuid.UUID) (Recovery, error) {
	rec, err := scanRecovery(db.QueryRow(ctx, loadRecoverySQL, id, webhookID, projectID))
	if errors.Is(err, pgx.ErrNoRows) {
		return rec, ErrRecoveryNotFound
	}
	if err != nil {
		return rec, fmt.Errorf("load recovery %s: %w", id, err)
	}
	return rec, nil
}

// ListRecoveries reads a webhook's most recent recoveries, at most limit,
// newest first.
func ListRecoveries(ctx context.Context, db Querier, projectID, webhookID uuid.UUID, limit int) ([]Recovery, error) {
	rows, err := db.Query(ctx, listRecoveriesSQL, webhookID, projectID, limit)
	if err != nil {
		return nil, fmt.Errorf("list recoveries of webhook %s: %w", webhookID, err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Recovery, error) { return scanRecovery(row) })
	if err != nil {
		return nil, fmt.Errorf("list recoveries of webhook %s: %w", webhookID, err)
	}
	return list, nil
}

// Querier is what a pool and a transaction have in common that the
// recovery readers need.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
