package deliver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/dberr"
	"github.com/hookrelay/hookrelay/internal/outage"
)

// RecoverKind is the River job kind of RecoverArgs.
const RecoverKind = "hookrelay.recover"

// RecoverArgs is the River job that works one recovery (StartRecovery
// inserts it with the recovery) until it is done or canceled.
type RecoverArgs struct {
	RecoveryID uuid.UUID `json:"recovery_id"`
}

// Kind implements river.JobArgs.
func (RecoverArgs) Kind() string { return RecoverKind }

// RecoveryChunk is how many deliveries one transaction of a recovery job
// makes pending, and one pipeline puts on the stream.
const RecoveryChunk = 500

// recoverRunBudget bounds one run of a recovery job: a longer recovery
// snoozes and goes on in the next run, so that no run comes near River's
// stuck-job rescue (jobs.DefaultRescueStuckJob) and a stopping process hands
// its recovery back soon.
const recoverRunBudget = 20 * time.Second

// recoverWorker works recovery jobs, a chunk at a time, in three steps that
// survive a crash between any two: (1) in one transaction, with the
// recovery's row locked, make the next chunk's deliveries pending with one
// more attempt (rearmSQL, as a replay), move the cursor past them and hold
// their ids as unpublished; commit; (2) publish the ids; (3) count them in
// done and clear unpublished. A run that finds ids unpublished publishes
// them again before it claims more. Publishing before the commit, as the
// reconciler does with deliveries that are pending already, would hand
// workers ids whose delivery they still see failed, and they would drop
// them. While Redis or Postgres is unavailable the job snoozes with backoff
// (no attempt used); the outage is logged once by its tracker.
type recoverWorker struct {
	river.WorkerDefaults[RecoverArgs]
	pool      *pgxpool.Pool
	rdb       redis.UniversalClient
	streams   Streams
	redisDown *outage.Tracker
	pgDown    *outage.Tracker
}

// Timeout bounds one run: its budget, plus a chunk that waits on locks.
func (w *recoverWorker) Timeout(*river.Job[RecoverArgs]) time.Duration {
	return recoverRunBudget + time.Minute
}

func (w *recoverWorker) Work(ctx context.Context, job *river.Job[RecoverArgs]) error {
	deadline := time.Now().Add(recoverRunBudget)
	for {
		more, err := w.step(ctx, job.Args.RecoveryID)
		var pub *publishError
		switch {
		case err != nil && ctx.Err() != nil:
			// The process is stopping (or the run timed out): hand the
			// recovery back at once, for this or another process.
			return river.JobSnooze(0)
		case errors.As(err, &pub):
			w.redisDown.Fail(pub.err)
			return river.JobSnooze(w.redisDown.Backoff())
		case dberr.Transient(err):
			w.pgDown.Fail(err)
			return river.JobSnooze(w.pgDown.Backoff())
		case err != nil:
			return fmt.Errorf("recovery %s: %w", job.Args.RecoveryID, err)
		}
		w.pgDown.OK()
		if !more {
			return nil
		}
		if time.Now().After(deadline) {
			return river.JobSnooze(0)
		}
	}
}

// publishError is a refused publish: Redis is unavailable.
type publishError struct{ err error }

func (e *publishError) Error() string { return e.err.Error() }

// step claims the next chunk (or takes the one left unpublished), publishes
// it and counts it. more is false once the recovery is over.
func (w *recoverWorker) step(ctx context.Context, id uuid.UUID) (more bool, err error) {
	webhook, ids, more, err := w.claim(ctx, id)
	if err != nil || !more {
		return false, err
	}
	if err := w.streams.PublishWebhook(ctx, w.rdb, webhook, ids...); err != nil {
		return false, &publishError{err}
	}
	w.redisDown.OK()
	if _, err := w.pool.Exec(ctx, publishedRecoveryChunkSQL, id, ids); err != nil {
		return false, fmt.Errorf("count published chunk: %w", err)
	}
	return true, nil
}

// recoveryRow is what a step reads of its locked recovery.
type recoveryRow struct {
	projectID, webhookID uuid.UUID
	state                string
	since, until         time.Time
	statuses             []string
	createdAt            time.Time
	cursorAt             time.Time
	cursorID             uuid.UUID
	unpublished          []uuid.UUID
}

