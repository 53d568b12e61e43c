package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/cmd/hookrelay/internal/bench"
)

// benchUsage documents the bench command; the flag list follows it.
const benchUsage = `usage: hookrelay bench [flags]

Measures emission overhead, relay drain, delivery throughput, end-to-end
latency, a River-only baseline, the whole pipeline (relay and worker as child
processes) against River's, the worker's memory, and flow control on the hot
path (dead-endpoint, fairness: issue 13), in a database of its
own (-db, dropped and recreated on the server of DATABASE_URL) and on Redis
keys "bench:<random>" of REDIS_URL. The defaults are a smoke run of seconds;
-full takes the sizes of issues 6, 11 and 13 (about 30 minutes on 2 cores):

  hookrelay bench -full -worker-bin self -json bench.json
  (= -emit-writers 8,32 -emit-duration 10s -emit-rounds 3 -drain-events 1000000
     -deliveries 100000 -rate 1000 -latency-duration 30s -memory-pending 1000000
     -memory-duration 60s -pipeline-writers 8,32 -pipeline-duration 15s
     -river-sweep -river-sweep-jobs 10000 -flow-duration 10s -flow-rounds 2
     -fair-backlog 50000)

Flags set explicitly win over -full.

`

// benchOptions are the parsed flags of `hookrelay bench`.
type benchOptions struct {
	scenario, jsonPath, db, workerBin string
	cpuProfile                        string
	full, keep                        bool
	sizes                             bench.Sizes
}

// benchFlags declares the flags, with def as the size defaults.
func benchFlags(def bench.Sizes) (*flag.FlagSet, *benchOptions) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	o := &benchOptions{sizes: def}
	// The lists are copied: a flag fills its own, not the preset's.
	o.sizes.EmitWriters = slices.Clone(def.EmitWriters)
	o.sizes.PipelineWriters = slices.Clone(def.PipelineWriters)
	fs.StringVar(&o.scenario, "scenario", "all", "scenarios to run, comma-separated: all|"+strings.Join(bench.All, "|"))
	fs.BoolVar(&o.full, "full", false, "use the full sizes of issues 6 and 11 for every size flag not set explicitly")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this `path`")
	fs.StringVar(&o.db, "db", bench.DefaultDatabase, "bench database (dropped and recreated; must start with "+bench.DefaultDatabase+")")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (harness, receiver and in-process relay/worker) to this `path`")
	fs.BoolVar(&o.keep, "keep", false, "keep the bench database after the run")
	fs.StringVar(&o.workerBin, "worker-bin", "", "a hookrelay binary ('self': this one): memory runs `path` worker as a child and measures its RSS; pipeline runs path relay and path worker as children; empty: both in this process (smoke runs only)")
	s := &o.sizes
	fs.IntVar(&s.Writers, "writers", def.Writers, "latency, river: concurrent writers of the paced emission")
	fs.Var((*intList)(&s.EmitWriters), "emit-writers", "emit: writer counts, comma-separated, each measured in turn")
	fs.DurationVar(&s.EmitDuration, "emit-duration", def.EmitDuration, "emit: duration of each variant per round")
	fs.IntVar(&s.EmitRounds, "emit-rounds", def.EmitRounds, "emit: rounds over all variants (the median counts)")
	fs.IntVar(&s.DrainEvents, "drain-events", def.DrainEvents, "drain: backlog of events")
	fs.IntVar(&s.RelayBatch, "relay-batch", def.RelayBatch, "drain, latency: events per relay claim")
	fs.IntVar(&s.Deliveries, "deliveries", def.Deliveries, "deliver, river, dead-endpoint: deliveries to send (dead-endpoint: to the healthy endpoint, and as many to the dead one)")
	fs.IntVar(&s.Concurrency, "concurrency", def.Concurrency, "deliver, latency, memory: the hookrelay worker's deliveries in flight")
	fs.IntVar(&s.PoolSize, "pool", def.PoolSize, "Postgres connections of the worker and of the River baseline")
	fs.IntVar(&s.Rate, "rate", def.Rate, "latency, river, dead-endpoint, fairness: events emitted per second")
	fs.DurationVar(&s.LatencyDuration, "latency-duration", def.LatencyDuration, "latency, river: how long events are emitted")
	fs.IntVar(&s.MemoryPending, "memory-pending", def.MemoryPending, "memory: deliveries pending when the worker starts")
	fs.DurationVar(&s.MemoryDuration, "memory-duration", def.MemoryDuration, "memory: longest the worker runs (it stops once drained)")
	fs.IntVar(&s.RiverMaxWorkers, "river-max-workers", def.RiverMaxWorkers, "river: the baseline's River MaxWorkers (tuned)")
	fs.DurationVar(&s.RiverFetchCooldown, "river-fetch-cooldown", def.RiverFetchCooldown, "river: the baseline's River FetchCooldown (River's default: 100ms; tuned)")
	fs.DurationVar(&s.RiverFetchPoll, "river-fetch-poll", def.RiverFetchPoll, "river: the baseline's River FetchPollInterval (River's default: 1s; tuned)")
	fs.BoolVar(&s.RiverSweep, "river-sweep", def.RiverSweep, "river, pipeline: first run River's worker stage at MaxWorkers 50,100,200,400 × FetchCooldown 1ms,5ms,20ms and use the fastest for every River figure (overrides -river-max-workers and -river-fetch-cooldown)")
	fs.IntVar(&s.RiverSweepJobs, "river-sweep-jobs", def.RiverSweepJobs, "river sweep: jobs per setting")
	fs.Var((*intList)(&s.PipelineWriters), "pipeline-writers", "pipeline: writer counts, comma-separated, each run in turn")
	fs.DurationVar(&s.PipelineDuration, "pipeline-duration", def.PipelineDuration, "pipeline: how long the writers commit at each writer count")
	fs.DurationVar(&s.FlowDuration, "flow-duration", def.FlowDuration, "dead-endpoint, fairness: how long each latency phase emits (at -rate)")
	fs.IntVar(&s.FlowRounds, "flow-rounds", def.FlowRounds, "dead-endpoint, fairness: rounds, each running both phases in turn (A then B; without then with the backlog)")
	fs.IntVar(&s.FairBacklog, "fair-backlog", def.FairBacklog, "fairness: deliveries of the endpoint limited to 10/s on the stream ahead of the unlimited flow")
	return fs, o
}

