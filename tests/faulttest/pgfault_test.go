package faulttest

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testkit/testpg"
	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
)

// Bounds of the Postgres faults.
const (
	pgBound  = 20 * time.Second // to deliver everything once Postgres is back
	pgOutage = 45 * time.Second
	// pgBacklog pauses the workers before the fault and lets them loose on
	// the backlog just as it strikes, so that outcomes are in flight.
	pgBacklog = 2 * time.Second
)

// TestFaults_PostgresRestartCrashAndOutageLoseNoOutcome restarts, crashes
// and stops a private Postgres in the middle of the load. Every process must
// survive it (or is restarted, and counted, as a supervisor would); writers
// retry their own transactions, so the test knows which events committed;
// the workers are busy with a backlog as it strikes, and the receiver fails
// 5 % of requests, so retries are pending in River too. Once Postgres is back everything committed is delivered within the bound,
// and every 2xx the receiver gave is recorded as an attempt.
func TestFaults_PostgresRestartCrashAndOutageLoseNoOutcome(t *testing.T) {
	const lead, trail = 5 * time.Second, 5 * time.Second
	for _, f := range []struct {
		name     string
		duration time.Duration // of the load
		do       func(pg *testpg.Cluster)
	}{
		{"restart_fast", 8 * time.Second, func(pg *testpg.Cluster) { pg.Restart("fast") }},
		{"crash_immediate", 8 * time.Second, (*testpg.Cluster).Crash},
		{"down_45s", lead + pgOutage + trail, func(pg *testpg.Cluster) {
			pg.Stop("fast")
			time.Sleep(pgOutage) // the outage itself
			pg.Start()
		}},
	} {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			c, pg := newFaultCluster(t, setup{behavior: testreceiver.Behavior{Fail: 0.05}})
			at := 0.5
			if f.duration > 10*time.Second {
				at = lead.Seconds() / f.duration.Seconds()
			}
			c.runFault(faultCase{
				name: "Postgres " + f.name, events: 400, duration: f.duration, at: at, bound: pgBound,
				backlog: pgBacklog, resumeFirst: true,
				inject: func() {
					f.do(pg)
					c.pool.Reset() // the test's own connections were cut
				},
			}, faultProcs...)
		})
	}
}
