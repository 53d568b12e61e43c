package jobs_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/jobs"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

type noopArgs struct{}

func (noopArgs) Kind() string { return "test.noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	done *atomic.Int64
}

func (w *noopWorker) Work(context.Context, *river.Job[noopArgs]) error {
	w.done.Add(1)
	return nil
}

// BenchmarkClient_DueJobs measures how fast a client with hookrelay's
// default settings works a backlog of due jobs (retry jobs are one XADD
// each, so River's fetching is their limit). With River's own fetch settings
// (100 ms cooldown, 20 workers) a process ran about 200 jobs a second; with
// these defaults, 16k/s on the project's 2-core machine. Speed is measured
// here, not asserted by a test:
//
//	go test -run '^$' -bench DueJobs ./internal/jobs/
func BenchmarkClient_DueJobs(b *testing.B) {
	const n = 4000
	db := testdb.New(b)
	ctx := b.Context()
	var done atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{done: &done})
	c, err := jobs.New(db.Pool, jobs.Config{Workers: workers})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Stop(context.WithoutCancel(ctx)) }()
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{}}
	}
	start := time.Now()
	for b.Loop() {
		done.Store(0)
		if _, err := c.River().InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
		testwait.Until(b, time.Minute, func() bool { return done.Load() == n },
			func() string { return "not every job ran" })
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "jobs/s")
}
