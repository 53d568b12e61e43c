// Package bench measures hookrelay's pipeline on the machine it runs on:
// emission overhead, relay drain, delivery throughput, end-to-end latency, a
// River-only baseline (optionally swept over its settings), the whole
// pipeline against River's, the worker's memory, and flow control on the hot
// path (a dead endpoint next to a healthy one; a rate-limited backlog next
// to an unlimited flow), side by side in one run.
//
// Every run works in a database of its own (Config.Database, dropped and
// created from scratch on the server of Config.DatabaseURL, migrated with
// migrations.Apply) and on Redis keys of its own ("bench:<random>"), so it
// never touches an application's data. Webhooks are delivered to a tuned
// net/http receiver on loopback in the same process.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/relay"
)

// Scenario names, in the order All runs them.
const (
	ScenarioEmit     = "emit"
	ScenarioDrain    = "drain"
	ScenarioDeliver  = "deliver"
	ScenarioLatency  = "latency"
	ScenarioRiver    = "river"
	ScenarioPipeline = "pipeline"
	ScenarioMemory   = "memory"
	// Issue 13's flow control on the hot path.
	ScenarioDeadEndpoint = "dead-endpoint"
	ScenarioFairness     = "fairness"
)

// All lists every scenario in run order. The pipeline runs after river so
// that its River baseline uses the settings a River sweep chose.
var All = []string{ScenarioEmit, ScenarioDrain, ScenarioDeliver, ScenarioLatency, ScenarioRiver, ScenarioPipeline, ScenarioMemory,
	ScenarioDeadEndpoint, ScenarioFairness}

// DefaultDatabase is the database a run creates (and drops) unless told
// otherwise. Every bench database name must start with it.
const DefaultDatabase = "hookrelay_bench"

// Sizes are the knobs of the scenarios. Smoke and Full are the two presets.
type Sizes struct {
	Writers         int           // latency, river: concurrent writers of the paced emission
	EmitWriters     []int         // emit: the writer counts to measure, each in turn
	EmitDuration    time.Duration // emit: how long each variant runs per round
	EmitRounds      int           // emit: rounds over all variants; the median round counts
	DrainEvents     int           // drain: backlog of events, one matching webhook each
	RelayBatch      int           // drain, latency: events per relay claim
	Deliveries      int           // deliver, river: deliveries to send
	Concurrency     int           // deliver, latency, river, memory: deliveries in flight
	PoolSize        int           // Postgres connections of the worker (and of River's client)
	Rate            int           // latency, river: events emitted per second
	LatencyDuration time.Duration // latency, river: how long events are emitted
	MemoryPending   int           // memory: deliveries pending when the worker starts
	MemoryDuration  time.Duration // memory: longest the worker runs (it stops early once drained)
	// pipeline: the writer counts to run the whole pipeline at, each in
	// turn, and how long the writers commit at each.
	PipelineWriters  []int
	PipelineDuration time.Duration
	// dead-endpoint, fairness: how long each latency phase emits (at Rate),
	// and how many times each pair of phases (A then B; without then with
	// the backlog) runs, alternating, so that the machine's noise shows.
	FlowDuration time.Duration
	FlowRounds   int
	// fairness: deliveries of the rate-limited endpoint on the stream ahead
	// of the unlimited endpoint's flow.
	FairBacklog int
	// The River baseline's settings. It runs tuned, not at River's default
	// fetch settings (100 ms cooldown, 1 s poll, which cap a client near
	// workers×10 jobs/s): hookrelay is compared with the best plain
	// alternative, always.
	RiverMaxWorkers    int
	RiverFetchCooldown time.Duration
	RiverFetchPoll     time.Duration
	// RiverSweep first runs the River worker stage briefly (RiverSweepJobs
	// jobs) at every MaxWorkers × FetchCooldown of the grid below and keeps
	// the fastest for every River figure of the run (the fetch poll stays).
	RiverSweep           bool
	RiverSweepJobs       int
	RiverSweepMaxWorkers []int
	RiverSweepCooldowns  []time.Duration
}

// The tuned River baseline of both presets: 200 workers, a 5 ms fetch
// cooldown and a 50 ms fetch poll, the configuration the project's
// performance goals are stated against ("River, tuned" in BENCHMARKS.md).
const (
	RiverTunedMaxWorkers    = 200
	RiverTunedFetchCooldown = 5 * time.Millisecond
	RiverTunedFetchPoll     = 50 * time.Millisecond
)