// intList is a flag of comma-separated positive integers, e.g. "8,32".
type intList []int

func (l *intList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, n := range *l {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (l *intList) Set(v string) error {
	var out []int
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n <= 0 {
			return fmt.Errorf("want positive integers separated by commas, got %q", v)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// parseBench parses args; with -full, the size flags not given default to
// bench.Full instead of bench.Smoke.
func parseBench(args []string) (*benchOptions, error) {
	fs, o := benchFlags(bench.Smoke())
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: bench takes no arguments, got %q", errUsage, fs.Args())
	}
	if o.full {
		fs, o = benchFlags(bench.Full())
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// runBench runs `hookrelay bench`: the scenarios, a table on stdout and,
// with -json, the report as JSON.
func runBench(ctx context.Context, args []string) error {
	o, err := parseBench(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		if errors.Is(err, errUsage) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	d, err := connect(ctx, false)
	if err != nil {
		return err
	}
	d.close() // the bench opens its own connections, to its own database
	cfg := bench.Config{DatabaseURL: d.cfg.DatabaseURL, RedisURL: d.cfg.RedisURL, Database: o.db, Keep: o.keep,
		Sizes: o.sizes, Log: d.log}
	if o.workerBin != "" {
		bin := o.workerBin
		if bin == "self" {
			if bin, err = os.Executable(); err != nil {
				return fmt.Errorf("find this binary: %w", err)
			}
		}
		cfg.Binary = bin
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	rep, runErr := bench.Run(ctx, cfg, strings.Split(o.scenario, ","))
	if rep == nil {
		return runErr
	}
	if err := rep.WriteTable(os.Stdout); err != nil {
		return errors.Join(runErr, err)
	}
	if o.jsonPath != "" {
		if err := writeJSONFile(o.jsonPath, rep); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

func writeJSONFile(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	werr := rep.WriteJSON(f)
	if cerr := f.Close(); werr == nil && cerr != nil {
		werr = fmt.Errorf("bench: %w", cerr)
	}
	return werr
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
