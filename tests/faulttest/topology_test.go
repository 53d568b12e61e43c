package faulttest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// failoverBound is how soon after a master is killed every committed event
// must be delivered: the topology's own failover (about 1–3 s with
// testredis's 1 s timeouts), the clients finding the new master (a Cluster
// client reloads its slot map every redisurl.DefaultClusterStateReload),
// then the reconciler noticing the new run id and putting back what the
// promoted replica lacks, after HOOKRELAY_TIMEOUT + 1 s.
const failoverBound = 20 * time.Second

// resumeBound is how soon after a master is killed a delivery created
// after the kill must have been answered 2xx: the pipeline is back.
const resumeBound = 10 * time.Second

// failoverLag is how long the replicas are held back (stopped) before their
// master is killed, so that the replica promoted lacks the master's last
// second of writes — acknowledgements and new entries alike — as an
// asynchronous replica that fell behind would.
const failoverLag = time.Second

// topologyProcs are the processes of a topology test.
var topologyProcs = []string{"relay-1", "worker-1", "worker-2"}

// TestTopology_ClusterLosesNothing runs the whole pipeline on a 3-master
// Redis Cluster (the stream, its dead stream, the flow limiter's
// hash-tagged keys and the reconciler's marker each where their slot puts
// them) and checks that every committed event is delivered.
func TestTopology_ClusterLosesNothing(t *testing.T) {
	t.Parallel()
	rc := testredis.StartCluster(t, 0)
	noLoss(t, rc.URL())
}

// TestTopology_SentinelLosesNothing runs the whole pipeline on a
// Sentinel-managed master, found through three Sentinels that require
// their own password.
func TestTopology_SentinelLosesNothing(t *testing.T) {
	t.Parallel()
	rs := testredis.StartSentinels(t)
	noLoss(t, rs.URL())
}

func noLoss(t *testing.T, redisURL string) {
	c := newClusterWith(t, setup{redisURL: redisURL})
	for _, name := range topologyProcs {
		c.start(name)
	}
	w := c.write(300, 3*time.Second, func() {})
	took := c.waitQuiesced(time.Minute)
	r := c.verify(w)
	t.Logf("SUMMARY %s: committed %d · deliveries %d · duplicates %d · quiesced %s after the last commit",
		t.Name(), len(w.committed), r.deliveries, r.duplicates, took.Round(10*time.Millisecond))
}

// TestTopology_ClusterMasterFailoverMidLoadLosesNothing kills (SIGKILL) the
// master holding the stream's slot in the middle of the load, with the
// workers busy on a backlog and its replica a second behind; the replica
// takes over. With the stale sweep
// out of reach, nothing committed may be lost, delivery must resume within
// resumeBound and everything be delivered within failoverBound. Duplicates
// are counted, not forbidden: at-least-once.
func TestTopology_ClusterMasterFailoverMidLoadLosesNothing(t *testing.T) {
	t.Parallel()
	rc := testredis.StartCluster(t, 1)
	var old string
	failover(t, rc.URL(), "Cluster master of "+streamKey+" killed",
		func() { old = rc.KillMasterOf(streamKey, failoverLag) },
		func() time.Duration { return rc.WaitFailover(streamKey, old, failoverBound) })
}

// TestTopology_SentinelMasterFailoverMidLoadLosesNothing is the same with
// the Sentinel-managed master killed and its replica promoted.
func TestTopology_SentinelMasterFailoverMidLoadLosesNothing(t *testing.T) {
	t.Parallel()
	rs := testredis.StartSentinels(t)
	var old string
	failover(t, rs.URL(), "Sentinel master killed",
		func() { old = rs.KillMaster(failoverLag) },
		func() time.Duration { return rs.WaitFailover(old, failoverBound) })
}

// failover runs a fault test whose fault is kill, then reports how long the
// topology took to promote a replica (promoted), the pipeline to deliver
// again, and whether the reconciler saw the loss. failoverBound counts from
// the promotion (the fault's end), resumeBound from the kill.
func failover(t *testing.T, redisURL, name string, kill func(), promoted func() time.Duration) {
	c := newClusterWith(t, setup{redisURL: redisURL, env: faultEnv, behavior: testreceiver.Behavior{}})
	var killedAt time.Time
	var promotion time.Duration
	_, r := c.runFault(faultCase{
		name: name, events: 400, duration: 8 * time.Second, at: 0.4, bound: failoverBound,
		backlog: redisBacklog, resumeFirst: true, anyDuplicates: true,
		inject: func() {
			kill()
			killedAt = time.Now()
			promotion = promoted()
		},
	}, topologyProcs...)
	resumed := c.resumedAfter(killedAt)
	t.Logf("SUMMARY %s: replica promoted %s after the kill · first delivery created after the kill answered 2xx %s after it (bound %s) · duplicates %d of %d deliveries (%.2f%%) · loss detected: %s",
		name, promotion.Round(10*time.Millisecond), resumed.Round(10*time.Millisecond), resumeBound, r.duplicates, r.deliveries, share(r.duplicates, r.deliveries),
		strings.Join(c.lossReasons(), ", "))
	if resumed > resumeBound {
		t.Errorf("%s: delivery resumed %s after the kill, want within %s", name, resumed.Round(10*time.Millisecond), resumeBound)
	}
}

// resumedAfter is how long after at the first delivery created after at
// (so published to the Redis that took over) was answered 2xx.
func (c *cluster) resumedAfter(at time.Time) time.Duration {
	var first *time.Time
	err := c.pool.QueryRow(context.Background(), `SELECT min(a.started_at)
		FROM hookrelay.delivery_attempts a JOIN hookrelay.deliveries d ON d.id = a.delivery_id
		WHERE d.created_at > $1 AND a.status_code BETWEEN 200 AND 299`, at).Scan(&first)
	if err != nil {
		c.t.Fatal(err)
	}
	if first == nil {
		c.t.Fatalf("no delivery created after the kill was delivered")
	}
	return first.Sub(at)
}

var lossReason = regexp.MustCompile(`redis lost the stream's data.* reason=(\S+)`)

// lossReasons are the reasons of the Redis losses the reconcilers logged.
func (c *cluster) lossReasons() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var reasons []string
	for name, p := range c.procs {
		for _, run := range append(c.past[name], p) {
			for _, m := range lossReason.FindAllStringSubmatch(run.Output(), -1) {
				reasons = append(reasons, name+": "+m[1])
			}
		}
	}
	if len(reasons) == 0 {
		return []string{"none"}
	}
	return reasons
}
