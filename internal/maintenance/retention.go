// Retention prunes old rows: a River periodic job (run by the River
// leader only) that deletes published outbox rows created more than
// RetentionConfig.OutboxAge ago (in the relay's order, oldest first)
// and finished deliveries (delivered, failed or skipped) last updated more
// than RetentionConfig.DeliveriesAge ago, with their attempts (ON DELETE
// CASCADE), and bulk recoveries finished that long ago.
//
// It deletes in small batches, each its own short statement that skips rows
// other transactions hold locked, so writers are never blocked for long; it
// stops when nothing old is left or its time budget is spent, and the next
// run carries on. It never deletes an unpublished outbox row or a pending
// delivery.

package maintenance

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/metrics"
)

// Defaults applied to zero fields of RetentionConfig.
const (
	DefaultOutboxAge         = 168 * time.Hour // 7 days
	DefaultDeliveriesAge     = 720 * time.Hour // 30 days
	DefaultRetentionInterval = 10 * time.Minute
	DefaultBudget            = time.Minute
)

// RetentionConfig says what is old and how much work one run may do.
type RetentionConfig struct {
	OutboxAge     time.Duration // HOOKRELAY_RETAIN_OUTBOX: published outbox rows created longer ago than this go
	DeliveriesAge time.Duration // HOOKRELAY_RETAIN_DELIVERIES: finished deliveries idle longer than this go
	Interval      time.Duration // HOOKRELAY_RETENTION_INTERVAL between runs
	BatchSize     int           // rows per DELETE statement
	Budget        time.Duration // how long one run may keep deleting
}

func (c RetentionConfig) withDefaults() RetentionConfig {
	c.OutboxAge = cmp.Or(max(c.OutboxAge, 0), DefaultOutboxAge)
	c.DeliveriesAge = cmp.Or(max(c.DeliveriesAge, 0), DefaultDeliveriesAge)
	c.Interval = cmp.Or(max(c.Interval, 0), DefaultRetentionInterval)
	c.BatchSize = cmp.Or(max(c.BatchSize, 0), DefaultBatchSize)
	c.Budget = cmp.Or(max(c.Budget, 0), DefaultBudget)
	return c
}

// RetentionKind is the River job kind of a retention run.
const RetentionKind = "hookrelay.retention"

// RetentionArgs are the (empty) arguments of a retention run.
//
// A failed run is final: the next periodic run is the retry. Overlapping
// runs are harmless: each deletes rows the other has not locked.
type RetentionArgs struct{ oneShot }

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return RetentionKind }

// RetentionResult counts the rows one run deleted.
type RetentionResult struct {
	Outbox     int
	Deliveries int
	Attempts   int  // attempts deleted with their deliveries
	Recoveries int  // finished bulk recoveries
	Incomplete bool // the budget ran out before everything old was deleted
}

// Retention runs retention; it is a river.Worker[RetentionArgs].
type Retention struct {
	river.WorkerDefaults[RetentionArgs]

	pool *pgxpool.Pool
	cfg  RetentionConfig
	m    *metrics.Metrics
	log  *slog.Logger
}

// NewRetention returns the retention worker. Zero fields of cfg take the defaults.
func NewRetention(pool *pgxpool.Pool, cfg RetentionConfig, m *metrics.Metrics, log *slog.Logger) *Retention {
	return &Retention{pool: pool, cfg: cfg.withDefaults(), m: m, log: logger(log, "retention")}
}

// Timeout leaves the run its budget plus time to finish the last batch. It
// stays under the River client's stuck-job rescue (jobs.DefaultRescueStuckJob)
// for the default budget, so a running prune is not rescued as stuck.
func (w *Retention) Timeout(*river.Job[RetentionArgs]) time.Duration {
	return w.cfg.Budget + 30*time.Second
}

// Work runs retention once (River calls it).
func (w *Retention) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	res, err := w.Prune(ctx)
	if err != nil {
		return err
	}
	if res.Outbox > 0 || res.Deliveries > 0 || res.Recoveries > 0 {
		w.log.Info("pruned old rows", "outbox", res.Outbox, "deliveries", res.Deliveries,
			"attempts", res.Attempts, "recoveries", res.Recoveries, "incomplete", res.Incomplete)
	}
	return nil
}

