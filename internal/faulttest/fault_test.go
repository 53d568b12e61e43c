package faulttest

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testreceiver"
)

// TestFaults_NoCommittedEventIsLost is the fault-injection suite of issue 5:
// writers emit through all three paths while relays and workers are killed
// with SIGKILL and restarted, Redis is flushed once, and the receiver fails,
// hangs and resets a share of requests. At the end every committed event has
// reached every matching webhook, signed, and nothing else has.
func TestFaults_NoCommittedEventIsLost(t *testing.T) {
	events := envInt(t, "HOOKRELAY_FAULT_EVENTS", 2000)
	c := newCluster(t, testreceiver.Behavior{Fail: 0.15, Hang: 0.02, Reset: 0.03})
	for _, name := range []string{"relay-1", "relay-2", "worker-1", "worker-2"} {
		c.start(name)
	}

	ctx, stopChaos := context.WithCancel(context.Background())
	var chaos sync.WaitGroup
	chaos.Go(func() { c.chaos(ctx) })

	// Pace the writers so that the chaos has time to hit them: at least 20 s.
	duration := max(20*time.Second, time.Duration(events)*time.Second/2000)
	w := c.write(events, duration, func() { c.flushRedis() })
	stopChaos()
	chaos.Wait()
	t.Logf("writers done: %d committed, %d rolled back; %d kills", len(w.committed), len(w.rolledBack), c.kills)

	// The storm is over; let the receiver answer and the cluster settle.
	c.recv.SetBehavior(testreceiver.Behavior{})
	for _, name := range []string{"relay-1", "relay-2", "worker-1", "worker-2"} {
		c.ensureRunning(name)
	}
	quiesce := c.waitQuiesced(3 * time.Minute)
	r := c.verify(w)
	t.Logf("events %d (committed) · deliveries %d · receipts %d · duplicates %d (%.2f%%) · lost 0 · time to quiesce %s",
		len(w.committed), r.deliveries, r.receipts, r.duplicates, 100*float64(r.duplicates)/float64(max(r.deliveries, 1)), quiesce.Round(time.Millisecond))

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
