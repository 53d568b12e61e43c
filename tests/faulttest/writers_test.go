package faulttest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/outbox"
)

type event struct {
	marker, typ, env string
}

// written is what the writers did. Only events known to be committed are
// in committed: a transaction that failed was tried again, and one whose
// COMMIT failed was looked up to learn whether it had committed.
type written struct {
	committed   map[uuid.UUID]event
	rolledBack  map[string]bool // markers
	commitTimes []time.Time     // when each commit returned
	retries     int             // transactions tried again after an error
	ambiguous   int             // failed COMMITs resolved by looking the event up
}

// committedBetween counts the commits that returned in [from, to].
func (w written) committedBetween(from, to time.Time) int {
	n := 0
	for _, at := range w.commitTimes {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// writers is a load in progress.
type writers struct {
	c      *cluster
	n      int
	issued atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	w      written
}

// writeRetryFor bounds how long a writer keeps trying one transaction (a
// Postgres outage lasts 45 s).
const writeRetryFor = 2 * time.Minute

// startWriting emits n events from 8 concurrent writers at a steady pace
// over about duration, through Go, SQL and the trigger in turn, rolling back
// about 15 %, with a random delay between the insert and the commit.
func (c *cluster) startWriting(n int, duration time.Duration) *writers {
	ws := &writers{c: c, n: n, w: written{committed: map[uuid.UUID]event{}, rolledBack: map[string]bool{}}}
	start := time.Now()
	for g := range 8 {
		ws.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for {
				i := int(ws.issued.Add(1)) - 1
				if i >= n {
					return
				}
				if d := time.Until(start.Add(time.Duration(i) * duration / time.Duration(n))); d > 0 {
					time.Sleep(d) // pacing, not synchronisation
				}
				ev := event{marker: uuid.NewString(), env: []string{"production", "staging"}[rng.IntN(2)]}
				rollback := rng.Float64() < 0.15
				if err := ws.emit(i%3, &ev, rollback, time.Duration(rng.IntN(3000))*time.Microsecond); err != nil {
					c.t.Errorf("writer %d, event %d: %v", g, i, err)
					return
				}
			}
		})
	}
	return ws
}

// waitIssued waits until the writers have begun k events.
func (ws *writers) waitIssued(k int) {
	testwait.Until(ws.c.t, writeRetryFor, func() bool { return ws.issued.Load() >= int64(k) },
		func() string { return fmt.Sprintf("writers began %d events, want %d", ws.issued.Load(), k) })
}

// wait waits for the writers to finish and returns what they did.
func (ws *writers) wait() written {
	ws.wg.Wait()
	return ws.w
}

// write is a whole load with midpoint run once, halfway.
func (c *cluster) write(n int, duration time.Duration, midpoint func()) written {
	ws := c.startWriting(n, duration)
	ws.waitIssued(n / 2)
	midpoint()
	return ws.wait()
}

// emit runs one writer transaction until it is known to have committed or
// not, trying again after errors, and records the outcome.
func (ws *writers) emit(path int, ev *event, rollback bool, delay time.Duration) error {
	deadline := time.Now().Add(writeRetryFor)
	for try := 0; ; try++ {
		id, atCommit, err := ws.c.emitOne(path, ev, rollback, delay)
		committed := err == nil && !rollback
		if err != nil && atCommit && !rollback {
			ws.mu.Lock()
			ws.w.ambiguous++
			ws.mu.Unlock()
			if committed, err = ws.c.eventExists(id, deadline); err != nil {
				return fmt.Errorf("resolve a failed COMMIT: %w", err)
			}
		}
		ws.mu.Lock()
		switch {
		case committed:
			ws.w.committed[id] = *ev
			ws.w.commitTimes = append(ws.w.commitTimes, time.Now())
		case rollback:
			ws.w.rolledBack[ev.marker] = true // rolled back, or failed: never committed
		default:
			ws.w.retries++
		}
		ws.mu.Unlock()
		if committed || rollback {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not committed after %d tries over %s: %w", try+1, writeRetryFor, err)
		}
		time.Sleep(100 * time.Millisecond) // back off before the next try
	}
}

// eventExists says whether the event id was committed, asking Postgres
// until it answers or deadline passes.
func (c *cluster) eventExists(id uuid.UUID, deadline time.Time) (bool, error) {
	var exists bool
	var err error
	testwait.Poll(time.Until(deadline), pollEvery, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = c.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hookrelay.outbox WHERE id = $1)`, id).Scan(&exists)
		return err == nil
	})
	return exists, err
}

// emitOne runs one transaction. atCommit says that an error came from
// COMMIT itself, after which the transaction may or may not have committed.
func (c *cluster) emitOne(path int, ev *event, rollback bool, delay time.Duration) (id uuid.UUID, atCommit bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return uuid.Nil, false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	data := map[string]any{"marker": ev.marker, "environment": map[string]string{"name": ev.env}}
	switch path {
	case 0:
		ev.typ = "thing.happened"
		id, err = outbox.Emit(ctx, tx, outbox.Event{Type: ev.typ, ProjectID: project, Data: data})
	case 1:
		ev.typ = "thing.happened"
		err = tx.QueryRow(ctx, "SELECT hookrelay.emit($1, $2, $3)", ev.typ, project, data).Scan(&id)
	default:
		ev.typ = "config.deployed"
		id, err = deployConfig(ctx, tx, ev)
	}
	if err != nil {
		return uuid.Nil, false, err
	}
	time.Sleep(delay) // hold the transaction open so commits land out of order
	if rollback {
		return id, false, tx.Rollback(ctx)
	}
	if err := tx.Commit(ctx); err != nil {
		return id, true, err
	}
	return id, false, nil
}

// deployConfig is the trigger path: the example tables emit config.deployed.
func deployConfig(ctx context.Context, tx pgx.Tx, ev *event) (uuid.UUID, error) {
	app := uuid.New()
	var cfg, id uuid.UUID
	err := tx.QueryRow(ctx, `INSERT INTO hookrelay_example.configs
		(project_id, application_id, application_slug, variant_id, variant_slug, version, params)
		VALUES ($1, $2, 'app', gen_random_uuid(), 'v', 1, '{}') RETURNING id`, project, app).Scan(&cfg)
	if err != nil {
		return uuid.Nil, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO hookrelay_example.environments (project_id, application_id, name, config_id, deployed_by)
		VALUES ($1, $2, $3, $4, $5)`, project, app, ev.env, cfg, ev.marker)
	if err != nil {
		return uuid.Nil, err
	}
	err = tx.QueryRow(ctx, `SELECT id FROM hookrelay.outbox WHERE project_id = $1 AND data->>'deployed_by' = $2`,
		project, ev.marker).Scan(&id)
	return id, err
}
