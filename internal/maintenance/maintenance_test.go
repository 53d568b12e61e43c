package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/jobs"
	"github.com/hookrelay/hookrelay/internal/maintenance"
)

// TestPeriodicJobs_RunOnStartAndEveryInterval plugs both maintenance jobs
// into hookrelay's River client the way the wiring does. The reconciler,
// every hour, can only run within the test thanks to RunOnStart; retention,
// every 300ms (the default is 10 minutes), runs twice, so the configured
// interval is used.
func TestPeriodicJobs_RunOnStartAndEveryInterval(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	stale := e.delivery(t, "pending", time.Hour, nil)
	rcfg := e.config()
	rcfg.Interval = time.Hour
	tcfg := maintenance.RetentionConfig{Interval: 300 * time.Millisecond}

	maint := maintenance.New(e.pool, e.rdb, maintenance.Config{Reconcile: rcfg, Retention: tcfg}, nil, e.m, nil)
	workers := river.NewWorkers()
	if err := maint.AddWorkers(workers); err != nil {
		t.Fatal(err)
	}
	client, err := jobs.New(e.pool, jobs.Config{Workers: workers, PeriodicJobs: maint.PeriodicJobs(), MaxWorkers: 2})
	if err != nil {
		t.Fatal(err)
	}
	events, cancelEvents := client.River().Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
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
	for runs[maintenance.ReconcileKind] < 1 || runs[maintenance.RetentionKind] < 2 {
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