// The River sweep's default grid.
var (
	RiverSweepMaxWorkers = []int{50, 100, 200, 400}
	RiverSweepCooldowns  = []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}
)

// Smoke is the tiny preset: every scenario in seconds. Both presets run
// hookrelay at its defaults (relay batch, worker concurrency).
func Smoke() Sizes {
	return Sizes{
		Writers: 8, EmitWriters: []int{8}, EmitDuration: 500 * time.Millisecond, EmitRounds: 1,
		DrainEvents: 2000, RelayBatch: relay.DefaultBatchSize,
		Deliveries: 500, Concurrency: deliver.DefaultConcurrency, PoolSize: 16,
		Rate: 200, LatencyDuration: 1500 * time.Millisecond,
		MemoryPending: 1000, MemoryDuration: 5 * time.Second,
		PipelineWriters: []int{8}, PipelineDuration: 2 * time.Second,
		FlowDuration: time.Second, FlowRounds: 1, FairBacklog: 300,
		RiverMaxWorkers: RiverTunedMaxWorkers, RiverFetchCooldown: RiverTunedFetchCooldown, RiverFetchPoll: RiverTunedFetchPoll,
		RiverSweepJobs: 1000, RiverSweepMaxWorkers: RiverSweepMaxWorkers, RiverSweepCooldowns: RiverSweepCooldowns,
	}
}

// Full is the preset of issue 6 (minutes of work; a quiet machine wanted).
func Full() Sizes {
	return Sizes{
		Writers: 8, EmitWriters: []int{8, 32}, EmitDuration: 10 * time.Second, EmitRounds: 3,
		DrainEvents: 1_000_000, RelayBatch: relay.DefaultBatchSize,
		Deliveries: 100_000, Concurrency: deliver.DefaultConcurrency, PoolSize: 16,
		Rate: 1000, LatencyDuration: 30 * time.Second,
		MemoryPending: 1_000_000, MemoryDuration: 60 * time.Second,
		PipelineWriters: []int{8, 32}, PipelineDuration: 15 * time.Second,
		FlowDuration: 10 * time.Second, FlowRounds: 2, FairBacklog: 50_000,
		RiverMaxWorkers: RiverTunedMaxWorkers, RiverFetchCooldown: RiverTunedFetchCooldown, RiverFetchPoll: RiverTunedFetchPoll,
		RiverSweep: true, RiverSweepJobs: 10_000, RiverSweepMaxWorkers: RiverSweepMaxWorkers, RiverSweepCooldowns: RiverSweepCooldowns,
	}
}

// Config says where a run works and how big it is.
type Config struct {
	// DatabaseURL names the Postgres server; only Database is created on it.
	DatabaseURL string
	// RedisURL names the Redis server; only "bench:<random>" keys are used.
	RedisURL string
	// Database is the bench's own database, dropped and recreated; it must
	// start with DefaultDatabase. Default DefaultDatabase.
	Database string
	// Keep leaves the database in place after the run (for inspection).
	Keep bool
	// Binary, when set, is a hookrelay binary: the memory scenario runs
	// `Binary worker` as a child process and reads its peak RSS, and the
	// pipeline scenario runs `Binary relay` and `Binary worker` as children.
	// Empty: they run in this process (fit for smoke runs only).
	Binary string
	Sizes  Sizes
	// Log receives progress lines; nil discards them.
	Log *slog.Logger
}

// env is what every scenario works with.
type env struct {
	cfg     Config
	log     *slog.Logger
	dbURL   string        // URL of the bench database
	pool    *pgxpool.Pool // general-purpose pool on the bench database
	rdb     *redis.Client
	prefix  string // Redis key prefix of this run
	nstream int    // streams handed out so far
	report  *Report
	// river is the River baseline's settings: the tuned ones of Sizes, or
	// the sweep's winner once it ran (riverSwept).
	river      riverSettings
	riverSwept bool
}