// Prune deletes old rows, batch by batch, until none is left or the budget is
// spent. Ages are measured against the database clock.
func (w *Retention) Prune(ctx context.Context) (RetentionResult, error) {
	var res RetentionResult
	deadline := time.Now().Add(w.cfg.Budget)
	var err error
	res.Outbox, _, res.Incomplete, err = w.prune(ctx, deadline, "outbox", pruneOutboxSQL, w.cfg.OutboxAge)
	if err != nil || res.Incomplete {
		return res, err
	}
	res.Deliveries, res.Attempts, res.Incomplete, err = w.prune(ctx, deadline, "deliveries", pruneDeliveriesSQL, w.cfg.DeliveriesAge)
	if err != nil || res.Incomplete {
		return res, err
	}
	res.Recoveries, _, res.Incomplete, err = w.prune(ctx, deadline, "recoveries", pruneRecoveriesSQL, w.cfg.DeliveriesAge)
	return res, err
}

// prune runs one batch delete (query, which returns the rows and the
// attempts it deleted) until it deletes less than a batch or the deadline
// passes, counting the rows in metrics as it goes.
func (w *Retention) prune(ctx context.Context, deadline time.Time, table, query string, age time.Duration) (rows, attempts int, incomplete bool, err error) {
	for {
		var n, a int
		if err := w.pool.QueryRow(ctx, query, age, w.cfg.BatchSize).Scan(&n, &a); err != nil {
			return rows, attempts, false, fmt.Errorf("prune %s: %w", table, err)
		}
		rows, attempts = rows+n, attempts+a
		if w.m != nil {
			w.m.Pruned.WithLabelValues(table).Add(float64(n))
			if a > 0 {
				w.m.Pruned.WithLabelValues("delivery_attempts").Add(float64(a))
			}
		}
		if n < w.cfg.BatchSize {
			return rows, attempts, false, nil
		}
		if time.Now().After(deadline) {
			return rows, attempts, true, nil
		}
	}
}

// The retention SQL, in one place. Each statement deletes at most one batch
// ($2 rows) of rows older than the age $1. Outbox rows are taken in the
// relay's order (outbox_xid_idx), from the oldest, among the first $2 rows
// the relay's cursor has passed (rows of transactions it still follows are
// kept): a batch that finds the oldest published rows too young ends the
// run without scanning the rest of the table. Deliveries are taken through
// the partial index deliveries_terminal_idx. The attempts of the
// deleted deliveries are counted from the statement's snapshot, before the
// cascade removes them.
const (
	pruneOutboxSQL = `
WITH gone AS (
    DELETE FROM hookrelay.outbox WHERE id IN (
        SELECT first.id FROM (
            SELECT o.id, o.xid, o.created_at
            FROM hookrelay.relay_cursor c
            JOIN hookrelay.outbox o ON (o.xid, o.seq) <= (c.xid, c.seq)
            ORDER BY o.xid, o.seq
            LIMIT $2) first, hookrelay.relay_cursor c
        WHERE first.created_at < now() - $1::interval
          AND first.xid <> ALL (c.pending_xids))
    RETURNING 1)
SELECT count(*)::int, 0 FROM gone`

	pruneDeliveriesSQL = `
WITH gone AS (
    DELETE FROM hookrelay.deliveries WHERE id IN (
        SELECT id FROM hookrelay.deliveries
        WHERE status <> 'pending' AND updated_at < now() - $1::interval
        ORDER BY updated_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED)
      AND status <> 'pending'
    RETURNING id)
SELECT (SELECT count(*)::int FROM gone),
       (SELECT count(*)::int FROM hookrelay.delivery_attempts WHERE delivery_id IN (SELECT id FROM gone))`

	// A finished recovery goes with the deliveries it recovered; a running
	// one stays whatever its age.
	pruneRecoveriesSQL = `
WITH gone AS (
    DELETE FROM hookrelay.recoveries WHERE id IN (
        SELECT id FROM hookrelay.recoveries
        WHERE state <> 'running' AND finished_at < now() - $1::interval
        LIMIT $2
        FOR UPDATE SKIP LOCKED)
    RETURNING 1)
SELECT count(*)::int, 0 FROM gone`
)
