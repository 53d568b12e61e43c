package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/outage"
	"github.com/hookrelay/hookrelay/internal/service"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// riverSchema is where River's tables live (migrated with hookrelay's own).
const riverSchema = "hookrelay"

// RetryKind is the River job kind of RetryArgs.
const RetryKind = "hookrelay.retry"

// RetryArgs is the River job that puts a delivery back on the stream when its
// retry is due. The worker inserts it in the same transaction that records the
// failed attempt, so a scheduled retry survives any restart.
type RetryArgs struct {
	DeliveryID uuid.UUID `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (RetryArgs) Kind() string { return RetryKind }

// Hooks implements river.JobArgsWithHooks: retry jobs are inserted as
// available with their future scheduled_at, so that a producer fetches them
// as soon as they are due (River's fetch query honours scheduled_at) instead
// of waiting for the leader's scheduler, which runs only every 5 seconds.
func (RetryArgs) Hooks() []rivertype.Hook {
	return []rivertype.Hook{river.HookInsertBeginFunc(func(_ context.Context, p *rivertype.JobInsertParams) error {
		if p.State == rivertype.JobStateScheduled {
			p.State = rivertype.JobStateAvailable
		}
		return nil
	})}
}

// retryWorker publishes a due delivery id back onto the stream. While Redis
// is unavailable it snoozes the job with backoff (a snooze uses up no
// attempt and River logs it at debug level): the outage is logged once, by
// the tracker, and counted, not written once per job.
type retryWorker struct {
	river.WorkerDefaults[RetryArgs]
	rdb    redis.UniversalClient
	stream string
	track  *outage.Tracker
}

func (r *retryWorker) Work(ctx context.Context, job *river.Job[RetryArgs]) error {
	if err := stream.Publish(ctx, r.rdb, r.stream, []uuid.UUID{job.Args.DeliveryID}); err != nil {
		r.track.Fail(err)
		return river.JobSnooze(r.track.Backoff())
	}
	r.track.OK()
	return nil
}

// Timeout bounds one publish.
func (r *retryWorker) Timeout(*river.Job[RetryArgs]) time.Duration { return 30 * time.Second }

// SchedulerConfig tunes a Scheduler.
type SchedulerConfig struct {
	// Stream is where due retries are published.
	Stream string
	// FetchPollInterval is how often River looks for due jobs; it bounds how
	// late a retry runs. Default 1s (small in tests).
	FetchPollInterval time.Duration
	// MaxWorkers is how many jobs run at once. Default DefaultRiverWorkers.
	MaxWorkers int
	// Metrics, when not nil, count failed publishes.
	Metrics *metrics.Metrics
}

// River settings tuned for what hookrelay's client carries: retry jobs are a
// single XADD each, so the limit is how fast River fetches them, not the
// work. River's defaults (100 ms fetch cooldown, 20 workers in this client)
// capped retries near 200/s per process; its stuck-job rescue (1 h) left a
// retry job held by a killed worker waiting an hour.
const (
	DefaultRiverWorkers   = 100
	DefaultFetchCooldown  = 5 * time.Millisecond
	DefaultFetchPoll      = time.Second
	DefaultJobTimeout     = time.Minute
	DefaultRescueStuckJob = 2 * time.Minute
)

type schedulerOptions struct {
	register []func(*river.Workers) error
	periodic []*river.PeriodicJob
}

// SchedulerOption adds to what a Scheduler runs.
type SchedulerOption func(*schedulerOptions)

// WithJobs registers more job workers (register adds them to River's bundle)
// and periodic jobs, which River runs on its elected leader only.
func WithJobs(register func(*river.Workers) error, periodic ...*river.PeriodicJob) SchedulerOption {
	return func(o *schedulerOptions) {
		if register != nil {
			o.register = append(o.register, register)
		}
		o.periodic = append(o.periodic, periodic...)
	}
}

// Scheduler runs hookrelay's River client: it works retry jobs (and any jobs
// added with WithJobs) and, when elected leader, runs the periodic jobs.
//
// Scheduler implements service.Service.
type Scheduler struct {
	service.Base
	client *river.Client[pgx.Tx]
}

// NewScheduler builds the River client; Start runs it.
func NewScheduler(pool *pgxpool.Pool, rdb redis.UniversalClient, cfg SchedulerConfig, log *slog.Logger, opts ...SchedulerOption) (*Scheduler, error) {
	if pool == nil || rdb == nil {
		return nil, errors.New("deliver: NewScheduler needs a pool and a Redis client")
	}
	if cfg.Stream == "" {
		return nil, errors.New("deliver: SchedulerConfig.Stream is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var o schedulerOptions
	for _, opt := range opts {
		opt(&o)
	}
	var failures prometheus.Counter
	if cfg.Metrics != nil {
		failures = cfg.Metrics.DependencyErrors.WithLabelValues("redis", "publish retry")
	}
	workers := river.NewWorkers()
	track := outage.New("redis: publish retry", log, failures)
	if err := river.AddWorkerSafely(workers, &retryWorker{rdb: rdb, stream: cfg.Stream, track: track}); err != nil {
		return nil, fmt.Errorf("register retry worker: %w", err)
	}
	for _, register := range o.register {
		if err := register(workers); err != nil {
			return nil, fmt.Errorf("register job workers: %w", err)
		}
	}
	poll := cmpPositive(cfg.FetchPollInterval, DefaultFetchPoll)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:               riverSchema,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cmpPositive(cfg.MaxWorkers, DefaultRiverWorkers)}},
		Workers:              workers,
		PeriodicJobs:         o.periodic,
		FetchPollInterval:    poll,
		FetchCooldown:        min(poll, DefaultFetchCooldown),
		JobTimeout:           DefaultJobTimeout,
		RescueStuckJobsAfter: DefaultRescueStuckJob,
		Logger:               log,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Scheduler{client: client}, nil
}

// Client is the River client; give it to NewWorker so that retry jobs are
// inserted in the worker's recording transactions.
func (s *Scheduler) Client() *river.Client[pgx.Tx] { return s.client }

// Name implements service.Service.
func (s *Scheduler) Name() string { return "scheduler" }

// Start starts working jobs. The client outlives ctx; Stop ends it.
func (s *Scheduler) Start(ctx context.Context) error {
	return s.Base.Start(func() error {
		if err := s.client.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("start river: %w", err)
		}
		go func() {
			<-s.client.Stopped()
			s.Exit(errors.New("river client stopped"))
		}()
		return nil
	})
}

// Stop stops fetching jobs and waits for running ones until ctx ends.
func (s *Scheduler) Stop(ctx context.Context) error {
	return s.Base.Stop(func() error {
		if err := s.client.Stop(ctx); err != nil {
			return fmt.Errorf("stop river: %w", err)
		}
		return nil
	})
}
