// Package jobs is hookrelay's River client: River's settings tuned for what
// hookrelay runs on it (retry jobs, maintenance), run as a service. The
// wiring assembles it once, from the workers and periodic jobs that each
// package contributes (deliver.AddWorkers, Maintenance.AddWorkers and
// Maintenance.PeriodicJobs), as River's own examples do.
package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookrelay/hookrelay/internal/service"
	"github.com/hookrelay/hookrelay/migrations"
)

// River settings tuned for what hookrelay's client carries: retry jobs are a
// single XADD each, so the limit is how fast River fetches them, not the
// work. River's defaults (100 ms fetch cooldown, 20 workers in this client)
// capped retries near 200/s per process; its stuck-job rescue (1 h) left a
// retry job held by a killed worker waiting an hour.
const (
	DefaultMaxWorkers     = 100
	DefaultFetchCooldown  = 5 * time.Millisecond
	DefaultFetchPoll      = time.Second
	DefaultJobTimeout     = time.Minute
	DefaultRescueStuckJob = 2 * time.Minute
)

// Config is what a Client runs. Zero (or negative) fields take the defaults
// above.
type Config struct {
	// Workers are the job workers (deliver.AddWorkers, maintenance).
	Workers *river.Workers
	// PeriodicJobs run on the elected leader only.
	PeriodicJobs []*river.PeriodicJob
	// FetchPollInterval is how often River looks for due jobs; it bounds how
	// late a retry runs. Small in tests.
	FetchPollInterval time.Duration
	// MaxWorkers is how many jobs run at once.
	MaxWorkers int
	// Logger receives River's own log; nil discards.
	Logger *slog.Logger
}

// Client runs hookrelay's River client as a service.Service: it works jobs
// and, when elected leader, runs the periodic jobs. A River client that stops
// on its own stops the process (service.Run).
type Client struct {
	service.Base
	river *river.Client[pgx.Tx]
}

// New builds the River client on pool, in hookrelay's schema; Start runs it.
func New(pool *pgxpool.Pool, cfg Config) (*Client, error) {
	if pool == nil || cfg.Workers == nil {
		return nil, errors.New("jobs: New needs a pool and workers")
	}
	poll := cmp.Or(max(cfg.FetchPollInterval, 0), DefaultFetchPoll)
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:               migrations.Schema,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cmp.Or(max(cfg.MaxWorkers, 0), DefaultMaxWorkers)}},
		Workers:              cfg.Workers,
		PeriodicJobs:         cfg.PeriodicJobs,
		FetchPollInterval:    poll,
		FetchCooldown:        min(poll, DefaultFetchCooldown),
		JobTimeout:           DefaultJobTimeout,
		RescueStuckJobsAfter: DefaultRescueStuckJob,
		Logger:               cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Client{river: rc}, nil
}

// River is the River client, for inserting jobs in a caller's transaction
// (the worker records a failed attempt and inserts its retry job in one).
func (c *Client) River() *river.Client[pgx.Tx] { return c.river }

// Name implements service.Service.
func (c *Client) Name() string { return "jobs" }

// Start starts working jobs. The client outlives ctx; Stop ends it.
func (c *Client) Start(ctx context.Context) error {
	return c.Base.Start(func() error {
		if err := c.river.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("start river: %w", err)
		}
		go func() {
			<-c.river.Stopped()
			c.Exit(errors.New("river client stopped"))
		}()
		return nil
	})
}

// Stop stops fetching jobs and waits for running ones until ctx ends.
func (c *Client) Stop(ctx context.Context) error {
	return c.Base.Stop(func() error {
		if err := c.river.Stop(ctx); err != nil {
			return fmt.Errorf("stop river: %w", err)
		}
		return nil
	})
}

// MustInserter returns an insert-only River client on pool, in hookrelay's
// schema: it inserts jobs in a caller's transaction (InsertTx) and works
// none, for a process without a River client of its own (the API, which
// inserts recovery jobs). It panics only if River refuses these fixed
// settings, which is a bug.
func MustInserter(pool *pgxpool.Pool) *river.Client[pgx.Tx] {
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: migrations.Schema})
	if err != nil {
		panic(fmt.Sprintf("jobs: insert-only river client: %v", err))
	}
	return rc
}
