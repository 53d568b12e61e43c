package faulttest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// cluster is one system under test: a database, a private Redis (or a Redis
// topology of the test's), a receiver and the hookrelay processes started on
// them, by name ("relay-1", "worker-2", "api-1": the part before the dash is
// the command).
type cluster struct {
	t       *testing.T
	pool    *pgxpool.Pool
	redis   *testredis.Server // nil on a topology of the test's (setup.redisURL)
	recv    *testreceiver.Receiver
	env     map[string]string
	cmdEnv  map[string]map[string]string // per command, on top of env
	apiAddr string
	hooks   []webhook

	mu       sync.Mutex
	procs    map[string]*testbin.Proc
	past     map[string][]*testbin.Proc // earlier runs of each name
	kills    int                        // SIGKILLs by chaos
	restarts int                        // processes found exited by supervise
}

// setup says what a cluster runs on; its zero value is the default.
type setup struct {
	behavior testreceiver.Behavior
	// pool and dbURL are the database; without them the cluster gets a
	// private database on the shared server (testdb).
	pool  *pgxpool.Pool
	dbURL string
	// env overrides the default settings; cmdEnv overrides them further for
	// the processes of one command ("worker", "relay", "api").
	env    map[string]string
	cmdEnv map[string]map[string]string
	// redisURL is the Redis of the processes (a Cluster, Sentinels);
	// without it the cluster gets a private redis-server (redis).
	redisURL string
}

func newCluster(t *testing.T, b testreceiver.Behavior) *cluster {
	return newClusterWith(t, setup{behavior: b})
}

func newClusterWith(t *testing.T, s setup) *cluster {
	if s.pool == nil {
		db := testdb.New(t)
		s.pool, s.dbURL = db.Pool, db.URL
	}
	var redis *testredis.Server
	if s.redisURL == "" {
		redis = testredis.StartServer(t)
		s.redisURL = redis.URL()
	}
	c := &cluster{
		t:       t,
		pool:    s.pool,
		redis:   redis,
		recv:    testreceiver.New(t),
		cmdEnv:  s.cmdEnv,
		apiAddr: fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t)),
		procs:   map[string]*testbin.Proc{},
		past:    map[string][]*testbin.Proc{},
	}
	c.recv.SetBehavior(s.behavior)
	c.env = map[string]string{
		"DATABASE_URL":                     s.dbURL,
		"REDIS_URL":                        s.redisURL,
		"HOOKRELAY_STREAM":                 streamKey,
		"HOOKRELAY_API_ADDR":               c.apiAddr,
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
	c.env = merged(c.env, s.env)
	c.hooks = createWebhooks(t, c.pool, c.recv.URL)
	return c
}

// streamKey is the Redis stream every process of a cluster uses.
const streamKey = "queues:webhooks"

func (c *cluster) start(name string) {
	cmd, _, _ := strings.Cut(name, "-")
	p := testbin.Start(c.t, name, merged(c.env, c.cmdEnv[cmd]), cmd)
	c.mu.Lock()
	if old := c.procs[name]; old != nil {
		c.past[name] = append(c.past[name], old)
	}
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

// supervise restarts, as a process supervisor would, every process that
// has exited, checking once a second, and counts the restarts, until ctx
// ends. It returns when it has stopped.
func (c *cluster) supervise(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, name := range c.names() {
				c.mu.Lock()
				p := c.procs[name]
				c.mu.Unlock()
				if !p.Exited() {
					continue
				}
				c.t.Logf("supervisor: %s exited (%v), restarting it; its last output:\n%s", name, p.Wait(time.Second), tail(p.Output(), 1500))
				c.mu.Lock()
				c.restarts++
				c.mu.Unlock()
				c.start(name)
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func (c *cluster) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.procs))
	for name := range c.procs {
		names = append(names, name)
	}
	return names
}

// usage is what a process name has cost so far, over all its runs.
type usage struct {
	cpu   time.Duration
	lines int
}

func (c *cluster) usage() map[string]usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := map[string]usage{}
	for name, p := range c.procs {
		for _, run := range append(c.past[name], p) {
			cpu, err := run.CPUTime()
			if err != nil {
				c.t.Errorf("%s: %v", name, err)
			}
			u[name] = usage{cpu: u[name].cpu + cpu, lines: u[name].lines + run.Lines()}
		}
	}
	return u
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

// backlog counts the events not yet published and the deliveries not yet
// terminal.
func (c *cluster) backlog() (unpublished, pending int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM hookrelay.outbox_unpublished),
		(SELECT count(*) FROM hookrelay.deliveries WHERE status = 'pending')`).Scan(&unpublished, &pending)
	return unpublished, pending, err
}

// pollEvery is how often the suite looks at Postgres or the receiver while
// it waits: often enough for its bounds, rarely enough to add no load.
const pollEvery = 100 * time.Millisecond

// waitQuiesced waits until every committed event is published and every
// delivery is terminal, and returns how long that took. A query that fails
// (Postgres coming back from a fault) is tried again until timeout.
func (c *cluster) waitQuiesced(timeout time.Duration) time.Duration {
	start := time.Now()
	var unpublished, pending int
	var err error
	if testwait.Poll(timeout, pollEvery, func() bool {
		unpublished, pending, err = c.backlog()
		return err == nil && unpublished == 0 && pending == 0
	}) {
		return time.Since(start)
	}
	c.t.Errorf("not quiesced after %s: %d events unpublished, %d deliveries pending (last error: %v)", timeout, unpublished, pending, err)
	c.describePending()
	if dead, err := c.redis.Client().XRange(context.Background(), streamKey+":dead", "-", "+").Result(); err == nil {
		for _, m := range dead {
			c.t.Logf("dead stream entry %s: %v", m.ID, m.Values)
		}
	}
	c.t.FailNow()
	return 0
}

// describePending logs the deliveries still pending, for the failure message.
func (c *cluster) describePending() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.pool.Query(ctx, `SELECT d.id::text, d.attempts, d.max_attempts,
		coalesce(d.next_attempt_at::text, '-'), coalesce(d.parked_at::text, '-'), coalesce(d.slot_at::text, '-'),
		d.updated_at::text, coalesce(d.last_error, '-'), coalesce(h.circuit, 'none'),
		(SELECT count(*) FROM hookrelay.river_job j WHERE j.args ->> 'delivery_id' = d.id::text AND j.state <> 'completed')
		FROM hookrelay.deliveries d LEFT JOIN hookrelay.webhook_health h ON h.webhook_id = d.webhook_id
		WHERE d.status = 'pending' LIMIT 20`)
	if err != nil {
		c.t.Logf("describe pending deliveries: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, next, parked, slot, updated, lastErr, circuit string
		var attempts, maxAttempts, jobs int
		if err := rows.Scan(&id, &attempts, &maxAttempts, &next, &parked, &slot, &updated, &lastErr, &circuit, &jobs); err != nil {
			c.t.Logf("describe pending deliveries: %v", err)
			return
		}
		c.t.Logf("pending %s: attempts %d/%d, next %s, parked %s, slot %s, updated %s, circuit %s, open retry jobs %d, last error %s",
			id, attempts, maxAttempts, next, parked, slot, updated, circuit, jobs, lastErr)
	}
}

// merged is the union of envs, a later one winning.
func merged(envs ...map[string]string) map[string]string {
	m := map[string]string{}
	for _, env := range envs {
		for k, v := range env {
			m[k] = v
		}
	}
	return m
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("...%s", s[len(s)-n:])
}
