package faulttest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
	"github.com/hookrelay/hookrelay/internal/testkit/testpg"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// faultEnv are the settings of the fault tests of issue 9. The stale sweep
// is pushed out of reach (HOOKRELAY_RECONCILE_AFTER=1h), so a recovery can
// only come from detecting the fault; claims are as fast as allowed.
var faultEnv = map[string]string{
	"HOOKRELAY_RECONCILE_AFTER":    "1h",
	"HOOKRELAY_RECONCILE_INTERVAL": "1s",
	"HOOKRELAY_CLAIM_IDLE":         "6s", // HOOKRELAY_TIMEOUT + 5 s, the minimum
}

// newFaultCluster is a cluster with faultEnv on a private Postgres
// (testpg), which the test may restart or crash and which other runs on the
// shared server cannot disturb.
func newFaultCluster(t *testing.T, s setup) (*cluster, *testpg.Cluster) {
	pg := testpg.Start(t)
	db := pg.MigratedDB()
	s.pool, s.dbURL = db.Pool, db.URL
	s.env = merged(faultEnv, s.env)
	return newClusterWith(t, s), pg
}

// faultProcs are the processes of a fault test.
var faultProcs = []string{"relay-1", "relay-2", "worker-1", "worker-2"}

// lateGrace is how long past a missed bound the suite keeps watching, to
// tell a slow recovery from a loss in its report.
const lateGrace = 30 * time.Second

// maxDuplicateShare is the share of deliveries that may be received twice.
const maxDuplicateShare = 0.01

// faultCase is one fault injected in the middle of a steady load.
type faultCase struct {
	name     string
	events   int           // the load: events written...
	duration time.Duration // ...over about this long
	at       float64       // share of the events begun before the fault
	// inject applies the fault and returns once it is over (Redis or
	// Postgres answering again).
	inject func()
	// bound is how soon after the fault's end every committed event must
	// have reached every matching webhook.
	bound time.Duration
	// backlog pauses the workers for this long before the fault, until its
	// end, so that entries wait in Redis when the fault strikes: without
	// it a healthy cluster has almost nothing in flight to lose.
	backlog time.Duration
	// resumeFirst resumes the paused workers just before the fault instead
	// of after it, so that they are busy with the backlog when it strikes.
	resumeFirst bool
	// anyDuplicates reports duplicates without bounding them (a failover
	// hands in-flight entries to a replica that may not have their acks:
	// at-least-once, counted, not forbidden).
	anyDuplicates bool
}

// runFault starts the processes, runs the load with the fault in it, under
// a supervisor that restarts any process that exits, and checks recovery.
func (c *cluster) runFault(f faultCase, procs ...string) (written, report) {
	for _, name := range procs {
		c.start(name)
	}
	stop := c.supervise(context.Background())
	defer stop()
	ws := c.startWriting(f.events, f.duration)
	ws.waitIssued(int(float64(f.events) * f.at))
	workers := c.pauseWorkers(f.backlog)
	unpublished, pending, err := c.backlog()
	c.t.Logf("%s: injecting the fault; at stake: %d deliveries pending, %d events unpublished (query error: %v)", f.name, pending, unpublished, err)
	resume := func() {
		for _, p := range workers {
			p.Resume()
		}
	}
	if f.resumeFirst {
		resume()
	}
	f.inject()
	end := time.Now()
	resume() // a second SIGCONT is harmless
	c.t.Logf("%s: the fault is over", f.name)
	w := ws.wait()
	return w, c.expectRecovery(f, w, end)
}

// pauseWorkers pauses every worker for d (none when d is 0) and returns
// them, paused, for the caller to resume.
func (c *cluster) pauseWorkers(d time.Duration) []*testbin.Proc {
	if d == 0 {
		return nil
	}
	var paused []*testbin.Proc
	c.mu.Lock()
	for name, p := range c.procs {
		if strings.HasPrefix(name, "worker-") {
			p.Pause()
			paused = append(paused, p)
		}
	}
	c.mu.Unlock()
	pause := time.NewTimer(d) // the backlog builds meanwhile
	<-pause.C
	return paused
}

