package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/cmd/hookrelay/internal/bench"
	"github.com/hookrelay/hookrelay/internal/config"
)

// smokeSizes are tinier than bench.Smoke so that the whole run stays well
// under the suite's budget on a shared machine.
func smokeSizes() bench.Sizes {
	s := bench.Smoke()
	s.EmitDuration = 200 * time.Millisecond
	s.DrainEvents = 1500
	s.Deliveries = 300
	s.Rate = 200
	s.LatencyDuration = time.Second
	s.MemoryPending = 500
	s.MemoryDuration = 3 * time.Second
	s.PipelineWriters = []int{4}
	s.PipelineDuration = 500 * time.Millisecond
	// A two-point sweep, so that the sweep's code runs too.
	s.RiverSweep = true
	s.RiverSweepJobs = 200
	s.RiverSweepMaxWorkers = []int{100}
	s.RiverSweepCooldowns = []time.Duration{time.Millisecond, 5 * time.Millisecond}
	return s
}

func smokeConfig(t *testing.T) bench.Config {
	t.Helper()
	c, err := config.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return bench.Config{
		DatabaseURL: c.DatabaseURL,
		RedisURL:    c.RedisURL,
		Database:    bench.DefaultDatabase + "_smoke_" + strings.ReplaceAll(t.Name(), "/", "_")[:4] + time.Now().Format("150405"),
		Sizes:       smokeSizes(),
	}
}

// TestRun_SmokeEveryScenarioProducesSaneFigures runs every scenario at tiny
// sizes, so that the bench cannot rot: each must finish and report positive,
// finite figures, and the report must render as a table and as JSON.
func TestRun_SmokeEveryScenarioProducesSaneFigures(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := smokeConfig(t)
	// Warnings and errors of the relay, worker and River go to the test's output.
	cfg.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := bench.Run(ctx, cfg, []string{"all"})
	if err != nil {
		t.Fatalf("bench run: %v", err)
	}
	want := []string{
		"emit.w8.none", "emit.w8.plain", "emit.w8.go", "emit.w8.sql", "emit.w8.trigger", "emit.w8.go_idle",
		"emit.w8.go_relay", "emit.w8.go_relay_match", "emit.w8.river_insert",
		"drain.throughput", "deliver.throughput", "deliver.ratio.river",
		"latency.p50", "latency.p95", "latency.p99", "latency.max", "latency.ratio.river_p50", "latency.ratio.river_p99",
		"river.sweep.w100_c1ms", "river.sweep.w100_c5ms", "river.sweep.best",
		"river.throughput", "river.p50", "river.p99",
		"pipeline.w4.events", "pipeline.w4.commits", "pipeline.w4.delivered", "pipeline.w4.river", "pipeline.w4.ratio",
		"pipeline.w4.cpu.bench", "pipeline.w4.cpu.postgres", "pipeline.w4.cpu.redis", "pipeline.w4.cpu.total", "pipeline.w4.wal",
		"pipeline.w4.river.cpu.postgres",
		"memory.peak_rss",
		"dead.a1.throughput", "dead.a1.p50", "dead.a1.p99", "dead.b1.throughput", "dead.b1.p50", "dead.b1.p99",
		"dead.h1.throughput", "dead.h1.p50", "dead.h1.p99",
		"dead.b1.dead_requests", "dead.ratio.throughput", "dead.ratio.p50", "dead.ratio.p99",
		"dead.ratio_h.throughput", "dead.ratio_h.p50", "dead.ratio_h.p99",
		"fair.r1.without.p50", "fair.r1.with.p50", "fair.r1.without.p99", "fair.r1.with.p99",
		"fair.r1.defer", "fair.r1.limited_rate", "fair.ratio.p50", "fair.ratio.p99",
	}
	for _, key := range want {
		f, ok := rep.Figure(key)
		if !ok {
			t.Errorf("figure %s missing", key)
			continue
		}
		if !(f.Value > 0) || math.IsInf(f.Value, 0) {
			t.Errorf("figure %s = %v %s; want a positive finite value", key, f.Value, f.Unit)
		}
		if f.Goal != "" && f.Verdict != bench.Met && f.Verdict != bench.Missed {
			t.Errorf("figure %s has goal %q but verdict %q", key, f.Goal, f.Verdict)
		}
	}
	if p50, _ := rep.Figure("latency.p50"); true {
		if max, _ := rep.Figure("latency.max"); max.Value < p50.Value {
			t.Errorf("latency max %v < p50 %v", max.Value, p50.Value)
		}
	}
	if rss, _ := rep.Figure("memory.peak_rss"); rss.Value > 4096 {
		t.Errorf("peak RSS %v MB is not plausible", rss.Value)
	}

	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, s := range bench.All {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table has no row of scenario %s:\n%s", s, table.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Figures) != len(rep.Figures) {
		t.Errorf("JSON does not round-trip (%v): %d figures, want %d", err, len(back.Figures), len(rep.Figures))
	}
	t.Logf("\n%s", table.String())
}

// TestRun_RefusesADatabaseThatIsNotABenchDatabase proves the bench never
// drops a database whose name does not mark it as the bench's own.
func TestRun_RefusesADatabaseThatIsNotABenchDatabase(t *testing.T) {
	t.Parallel()
	cfg := smokeConfig(t)
	cfg.Database = "postgres"
	if _, err := bench.Run(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "must start with") {
		t.Fatalf("Run with database postgres: err = %v; want a refusal", err)
	}
}

// TestRun_RefusesAnUnknownScenario proves a typo is an error, not an empty run.
func TestRun_RefusesAnUnknownScenario(t *testing.T) {
	t.Parallel()
	if _, err := bench.Run(context.Background(), smokeConfig(t), []string{"emitt"}); err == nil || !strings.Contains(err.Error(), "unknown scenario") {
		t.Fatalf("Run with scenario emitt: err = %v; want unknown scenario", err)
	}
}
