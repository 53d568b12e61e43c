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

// TestClient_WorksJobsFastByDefault guards the defaults against the cap that
// River's own settings put on hookrelay's jobs (retry jobs are one XADD each,
// so River's fetching is their limit): with a 100 ms fetch cooldown and 20
// workers a process ran about 200 jobs a second. A backlog of due jobs must
// run at several times that.
func TestClient_WorksJobsFastByDefault(t *testing.T) {
	t.Parallel()
	const n, floor = 4000, 1000 // jobs, and the fewest per second that pass
	db := testdb.New(t)
	ctx := t.Context()
	var done atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{done: &done})
	c, err := jobs.New(db.Pool, jobs.Config{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	params := make([]river.InsertManyParams, n)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{}}
	}
	if _, err := c.River().InsertMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop(context.WithoutCancel(ctx)) }()
	testwait.Until(t, time.Minute, func() bool { return done.Load() == n },
		func() string { return "not every job ran" })
	rate := float64(n) / time.Since(start).Seconds()
	t.Logf("%d jobs in %s: %.0f jobs/s", n, time.Since(start).Round(time.Millisecond), rate)
	if rate < floor {
		t.Fatalf("%.0f jobs/s; want at least %d", rate, floor)
	}
}
