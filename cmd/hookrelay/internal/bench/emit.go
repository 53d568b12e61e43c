package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// deployment is the business row of the "deploy a config" transaction and
// the data of the config.deployed event it causes.
type deployment struct {
	ProjectID     uuid.UUID      `json:"-"`
	ConfigID      uuid.UUID      `json:"-"`
	Application   appRef         `json:"application"`
	Variant       variantRef     `json:"variant"`
	Environment   environmentRef `json:"environment"`
	Params        map[string]any `json:"params"`
	DeployedBy    string         `json:"deployed_by"`
	CommitMessage string         `json:"commit_message"`
}

type appRef struct {
	ID   uuid.UUID `json:"id"`
	Slug string    `json:"slug"`
}

type variantRef struct {
	ID      uuid.UUID `json:"id"`
	Slug    string    `json:"slug"`
	Version int       `json:"version"`
}

type environmentRef struct {
	Name string `json:"name"`
}

const eventType = "config.deployed"

// newDeployment makes the n-th deployment of a project.
func newDeployment(project uuid.UUID, n int) deployment {
	return deployment{
		ProjectID:     project,
		ConfigID:      uuid.New(),
		Application:   appRef{ID: uuid.New(), Slug: "support-bot"},
		Variant:       variantRef{ID: uuid.New(), Slug: "gpt-large", Version: n},
		Environment:   environmentRef{Name: "production"},
		Params:        map[string]any{"temperature": 0.2, "model": "large", "max_tokens": 512},
		DeployedBy:    "ops@example.com",
		CommitMessage: "tune the prompt",
	}
}

const insertDeploySQL = `INSERT INTO %s (project_id, application_id, environment, config_id, deployed_by)
VALUES ($1, $2, $3, $4, $5)`

var (
	insertDeploy         = fmt.Sprintf(insertDeploySQL, "bench.deploys")
	insertDeployEmitting = fmt.Sprintf(insertDeploySQL, "bench.deploys_emitting")
)

// insertBusinessRow writes the deployment's business row into table's insert.
func insertBusinessRow(ctx context.Context, tx pgx.Tx, sql string, d deployment) error {
	_, err := tx.Exec(ctx, sql, d.ProjectID, d.Application.ID, d.Environment.Name, d.ConfigID, d.DeployedBy)
	if err != nil {
		return fmt.Errorf("insert deployment: %w", err)
	}
	return nil
}

// emitGo is the "deploy a config" transaction's body with Go emission; the
// latency scenario uses it too.
func emitGo(ctx context.Context, tx pgx.Tx, d deployment) (uuid.UUID, error) {
	if err := insertBusinessRow(ctx, tx, insertDeploy, d); err != nil {
		return uuid.Nil, err
	}
	return outbox.Emit(ctx, tx, outbox.Event{Type: eventType, ProjectID: d.ProjectID, Data: d})
}

// emitVariant is one way of doing the "deploy a config" transaction.
type emitVariant struct {
	key, name string
	idle      bool // the relay idle flag during the run (true: writers NOTIFY)
	// relay runs a real relay during the round, which sets the idle flag as
	// it goes: the case of a user whose relay keeps up.
	relay bool
	body  func(ctx context.Context, tx pgx.Tx, d deployment) error
}

func emitVariants() []emitVariant {
	withJSON := func(sql string) func(ctx context.Context, tx pgx.Tx, d deployment) error {
		return func(ctx context.Context, tx pgx.Tx, d deployment) error {
			if err := insertBusinessRow(ctx, tx, insertDeploy, d); err != nil {
				return err
			}
			data, err := json.Marshal(d)
			if err != nil {
				return fmt.Errorf("encode event: %w", err)
			}
			if _, err := tx.Exec(ctx, sql, eventType, d.ProjectID, data); err != nil {
				return fmt.Errorf("write event: %w", err)
			}
			return nil
		}
	}
	goEmit := func(ctx context.Context, tx pgx.Tx, d deployment) error {
		_, err := emitGo(ctx, tx, d)
		return err
	}
	return []emitVariant{
		{key: "none", name: "no event", body: func(ctx context.Context, tx pgx.Tx, d deployment) error {
			return insertBusinessRow(ctx, tx, insertDeploy, d)
		}},
		{key: "plain", name: "plain event row (floor)",
			body: withJSON(`INSERT INTO bench.events (event_type, project_id, data) VALUES ($1, $2, $3)`)},
		{key: "go", name: "hookrelay Go outbox.Emit", body: goEmit},
		{key: "sql", name: "hookrelay SQL hookrelay.emit()", body: withJSON(`SELECT hookrelay.emit($1, $2, $3)`)},
		{key: "trigger", name: "hookrelay trigger emit_row_change", body: func(ctx context.Context, tx pgx.Tx, d deployment) error {
			return insertBusinessRow(ctx, tx, insertDeployEmitting, d)
		}},
		{key: "go_idle", name: "hookrelay Go, relay idle (NOTIFY)", idle: true, body: goEmit},
		{key: "go_relay", name: "hookrelay Go, relay running (events match no webhook)", relay: true, body: goEmit},
	}
}

