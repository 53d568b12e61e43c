package faulttest

import (
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testpg"
)

// Bounds of the Postgres faults.
const (
	pgBound  = 20 * time.Second // to deliver everything once Postgres is back
	pgOutage = 45 * time.Second
)

// TestFaults_PostgresRestartCrashAndOutageLoseNoOutcome restarts, crashes
// and stops a private Postgres in the middle of the load. Every process must
// survive it (or is restarted, and counted, as a supervisor would); writers
// retry their own transactions, so the test knows which events committed;
// once Postgres is back everything committed is delivered within the bound,
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
			c, pg := newFaultCluster(t, setup{})
			at := 0.5
			if f.duration > 10*time.Second {
				at = lead.Seconds() / f.duration.Seconds()
			}
			c.runFault(faultCase{
				name: "Postgres " + f.name, events: 400, duration: f.duration, at: at, bound: pgBound,
				inject: func() {
					f.do(pg)
					c.pool.Reset() // the test's own connections were cut
				},
			}, faultProcs...)
		})
	}
}
