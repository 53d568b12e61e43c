package faulttest

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// redisLossBound is how soon after Redis loses its data every committed
// event must be delivered: the reconciler runs every second and must notice.
const redisLossBound = 15 * time.Second

// redisBacklog is how long the workers are paused before Redis loses its
// data, so that a few seconds' worth of entries are in it to lose.
const redisBacklog = 2 * time.Second

// TestFaults_RedisDataLossMidLoadIsRecoveredWithinBound loses Redis's data
// in the middle of a steady load, four ways. With the stale sweep out of
// reach, only detecting the loss can bring back the entries it took.
func TestFaults_RedisDataLossMidLoadIsRecoveredWithinBound(t *testing.T) {
	for _, f := range []struct {
		name string
		do   func(c *cluster) error
	}{
		{"FLUSHDB", func(c *cluster) error { return c.redis.Client().FlushDB(context.Background()).Err() }},
		{"FLUSHALL", func(c *cluster) error { return c.redis.Client().FlushAll(context.Background()).Err() }},
		{"DEL_stream", func(c *cluster) error { return c.redis.Client().Del(context.Background(), streamKey).Err() }},
		{"restart_without_persistence", func(c *cluster) error { c.redis.Restart(); return nil }},
	} {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newFaultCluster(t, setup{})
			c.runFault(faultCase{
				name: f.name, events: 400, duration: 8 * time.Second, at: 0.5, bound: redisLossBound, backlog: redisBacklog,
				inject: func() {
					if err := f.do(c); err != nil {
						t.Errorf("%s: %v", f.name, err)
					}
				},
			}, faultProcs...)
		})
	}
}

// TestFaults_RedisFlushAllIsRecoveredByWorkersWithoutDangerousCommands runs
// the workers as a Redis user without @dangerous commands (INFO among
// them), as managed Redis services grant, and flushes Redis as the admin:
// the reconciler must still notice and recover.
func TestFaults_RedisFlushAllIsRecoveredByWorkersWithoutDangerousCommands(t *testing.T) {
	t.Parallel()
	c, _ := newFaultCluster(t, setup{})
	restricted := c.redis.AddUser("reconciler", "pass", testredis.RestrictedUser...)
	c.cmdEnv = map[string]map[string]string{"worker": {"REDIS_URL": restricted}}
	c.runFault(faultCase{
		name: "FLUSHALL (workers without @dangerous)", events: 400, duration: 8 * time.Second, at: 0.5, bound: redisLossBound, backlog: redisBacklog,
		inject: c.flushRedis,
	}, faultProcs...)
}

// Bounds of the Redis outage.
const (
	redisOutage         = 60 * time.Second
	redisOutageBound    = 20 * time.Second // to deliver everything once Redis is back
	maxOutageCPUShare   = 0.25             // of one core, per process, on average over the outage
	maxOutageLogLines   = 10               // per process over the whole outage
	minOutageWriteShare = 0.5              // of the commits the pace schedules during the outage
)

// TestFaults_RedisDownForAMinuteCostsLittleAndLosesNothing stops Redis for
// a minute in the middle of the load. Meanwhile emission keeps working (it
// needs only Postgres), the API's /healthz answers, and no process hot-loops:
// CPU and log volume stay bounded. Once Redis is back (empty), everything
// committed is delivered within the bound.
func TestFaults_RedisDownForAMinuteCostsLittleAndLosesNothing(t *testing.T) {
	t.Parallel()
	c, _ := newFaultCluster(t, setup{})
	const events, lead, trail = 700, 5 * time.Second, 5 * time.Second
	duration := lead + redisOutage + trail
	procs := append([]string{"api-1"}, faultProcs...)
	var (
		outageStart, measureStart, lastTick time.Time
		before, during                      map[string]usage
		healthChecks                        int
		healthFailures                      []string
	)
	w, _ := c.runFault(faultCase{
		name: "Redis down 60s", events: events, duration: duration, at: lead.Seconds() / duration.Seconds(), bound: redisOutageBound,
		inject: func() {
			paused := c.pauseWorkers(redisBacklog)
			outageStart = time.Now()
			c.redis.Outage(redisOutage, func() {
				if before == nil { // the first second: let the workers face the outage
					for _, p := range paused {
						p.Resume()
					}
					before, measureStart = c.usage(), time.Now()
					return
				}
				during, lastTick = c.usage(), time.Now()
				healthChecks++
				if err := c.healthz(); err != nil {
					healthFailures = append(healthFailures, fmt.Sprintf("%s: %v", time.Since(outageStart).Round(time.Second), err))
				}
			})
		},
	}, procs...)

	if len(healthFailures) > 0 {
		t.Errorf("Redis down: /healthz failed %d of %d times during the outage: %v", len(healthFailures), healthChecks, healthFailures)
	}
	scheduled := float64(events) * 0.85 * redisOutage.Seconds() / duration.Seconds()
	if n := w.committedBetween(outageStart, outageStart.Add(redisOutage)); float64(n) < minOutageWriteShare*scheduled {
		t.Errorf("Redis down: writers committed %d events during the outage, want at least %.0f (half the pace): emission must not need Redis", n, minOutageWriteShare*scheduled)
	}
	elapsed := lastTick.Sub(measureStart)
	for name, u := range during {
		cpu := u.cpu - before[name].cpu
		lines := u.lines - before[name].lines
		t.Logf("Redis down: %s used %s CPU (%.1f%% of a core) and wrote %d log lines in %s of outage",
			name, cpu.Round(time.Millisecond), 100*cpu.Seconds()/elapsed.Seconds(), lines, elapsed.Round(time.Second))
		if cpu.Seconds() > maxOutageCPUShare*elapsed.Seconds() {
			t.Errorf("Redis down: %s used %.0f%% of a core on average during the outage, want at most %.0f%% (a hot loop?)",
				name, 100*cpu.Seconds()/elapsed.Seconds(), 100*maxOutageCPUShare)
		}
		if lines > maxOutageLogLines {
			t.Errorf("Redis down: %s wrote %d log lines during the outage, want at most %d; the last ones:\n%s",
				name, lines, maxOutageLogLines, tail(c.procs[name].Output(), 1500))
		}
	}
}

// healthz asks the API process for /healthz.
func (c *cluster) healthz() error {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + c.apiAddr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
