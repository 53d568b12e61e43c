package faulttest

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
)

// TestFaults_NoCommittedEventIsLost is the whole mix: writers emit through
// all three paths while relays and workers are killed with SIGKILL and
// restarted every 0.5–2 s, the receiver fails, hangs and resets a share of
// requests, and Redis and Postgres suffer one fault after another — FLUSHDB,
// DEL of the stream, FLUSHALL, a Redis restart without persistence, a
// Postgres restart — with the stale sweep out of reach
// (HOOKRELAY_RECONCILE_AFTER=1h), so each recovery must come from detecting
// its fault. At the end every committed event has reached every matching
// webhook, signed, and nothing else has.
func TestFaults_NoCommittedEventIsLost(t *testing.T) {
	events := envInt(t, "HOOKRELAY_FAULT_EVENTS", 2000)
	c, pg := newFaultCluster(t, setup{behavior: testreceiver.Behavior{Fail: 0.15, Hang: 0.02, Reset: 0.03}})
	for _, name := range faultProcs {
		c.start(name)
	}
	ctx, stopChaos := context.WithCancel(context.Background())
	var chaos sync.WaitGroup
	chaos.Go(func() { c.chaos(ctx) })
	stopSupervising := c.supervise(context.Background())

	redis := c.redis.Client()
	faults := []struct {
		name string
		do   func() error
	}{
		{"FLUSHDB", func() error { return redis.FlushDB(context.Background()).Err() }},
		{"DEL " + streamKey, func() error { return redis.Del(context.Background(), streamKey).Err() }},
		{"FLUSHALL", func() error { return redis.FlushAll(context.Background()).Err() }},
		{"Redis restart", func() error { c.redis.Restart(); return nil }},
		{"Postgres restart", func() error { pg.Restart("fast"); c.pool.Reset(); return nil }},
	}
	// Pace the writers so that the chaos has time to hit them: at least 20 s.
	duration := max(20*time.Second, time.Duration(events)*time.Second/2000)
	ws := c.startWriting(events, duration)
	for i, f := range faults {
		ws.waitIssued(events * (i + 1) / (len(faults) + 1))
		if err := f.do(); err != nil {
			t.Errorf("%s: %v", f.name, err)
		}
		t.Logf("fault: %s", f.name)
	}
	w := ws.wait()
	stopChaos()
	chaos.Wait()
	t.Logf("writers done: %d committed, %d rolled back; %d kills", len(w.committed), len(w.rolledBack), c.kills)

	// The storm is over; let the receiver answer and the cluster settle.
	c.recv.SetBehavior(testreceiver.Behavior{})
	quiesce := c.waitQuiesced(3 * time.Minute)
	stopSupervising()
	r := c.verify(w)
	t.Logf("SUMMARY whole mix: events %d (committed) · deliveries %d · receipts %d · duplicates %d (%.2f%%) · lost 0 · kills %d · restarts %d · time to quiesce %s",
		len(w.committed), r.deliveries, r.receipts, r.duplicates, share(r.duplicates, r.deliveries), c.kills, c.restarts, quiesce.Round(time.Millisecond))
	if float64(r.duplicates) > maxDuplicateShare*float64(r.deliveries) {
		t.Errorf("%d duplicates in %d deliveries (%.2f%%), want at most %.0f%%", r.duplicates, r.deliveries,
			share(r.duplicates, r.deliveries), 100*maxDuplicateShare)
	}
	for name, p := range c.procs {
		if err := p.Term(40 * time.Second); err != nil {
			t.Errorf("SIGTERM %s: %v", name, err)
		}
	}
}

// TestFaults_SIGTERMDuringLoadLosesNothingAndDuplicatesNothing stops every
// process gracefully in the middle of the load: what was in flight is
// finished or handed back, so no completed delivery is sent twice.
func TestFaults_SIGTERMDuringLoadLosesNothingAndDuplicatesNothing(t *testing.T) {
	c := newCluster(t, testreceiver.Behavior{})
	names := []string{"relay-1", "worker-1", "worker-2"}
	for _, name := range names {
		c.start(name)
	}
	w := c.write(600, 6*time.Second, func() {
		for _, name := range names {
			if err := c.procs[name].Term(40 * time.Second); err != nil {
				t.Errorf("SIGTERM %s: %v", name, err)
			}
			c.start(name)
		}
	})
	c.waitQuiesced(2 * time.Minute)
	r := c.verify(w)
	if r.duplicates != 0 {
		t.Fatalf("%d deliveries were received again after a 2xx, want 0 with graceful stops", r.duplicates)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
