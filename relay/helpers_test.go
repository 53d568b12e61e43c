package relay_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// env is one test's private database, stream and project.
type env struct {
	t       testing.TB
	pool    *pgxpool.Pool
	rdb     *redis.Client
	stream  string
	project uuid.UUID
}

// newEnv gives the test its own database (with a pool large enough for
// concurrent writers plus relays), stream key and project.
func newEnv(t testing.TB, maxConns int32) *env {
	t.Helper()
	return newEnvAt(t, testdb.New(t).URL, maxConns)
}

// newEnvAt is newEnv on the migrated database at url.
func newEnvAt(t testing.TB, url string, maxConns int32) *env {
	t.Helper()
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // runs before the database is dropped
	rdb, keys := testredis.New(t)
	return &env{t: t, pool: pool, rdb: rdb, stream: keys.Stream, project: uuid.New()}
}

// relay returns a relay of the env's stream; if started, it is stopped when
// the test ends.
func (e *env) relay(poll time.Duration, batch int, start bool) (*relay.Relay, *metrics.Metrics) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	r := relay.New(e.pool, e.rdb, relay.Config{Stream: e.stream, BatchSize: batch, PollInterval: poll, MaxAttempts: 5}, reg, nil)
	if start {
		if err := r.Start(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.Stop(ctx); err != nil {
				e.t.Error(err)
			}
		})
	}
	return r, m
}

// webhook is the subset of a webhook row the fan-out reads.
type webhook struct {
	project     uuid.UUID
	eventTypes  []string
	application *uuid.UUID
	environment *string
	inactive    bool
}

func (e *env) addWebhook(w webhook) uuid.UUID {
	e.t.Helper()
	if w.project == uuid.Nil {
		w.project = e.project
	}
	var id uuid.UUID
	err := e.pool.QueryRow(context.Background(), `
		INSERT INTO hookrelay.webhooks (project_id, name, url, secret, event_types, application_id, environment_name, is_active)
		VALUES ($1, 'test', 'http://127.0.0.1:1/hook', 'whsec_test', $2, $3, $4, $5) RETURNING id`,
		w.project, w.eventTypes, w.application, w.environment, !w.inactive).Scan(&id)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// emit commits one event of the env's project in its own transaction.
func (e *env) emit(typ string, data any) uuid.UUID {
	e.t.Helper()
	id, err := outbox.Emit(context.Background(), e.pool, outbox.Event{Type: typ, ProjectID: e.project, Data: data})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// streamDeliveries reads every delivery id on the stream.
func (e *env) streamDeliveries() []uuid.UUID {
	e.t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), e.stream, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]uuid.UUID, 0, len(msgs))
	for _, m := range msgs {
		id, err := stream.DeliveryID(m)
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// eventsOnStream maps the delivery ids on the stream back to their events.
// Every id on the stream must name an existing delivery.
func (e *env) eventsOnStream() map[uuid.UUID]bool {
	e.t.Helper()
	ids := e.streamDeliveries()
	rows, _ := e.pool.Query(context.Background(),
		`SELECT id, event_id FROM hookrelay.deliveries WHERE id = ANY ($1)`, ids)
	found := map[uuid.UUID]uuid.UUID{}
	var d, ev uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&d, &ev}, func() error { found[d] = ev; return nil }); err != nil {
		e.t.Fatal(err)
	}
	events := map[uuid.UUID]bool{}
	for _, id := range ids {
		ev, ok := found[id]
		if !ok {
			e.t.Fatalf("stream entry names delivery %s, which does not exist", id)
		}
		events[ev] = true
	}
	return events
}

// allOnStream reports whether every one of events has a delivery on the stream.
func (e *env) allOnStream(events []uuid.UUID) bool {
	on := e.eventsOnStream()
	for _, id := range events {
		if !on[id] {
			return false
		}
	}
	return true
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) unpublished() int {
	return e.count(`SELECT count(*) FROM hookrelay.outbox_unpublished`)
}

func (e *env) idle() bool {
	e.t.Helper()
	var idle int64
	if err := e.pool.QueryRow(context.Background(), `SELECT last_value FROM hookrelay.relay_idle`).Scan(&idle); err != nil {
		e.t.Fatal(err)
	}
	return idle == 1
}

// load describes concurrent writers: each runs txs transactions of
// eventsPerTx events, waits up to maxDelay between its inserts and its
// commit, and rolls back with probability rollback.
type load struct {
	writers, txs, eventsPerTx int
	maxDelay                  time.Duration
	rollback                  float64
}

// write runs the load until done or ctx ends, and returns the ids of the
// events that committed and of those that were rolled back. It fails the
// test on error, so call it from the test's goroutine.
func (e *env) write(ctx context.Context, l load) (committed, rolledBack []uuid.UUID) {
	e.t.Helper()
	committed, rolledBack, err := e.tryWrite(ctx, l)
	if err != nil {
		e.t.Fatal(err)
	}
	return committed, rolledBack
}

// tryWrite is write for any goroutine.
func (e *env) tryWrite(ctx context.Context, l load) (committed, rolledBack []uuid.UUID, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, l.writers)
	for range l.writers {
		wg.Go(func() {
			for i := 0; i < l.txs && ctx.Err() == nil; i++ {
				ids, commit, err := e.writeTx(ctx, l)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				mu.Lock()
				if commit {
					committed = append(committed, ids...)
				} else {
					rolledBack = append(rolledBack, ids...)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	return committed, rolledBack, <-errs
}

func (e *env) writeTx(ctx context.Context, l load) (ids []uuid.UUID, commit bool, err error) {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck
	for range l.eventsPerTx {
		id, err := outbox.Emit(ctx, tx, outbox.Event{Type: "config.deployed", ProjectID: e.project, Data: map[string]any{"n": len(ids)}})
		if err != nil {
			return nil, false, fmt.Errorf("emit: %w", err)
		}
		ids = append(ids, id)
	}
	if l.maxDelay > 0 {
		time.Sleep(rand.N(l.maxDelay)) // the delay between insert and commit is the point of the load
	}
	if rand.Float64() < l.rollback {
		return ids, false, tx.Rollback(ctx)
	}
	return ids, true, tx.Commit(ctx)
}
