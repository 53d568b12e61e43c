package faulttest

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testbin"
	"github.com/hookrelay/hookrelay/internal/testdb"
	"github.com/hookrelay/hookrelay/internal/testreceiver"
	"github.com/hookrelay/hookrelay/internal/testredis"
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

type cluster struct {
	t     *testing.T
	db    *testdb.DB
	redis *testredis.Server
	recv  *testreceiver.Receiver
	env   map[string]string
	hooks []webhook

	mu    sync.Mutex
	procs map[string]*testbin.Proc
	kills int
}

func newCluster(t *testing.T, b testreceiver.Behavior) *cluster {
	c := &cluster{
		t:     t,
		db:    testdb.New(t),
		redis: testredis.StartServer(t),
		recv:  testreceiver.New(t),
		procs: map[string]*testbin.Proc{},
	}
	c.recv.SetBehavior(b)
	c.env = map[string]string{
		"DATABASE_URL":                     c.db.URL,
		"REDIS_URL":                        c.redis.URL(),
		"HOOKRELAY_ALLOW_PRIVATE_NETWORKS": "true",
		"HOOKRELAY_TIMEOUT":                "1s",
		"HOOKRELAY_CLAIM_IDLE":             "6s",
		"HOOKRELAY_RECONCILE_AFTER":        "6s",
		"HOOKRELAY_RECONCILE_INTERVAL":     "1s",
		"HOOKRELAY_RETRY_SCHEDULE":         "100ms,200ms,400ms,800ms,1s",
		"HOOKRELAY_MAX_ATTEMPTS":           "10",
		"HOOKRELAY_POLL_INTERVAL":          "250ms",
		"HOOKRELAY_WORKER_CONCURRENCY":     "64",
		"HOOKRELAY_LOG_LEVEL":              "warn",
	}
	c.hooks = createWebhooks(t, c.db, c.recv.URL)
	return c
}

func (c *cluster) start(name string) {
	cmd := "relay"
	if name[:6] == "worker" {
		cmd = "worker"
	}
	p := testbin.Start(c.t, name, c.env, cmd)
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
}

func (c *cluster) ensureRunning(name string) {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil || p.Exited() {
		if p != nil {
			c.t.Logf("%s had exited; output:\n%s", name, p.Output())
		}
		c.start(name)
	}
}

// chaos SIGKILLs a random relay or worker every 0.5–2 s and restarts it.
func (c *cluster) chaos(ctx context.Context) {
	rng := rand.New(rand.NewPCG(7, 11))
	names := []string{"relay-1", "relay-2", "worker-1", "worker-2"}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500*time.Millisecond + time.Duration(rng.IntN(1500))*time.Millisecond):
		}
		name := names[rng.IntN(len(names))]
		c.mu.Lock()
		p := c.procs[name]
		c.kills++
		c.mu.Unlock()
		p.Kill()
		c.start(name)
	}
}

func (c *cluster) flushRedis() {
	if err := c.redis.Client().FlushAll(context.Background()).Err(); err != nil {
		c.t.Errorf("FLUSHALL: %v", err)
	}
	c.t.Log("Redis flushed (FLUSHALL)")
}

// waitQuiesced waits until every committed event is published and every
// delivery is terminal, and returns how long that took.
func (c *cluster) waitQuiesced(timeout time.Duration) time.Duration {
	start := time.Now()
	var unpublished, pending int
	for time.Since(start) < timeout {
		err := c.db.Pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM hookrelay.outbox WHERE published_at IS NULL),
			(SELECT count(*) FROM hookrelay.deliveries WHERE status = 'pending')`).Scan(&unpublished, &pending)
		if err != nil {
			c.t.Fatal(err)
		}
		if unpublished == 0 && pending == 0 {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("not quiesced after %s: %d events unpublished, %d deliveries pending", timeout, unpublished, pending)
	return 0
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