// expectRecovery checks that within bound of faultEnd every committed event
// has been answered 2xx by every matching webhook; then that the cluster is
// consistent (verify), with at most 1 % duplicates and every 2xx answer
// recorded as an attempt. It logs one summary line.
func (c *cluster) expectRecovery(f faultCase, w written, faultEnd time.Time) report {
	t := c.t
	fault, bound := f.name, f.bound
	want := map[string]bool{} // marker + " " + webhook path
	for _, ev := range w.committed {
		for _, h := range c.hooks {
			if h.match(ev.typ, ev.env) {
				want[ev.marker+" "+h.path] = true
			}
		}
	}
	first := map[string]time.Time{} // first 2xx receipt of each wanted pair
	seen := 0
	poll := func(until time.Time) {
		testwait.Poll(time.Until(until), pollEvery, func() bool {
			reqs := c.recv.Requests()
			next := len(reqs) // the first request still unanswered: look again from there
			for i, req := range reqs[seen:] {
				if !req.Answered {
					next = min(next, seen+i)
					continue
				}
				var body struct{ Data map[string]any }
				if req.Status/100 != 2 || json.Unmarshal(req.Body, &body) != nil {
					continue
				}
				key := marker(body.Data) + " " + req.Path
				if at, ok := first[key]; want[key] && (!ok || req.At.Before(at)) {
					first[key] = req.At
				}
			}
			seen = next
			return len(first) == len(want)
		})
	}
	poll(faultEnd.Add(bound))
	if missing := len(want) - len(first); missing > 0 {
		unpublished, pending, err := c.backlog()
		t.Errorf("%s: %d of %d deliveries not received within the %s bound after the fault's end (in Postgres: %d deliveries pending, %d events unpublished; query error: %v)",
			fault, missing, len(want), bound, pending, unpublished, err)
		poll(time.Now().Add(lateGrace))
		if missing := len(want) - len(first); missing > 0 {
			t.Errorf("%s: %d of %d deliveries still not received %s after the fault's end",
				fault, missing, len(want), time.Since(faultEnd).Round(time.Second))
		} else {
			t.Logf("%s: the missing deliveries arrived late, within %s more", fault, lateGrace)
		}
	}
	// The receipts are in; the rows must turn terminal right after.
	testwait.Poll(10*time.Second, pollEvery, func() bool {
		unpublished, pending, err := c.backlog()
		return err == nil && unpublished+pending == 0
	})

	r := c.verify(w)
	if !f.anyDuplicates && float64(r.duplicates) > maxDuplicateShare*float64(r.deliveries) {
		t.Errorf("%s: %d duplicates in %d deliveries (%.2f%%), want at most %.0f%%",
			fault, r.duplicates, r.deliveries, share(r.duplicates, r.deliveries), 100*maxDuplicateShare)
	}
	if r.unrecorded > 0 {
		t.Errorf("%s: the receiver got %d requests more than their deliveries have attempt rows: outcomes thrown away", fault, r.unrecorded)
	}
	var last time.Time
	for _, at := range first {
		if at.After(last) {
			last = at
		}
	}
	c.mu.Lock()
	restarts := c.restarts
	c.mu.Unlock()
	t.Logf("SUMMARY %s: committed %d · deliveries %d · lost %d · duplicates %d (%.2f%%) · unrecorded outcomes %d · writer retries %d (failed COMMITs looked up %d) · processes restarted %d · last delivery %s after the fault's end (bound %s)",
		fault, len(w.committed), r.deliveries, len(want)-len(first), r.duplicates, share(r.duplicates, r.deliveries), r.unrecorded,
		w.retries, w.ambiguous, restarts, last.Sub(faultEnd).Round(10*time.Millisecond), bound)
	return r
}

func share(n, of int) float64 { return 100 * float64(n) / float64(max(of, 1)) }