// claim returns the ids to publish, all of the recovery's webhook: those left unpublished by an earlier
// step, or the next chunk, made pending in a transaction that commits before
// claim returns. When the window is exhausted it marks the recovery done,
// when its webhook is gone or disabled canceled, and returns more false.
func (w *recoverWorker) claim(ctx context.Context, id uuid.UUID) (webhook uuid.UUID, ids []uuid.UUID, more bool, err error) {
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		// Index scans for the id lookups, whatever the plan cached while the
		// table was small (see beginRecordSQL).
		if _, err := tx.Exec(ctx, loadPlanSQL); err != nil {
			return fmt.Errorf("set plan: %w", err)
		}
		var r recoveryRow
		err := tx.QueryRow(ctx, lockRecoverySQL, id).Scan(&r.projectID, &r.webhookID, &r.state, &r.since, &r.until,
			&r.statuses, &r.createdAt, &r.cursorAt, &r.cursorID, &r.unpublished)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && r.state != RecoveryRunning {
			return nil // gone, or over: nothing to do
		}
		if err != nil {
			return fmt.Errorf("lock recovery: %w", err)
		}
		webhook = r.webhookID
		if len(r.unpublished) > 0 {
			ids, more = r.unpublished, true
			return nil
		}
		ids, more, err = claimChunk(ctx, tx, id, r)
		return err
	})
	return webhook, ids, more, err
}

// candidate is a delivery of a recovery's window, by its position.
type candidate struct {
	ID        uuid.UUID
	CreatedAt time.Time
}

// claimChunk makes the next chunk of r's window pending in tx and moves the
// cursor past it, or finishes r: done when the window holds no more, and
// canceled when its webhook was deleted or disabled (the deliveries left
// stay as they are).
func claimChunk(ctx context.Context, tx pgx.Tx, id uuid.UUID, r recoveryRow) ([]uuid.UUID, bool, error) {
	rows, err := tx.Query(ctx, recoveryCandidatesSQL, r.webhookID, r.projectID, r.since, r.until,
		r.cursorAt, r.cursorID, r.statuses, r.createdAt, RecoveryChunk)
	if err != nil {
		return nil, false, fmt.Errorf("read chunk: %w", err)
	}
	chunk, err := pgx.CollectRows(rows, pgx.RowToStructByPos[candidate])
	if err != nil {
		return nil, false, fmt.Errorf("read chunk: %w", err)
	}
	if len(chunk) == 0 {
		return nil, false, finish(ctx, tx, id, RecoveryDone)
	}
	ids := make([]uuid.UUID, len(chunk))
	for i, c := range chunk {
		ids[i] = c.ID
	}
	// Deliveries first, then their webhook: the lock order of the design notes.
	rows, err = tx.Query(ctx, lockRecoveryChunkSQL, ids, r.statuses, r.createdAt)
	if err != nil {
		return nil, false, fmt.Errorf("lock chunk: %w", err)
	}
	locked, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, false, fmt.Errorf("lock chunk: %w", err)
	}
	if locked == nil {
		locked = []uuid.UUID{} // another replay or recovery took them all: an empty chunk, not NULL
	}
	var active bool
	err = tx.QueryRow(ctx, lockWebhookForRecoverySQL, r.webhookID, r.projectID).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && !active {
		return nil, false, finish(ctx, tx, id, RecoveryCanceled)
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock webhook: %w", err)
	}
	batch := &pgx.Batch{}
	for _, d := range locked {
		batch.Queue(rearmSQL, d)
	}
	last := chunk[len(chunk)-1]
	batch.Queue(claimedRecoveryChunkSQL, id, last.CreatedAt, last.ID, locked)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return nil, false, fmt.Errorf("rearm chunk: %w", err)
	}
	return locked, true, nil
}

// finish ends recovery id in state.
func finish(ctx context.Context, tx pgx.Tx, id uuid.UUID, state string) error {
	if _, err := tx.Exec(ctx, finishRecoverySQL, id, state); err != nil {
		return fmt.Errorf("finish recovery as %s: %w", state, err)
	}
	return nil
}