// runEmit measures the "deploy a config" transaction's rate with Writers
// concurrent writers in every variant, EmitRounds times, and reports each
// variant's median round with its ratios to the plain-row variant and to no
// event. Every variant except go_idle and go_relay runs with the relay idle
// flag off (a busy relay: writers send no NOTIFY); go_relay runs a real
// relay that keeps up, and leaves the flag to it.
func (e *env) runEmit(ctx context.Context) error {
	s := e.cfg.Sizes
	pool, err := e.newPool(ctx, s.Writers+1)
	if err != nil {
		return err
	}
	defer pool.Close()
	variants := emitVariants()
	rates := make(map[string][]float64)
	for round := range s.EmitRounds {
		for _, v := range variants {
			rate, err := e.emitRound(ctx, pool, v)
			if err != nil {
				return fmt.Errorf("variant %s: %w", v.key, err)
			}
			e.log.Info("bench: emit", "round", round+1, "variant", v.key, "tx_per_s", int(rate))
			rates[v.key] = append(rates[v.key], rate)
		}
	}
	none, plain := median(rates["none"]), median(rates["plain"])
	for _, v := range variants {
		rate := median(rates[v.key])
		f := Figure{Key: "emit." + v.key, Scenario: ScenarioEmit, Name: v.name, Value: rate, Unit: "tx/s",
			Note: fmt.Sprintf("%d writers; %.2f× no event", s.Writers, rate/none)}
		switch v.key {
		case "none":
			f.Note = fmt.Sprintf("%d writers, one-insert transaction", s.Writers)
		case "plain":
			f.Ratio, f.RatioOf = rate/plain, "plain"
		case "go", "sql", "trigger", "go_relay":
			f.Goal, f.Ratio, f.RatioOf = "≥ 0.95× plain", rate/plain, "plain"
			f.Verdict = verdict(rate >= 0.95*plain)
		default:
			f.Ratio, f.RatioOf = rate/plain, "plain"
		}
		e.report.add(f)
	}
	return nil
}

// emitRound runs one variant for EmitDuration from empty tables and returns
// its committed transactions per second.
func (e *env) emitRound(ctx context.Context, pool *pgxpool.Pool, v emitVariant) (float64, error) {
	s := e.cfg.Sizes
	if _, err := e.pool.Exec(ctx, `TRUNCATE bench.deploys, bench.deploys_emitting, bench.events, hookrelay.outbox`); err != nil {
		return 0, fmt.Errorf("empty tables: %w", err)
	}
	if _, err := e.pool.Exec(ctx, `SELECT setval('hookrelay.relay_idle', $1::boolean::int)`, v.idle); err != nil {
		return 0, fmt.Errorf("set relay idle=%t: %w", v.idle, err)
	}
	if v.relay {
		stop, err := e.runRelay(ctx)
		if err != nil {
			return 0, err
		}
		defer stop()
	}
	if v.idle {
		// A relay listens while idle; NOTIFY's commit-time cost is the same
		// without one, but the queue must be read to stay small.
		stop, err := e.listen(ctx)
		if err != nil {
			return 0, err
		}
		defer stop()
	}
	var (
		committed atomic.Int64
		wg        sync.WaitGroup
		errOnce   sync.Once
		firstErr  error
	)
	start := time.Now()
	deadline := start.Add(s.EmitDuration)
	for w := range s.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			project := uuid.New()
			for n := 0; time.Now().Before(deadline); n++ {
				d := newDeployment(project, n)
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return v.body(ctx, tx, d) })
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("writer %d: %w", w, err) })
					return
				}
				committed.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(committed.Load()) / elapsed.Seconds(), nil
}

// runRelay starts a relay with its own pool and stream key, as a user runs
// one, until the returned stop is called.
func (e *env) runRelay(ctx context.Context) (stop func(), err error) {
	pool, err := e.newPool(ctx, 4)
	if err != nil {
		return nil, err
	}
	key, _ := e.stream()
	r := relay.New(pool, e.rdb, relay.Config{Stream: key, BatchSize: e.cfg.Sizes.RelayBatch}, nil, e.log.With("service", "relay"))
	if err := r.Start(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.Stop(sctx); err != nil {
			e.log.Warn("bench: stop relay", "err", err)
		}
		pool.Close()
		e.rdb.Del(sctx, key)
	}, nil
}

// listen keeps a connection LISTENing on the relay's channel, as an idle
// relay would, until the returned stop is called.
func (e *env) listen(ctx context.Context) (stop func(), err error) {
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return nil, fmt.Errorf("listen: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN hookrelay_outbox"); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("listen: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := conn.WaitForNotification(lctx); err != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		conn.Close(context.WithoutCancel(ctx))
	}, nil
}

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
