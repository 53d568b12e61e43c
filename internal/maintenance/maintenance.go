// Package maintenance is hookrelay's periodic upkeep, run as River periodic
// jobs on the elected leader only: the reconciler (Postgres, the source of
// truth, wins over Redis, the fast path that may lose data) and retention
// (old rows are pruned). A file per job; this one holds what they share.
//
// The wiring builds one Maintenance and contributes its workers and periodic
// jobs to the process's River client (package jobs).
package maintenance

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/metrics"
)

// DefaultBatchSize is how many rows one statement of a job touches.
const DefaultBatchSize = 1000

// Config configures both jobs; zero fields take their defaults.
type Config struct {
	Reconcile ReconcileConfig
	Retention RetentionConfig
}

// Maintenance is the reconciler and retention, ready to be registered on a
// River client.
type Maintenance struct {
	Reconciler *Reconciler
	Retention  *Retention
}

// New returns both jobs. wake nudges a relay running in this process, if any
// (it may be nil). m and log may be nil (off).
func New(pool *pgxpool.Pool, rdb redis.UniversalClient, cfg Config, wake func(), m *metrics.Metrics, log *slog.Logger) *Maintenance {
	return &Maintenance{
		Reconciler: NewReconciler(pool, rdb, cfg.Reconcile, wake, m, log),
		Retention:  NewRetention(pool, cfg.Retention, m, log),
	}
}

// AddWorkers registers both jobs' workers on workers.
func (m *Maintenance) AddWorkers(workers *river.Workers) error {
	return errors.Join(
		addWorker(workers, m.Reconciler),
		addWorker(workers, m.Retention),
	)
}

// PeriodicJobs schedules each job every its configured interval, and once as
// soon as a River leader is elected.
func (m *Maintenance) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		periodic(ReconcileArgs{}, m.Reconciler.cfg.Interval),
		periodic(RetentionArgs{}, m.Retention.cfg.Interval),
	}
}

// Trigger asks for a reconciler run now (see Reconciler.Trigger).
func (m *Maintenance) Trigger() { m.Reconciler.Trigger() }

func addWorker[T river.JobArgs](workers *river.Workers, w river.Worker[T]) error {
	if err := river.AddWorkerSafely(workers, w); err != nil {
		var args T
		return fmt.Errorf("register %s worker: %w", args.Kind(), err)
	}
	return nil
}

func periodic(args river.JobArgs, every time.Duration) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return args, nil },
		&river.PeriodicJobOpts{ID: args.Kind(), RunOnStart: true})
}

// oneShot makes a failed run final: the next periodic run is its retry.
type oneShot struct{}

// InsertOpts implements river.JobArgsWithInsertOpts.
func (oneShot) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 1} }

// logger is log named after component, or a discarding one when log is nil.
func logger(log *slog.Logger, component string) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log.With("component", component)
}