// Run sets up the bench database and runs the named scenarios (nil or
// {"all"}: all of them) in the order of All, returning the figures. A
// scenario that fails ends the run with its error and the figures so far.
func Run(ctx context.Context, cfg Config, scenarios []string) (*Report, error) {
	todo, err := selectScenarios(scenarios)
	if err != nil {
		return nil, err
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if !strings.HasPrefix(cfg.Database, DefaultDatabase) {
		return nil, fmt.Errorf("bench: database %q must start with %q (it is dropped and recreated)", cfg.Database, DefaultDatabase)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Sizes.validate(); err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, log: cfg.Log, prefix: "bench:" + randomHex(6), river: riverSettings{
		MaxWorkers: cfg.Sizes.RiverMaxWorkers, FetchCooldown: cfg.Sizes.RiverFetchCooldown, FetchPoll: cfg.Sizes.RiverFetchPoll}}
	e.report = &Report{Started: time.Now().UTC(), Sizes: cfg.Sizes, Scenarios: todo}
	cleanup, err := e.setup(ctx)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	e.report.Machine = e.machine(ctx)

	runners := map[string]func(context.Context) error{
		ScenarioEmit: e.runEmit, ScenarioDrain: e.runDrain, ScenarioDeliver: e.runDeliver,
		ScenarioLatency: e.runLatency, ScenarioRiver: e.runRiver, ScenarioPipeline: e.runPipeline,
		ScenarioMemory: e.runMemory, ScenarioDeadEndpoint: e.runDeadEndpoint, ScenarioFairness: e.runFairness,
	}
	for _, s := range todo {
		e.log.Info("bench: scenario starting", "scenario", s)
		start := time.Now()
		if err := e.reset(ctx); err != nil {
			return e.report, err
		}
		if err := runners[s](ctx); err != nil {
			return e.report, fmt.Errorf("scenario %s: %w", s, err)
		}
		e.log.Info("bench: scenario done", "scenario", s, "took", time.Since(start).Round(time.Millisecond))
	}
	e.report.compare(e.riverNote())
	e.report.Duration = time.Since(e.report.Started).Round(time.Millisecond).String()
	return e.report, nil
}

func selectScenarios(names []string) ([]string, error) {
	if len(names) == 0 || slices.Contains(names, "all") {
		return All, nil
	}
	var out []string
	for _, s := range All {
		if slices.Contains(names, s) {
			out = append(out, s)
		}
	}
	for _, n := range names {
		if !slices.Contains(All, n) {
			return nil, fmt.Errorf("bench: unknown scenario %q (want all or one of %s)", n, strings.Join(All, ", "))
		}
	}
	return out, nil
}

func (s Sizes) validate() error {
	var errs []error
	for name, v := range map[string]int{
		"writers": s.Writers, "emit rounds": s.EmitRounds, "drain events": s.DrainEvents,
		"relay batch": s.RelayBatch, "deliveries": s.Deliveries, "concurrency": s.Concurrency,
		"pool size": s.PoolSize, "rate": s.Rate, "memory pending": s.MemoryPending,
		"river max workers": s.RiverMaxWorkers, "river sweep jobs": s.RiverSweepJobs,
		"flow rounds": s.FlowRounds, "fair backlog": s.FairBacklog,
	} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	for name, d := range map[string]time.Duration{
		"emit duration": s.EmitDuration, "latency duration": s.LatencyDuration, "memory duration": s.MemoryDuration,
		"river fetch cooldown": s.RiverFetchCooldown, "river fetch poll": s.RiverFetchPoll,
		"pipeline duration": s.PipelineDuration, "flow duration": s.FlowDuration,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	for name, l := range map[string][]int{"emit writers": s.EmitWriters, "pipeline writers": s.PipelineWriters,
		"river sweep max workers": s.RiverSweepMaxWorkers} {
		if len(l) == 0 || slices.Min(l) <= 0 {
			errs = append(errs, fmt.Errorf("%s must be a list of positive numbers, got %v", name, l))
		}
	}
	if len(s.RiverSweepCooldowns) == 0 || slices.Min(s.RiverSweepCooldowns) <= 0 {
		errs = append(errs, fmt.Errorf("river sweep cooldowns must be a list of positive durations, got %v", s.RiverSweepCooldowns))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench sizes: %w", err)
	}
	return nil
}

// machine describes where the figures were taken.
func (e *env) machine(ctx context.Context) Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
	_ = e.pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'),
current_setting('fsync'), current_setting('shared_buffers')`).Scan(&m.Postgres, &m.SynchronousCommit, &m.Fsync, &m.SharedBuffers)
	if info, err := e.rdb.InfoMap(ctx, "server").Result(); err == nil {
		m.Redis = info["Server"]["redis_version"]
	}
	return m
}

// stream hands out a fresh stream key and consumer group of this run.
func (e *env) stream() (key, group string) {
	e.nstream++
	key = fmt.Sprintf("%s:%d", e.prefix, e.nstream)
	return key, key + ":group"
}
