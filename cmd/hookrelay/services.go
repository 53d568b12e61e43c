package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/config"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/httpserver"
	"github.com/hookrelay/hookrelay/internal/jobs"
	"github.com/hookrelay/hookrelay/internal/maintenance"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/service"
	"github.com/hookrelay/hookrelay/relay"
)

func sendConfig(c config.Config) httpsend.Config {
	return httpsend.Config{
		Timeout:          c.Timeout,
		AllowPrivate:     c.AllowPrivateNetworks,
		UserAgent:        c.UserAgent,
		HeaderPrefix:     c.HeaderPrefix,
		StandardWebhooks: c.StandardWebhooks,
		RetryAfterMax:    c.RetryAfterMax,
	}
}

func newRelay(d *deps, reg *prometheus.Registry) *relay.Relay {
	return relay.New(d.pool, d.rdb, relay.Config{
		Stream:       d.cfg.Stream,
		Shards:       d.cfg.StreamShards,
		BatchSize:    d.cfg.RelayBatch,
		PollInterval: d.cfg.PollInterval,
		MaxAttempts:  d.cfg.MaxAttempts,
	}, reg, d.log.With("service", "relay"))
}

// newDelivery assembles the River client (retry jobs and maintenance) and
// the stream worker that inserts its retry jobs. wake nudges an in-process
// relay.
func newDelivery(d *deps, reg *prometheus.Registry, wake func()) ([]service.Service, error) {
	c := d.cfg
	maint := maintenance.New(d.pool, d.rdb, maintenance.Config{
		Reconcile: maintenance.ReconcileConfig{Stream: c.Stream, Shards: c.StreamShards, Group: c.Group, After: c.ReconcileAfter,
			Interval: c.ReconcileInterval, ResetGrace: c.Timeout + time.Second},
		Retention: maintenance.RetentionConfig{OutboxAge: c.RetainOutbox, DeliveriesAge: c.RetainDeliveries,
			Interval: c.RetentionInterval},
	}, wake, metrics.New(reg), d.log.With("service", "maintenance"))
	jobsLog := d.log.With("service", "jobs")
	workers := river.NewWorkers()
	if err := errors.Join(
		deliver.AddWorkers(workers, d.pool, d.rdb, deliver.Streams{Base: c.Stream, N: c.StreamShards}, reg, jobsLog),
		maint.AddWorkers(workers),
	); err != nil {
		return nil, err
	}
	jc, err := jobs.New(d.pool, jobs.Config{Workers: workers, PeriodicJobs: maint.PeriodicJobs(), Logger: jobsLog})
	if err != nil {
		return nil, err
	}
	worker, err := deliver.NewWorker(d.pool, d.rdb, jc.River(), deliver.Config{
		Stream:        c.Stream,
		Shards:        c.StreamShards,
		Group:         c.Group,
		Concurrency:   c.WorkerConcurrency,
		ClaimIdle:     c.ClaimIdle,
		RetrySchedule: c.RetrySchedule,
		MaxAttempts:   c.MaxAttempts,
		Send:          sendConfig(c),
		Breaker: deliver.BreakerConfig{Failures: c.BreakerFailures, Cooldown: c.BreakerCooldown,
			MaxCooldown: c.BreakerMaxCooldown, DisableAfter: c.DisableAfter},
		// A NOGROUP may be a Redis that lost data: reconcile now, not at
		// the next periodic run.
		OnGroupMissing: maint.Trigger,
	}, reg, d.log.With("service", "worker"))
	if err != nil {
		return nil, err
	}
	// A first run at once, not when River has elected a leader (seconds
	// later): the reconciler's marker is the baseline against which a Redis
	// loss is noticed, and a loss before any marker exists goes unseen.
	maint.Trigger()
	return []service.Service{jc, worker}, nil
}

func newAPI(d *deps, reg *prometheus.Registry) *httpserver.Server {
	c := d.cfg
	log := d.log.With("service", "api")
	h := api.New(api.Config{
		Token:        c.APIToken,
		AllowPrivate: c.AllowPrivateNetworks,
		SecretGrace:  c.SecretGrace,
		EventTypes:   c.EventTypes,
		Stream:       c.Stream,
		Shards:       c.StreamShards,
		Group:        c.Group,
		Send:         sendConfig(c),
	}, d.pool, d.rdb, reg, log)
	return httpserver.New("api", c.APIAddr, h, log)
}

// withMetrics adds a /metrics server on HOOKRELAY_METRICS_ADDR, when set, to
// a process that has no API server of its own.
func withMetrics(d *deps, reg *prometheus.Registry, services ...service.Service) []service.Service {
	if d.cfg.MetricsAddr == "" {
		return services
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return append(services, httpserver.New("metrics", d.cfg.MetricsAddr, mux, d.log.With("service", "metrics")))
}

// serve runs services until ctx ends (SIGTERM/SIGINT) or one of them stops
// on its own, then stops them in reverse order within
// service.ShutdownTimeout.
func serve(ctx context.Context, d *deps, services ...service.Service) error {
	return service.Run(ctx, d.log, service.ShutdownTimeout, services...)
}

// serving turns build, which lists a process's services, into a command:
// connect, build with a fresh metrics registry, serve until SIGTERM.
func serving(build func(d *deps, reg *prometheus.Registry) ([]service.Service, error)) func(context.Context, []string) error {
	return func(ctx context.Context, _ []string) error {
		d, err := connect(ctx, true)
		if err != nil {
			return err
		}
		defer d.close()
		svcs, err := build(d, metrics.NewRegistry())
		if err != nil {
			return err
		}
		return serve(ctx, d, svcs...)
	}
}

var (
	runRelay = serving(func(d *deps, reg *prometheus.Registry) ([]service.Service, error) {
		return withMetrics(d, reg, newRelay(d, reg)), nil
	})
	runWorker = serving(func(d *deps, reg *prometheus.Registry) ([]service.Service, error) {
		svcs, err := newDelivery(d, reg, nil)
		return withMetrics(d, reg, svcs...), err
	})
	runAPI = serving(func(d *deps, reg *prometheus.Registry) ([]service.Service, error) {
		return []service.Service{newAPI(d, reg)}, nil
	})
	runAll = serving(func(d *deps, reg *prometheus.Registry) ([]service.Service, error) {
		svcs, err := pipeline(d, reg)
		return append(svcs, newAPI(d, reg)), err
	})
)

// pipeline is the relay and the delivery services in one process, as `run`
// and `demo` start them (before the API): the relay is woken in-process by
// the reconciler.
func pipeline(d *deps, reg *prometheus.Registry) ([]service.Service, error) {
	r := newRelay(d, reg)
	delivery, err := newDelivery(d, reg, r.Wake)
	if err != nil {
		return nil, err
	}
	return append([]service.Service{r}, delivery...), nil
}
