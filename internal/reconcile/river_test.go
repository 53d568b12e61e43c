package reconcile_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookrelay/hookrelay/internal/reconcile"
	"github.com/hookrelay/hookrelay/internal/retention"
)

// TestPeriodicJobs_RunOnStartAndEveryInterval plugs both maintenance jobs
// into a River client the way the scheduler does. The reconciler, every hour,
// can only run within the test thanks to RunOnStart; retention, every 300ms
// (the default is 10 minutes), runs twice, so the configured interval is used.
func TestPeriodicJobs_RunOnStartAndEveryInterval(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	stale := e.delivery(t, "pending", time.Hour, nil)
	rcfg := e.config()
	rcfg.Interval = time.Hour
	tcfg := retention.Config{Interval: 300 * time.Millisecond}

	workers := river.NewWorkers()
	if err := reconcile.Register(workers, reconcile.NewWorker(e.pool, e.rdb, rcfg, nil, e.m, nil)); err != nil {
		t.Fatal(err)
	}
	if err := retention.Register(workers, retention.NewWorker(e.pool, tcfg, e.m, nil)); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{
		Schema:       "hookrelay",
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		Workers:      workers,
		PeriodicJobs: []*river.PeriodicJob{reconcile.PeriodicJob(rcfg), retention.PeriodicJob(tcfg)},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	events, cancelEvents := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancelEvents()
	ctx := context.Background()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			t.Error(err)
		}
	}()

	runs := map[string]int{}
	deadline := time.After(20 * time.Second)
	for runs[reconcile.Kind] < 1 || runs[retention.Kind] < 2 {
		select {
		case ev := <-events:
			if ev.Kind == river.EventKindJobFailed {
				t.Fatalf("job %s failed: %v", ev.Job.Kind, ev.Job.Errors)
			}
			runs[ev.Job.Kind]++
		case <-deadline:
			t.Fatalf("runs after 20s: %v, want a reconcile run and 2 retention runs", runs)
		}
	}
	wantIDs(t, e.published(t), stale)
}
