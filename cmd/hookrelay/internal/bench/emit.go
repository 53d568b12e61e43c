package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
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
// latency and pipeline scenarios use it too.
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
	// match makes every event match the run's webhook (the relay fans each
	// out into a delivery and an XADD; no worker runs, they pile up).
	match bool
	body  emitFunc
}

// emitVariants are the variants of the emit scenario; h is the webhook that
// match variants' events match, rb an insert-only River client.
func emitVariants(h hook, rb *riverBaseline) []emitVariant {
	withJSON := func(sql string) emitFunc {
		return func(ctx context.Context, tx pgx.Tx, d deployment) (uuid.UUID, error) {
			if err := insertBusinessRow(ctx, tx, insertDeploy, d); err != nil {
				return uuid.Nil, err
			}
			data, err := json.Marshal(d)
			if err != nil {
				return uuid.Nil, fmt.Errorf("encode event: %w", err)
			}
			if _, err := tx.Exec(ctx, sql, eventType, d.ProjectID, data); err != nil {
				return uuid.Nil, fmt.Errorf("write event: %w", err)
			}
			return uuid.Nil, nil
		}
	}
	businessRow := func(sql string) emitFunc {
		return func(ctx context.Context, tx pgx.Tx, d deployment) (uuid.UUID, error) {
			return uuid.Nil, insertBusinessRow(ctx, tx, sql, d)
		}
	}
	return []emitVariant{
		{key: "none", name: "no event", body: businessRow(insertDeploy)},
		{key: "plain", name: "plain event row (floor)",
			body: withJSON(`INSERT INTO bench.events (event_type, project_id, data) VALUES ($1, $2, $3)`)},
		{key: "go", name: "hookrelay Go outbox.Emit", body: emitGo},
		{key: "sql", name: "hookrelay SQL hookrelay.emit()", body: withJSON(`SELECT hookrelay.emit($1, $2, $3)`)},
		{key: "trigger", name: "hookrelay trigger emit_row_change", body: businessRow(insertDeployEmitting)},
		{key: "go_idle", name: "hookrelay Go, relay idle (NOTIFY)", idle: true, body: emitGo},
		{key: "go_relay", name: "hookrelay Go, relay running (events match no webhook)", relay: true, body: emitGo},
		{key: "go_relay_match", name: "hookrelay Go, relay running (events match one webhook)", relay: true, match: true, body: emitGo},
		{key: "river_insert", name: "River job inserted instead of an event", match: true, body: rb.emit(h)},
	}
}

// runEmit measures the "deploy a config" transaction's rate at each count
// of EmitWriters concurrent writers in every variant, EmitRounds times, and
// reports each variant's median round with its ratios to the plain-row
// variant and to no event. Every variant except go_idle and go_relay* runs
// with the relay idle flag off (a busy relay: writers send no NOTIFY);
// go_relay* run a real relay that keeps up, and leave the flag to it.
func (e *env) runEmit(ctx context.Context) error {
	s := e.cfg.Sizes
	h, err := e.webhook(ctx, "http://127.0.0.1:9/unused")
	if err != nil {
		return err
	}
	rb, err := e.newRiverBaseline(ctx, e.river) // inserts only; never started
	if err != nil {
		return err
	}
	defer rb.stop(ctx)
	variants := emitVariants(h, rb)
	for _, writers := range s.EmitWriters {
		if err := e.emitAt(ctx, writers, h, variants); err != nil {
			return fmt.Errorf("%d writers: %w", writers, err)
		}
	}
	return nil
}

// emitAt measures and reports every variant at writers concurrent writers.
func (e *env) emitAt(ctx context.Context, writers int, h hook, variants []emitVariant) error {
	pool, err := e.newPool(ctx, writers+1)
	if err != nil {
		return err
	}
	defer pool.Close()
	rates := make(map[string][]float64)
	for round := range e.cfg.Sizes.EmitRounds {
		for _, v := range variants {
			rate, err := e.emitRound(ctx, pool, writers, h, v)
			if err != nil {
				return fmt.Errorf("variant %s: %w", v.key, err)
			}
			e.log.Info("bench: emit", "writers", writers, "round", round+1, "variant", v.key, "tx_per_s", int(rate))
			rates[v.key] = append(rates[v.key], rate)
		}
	}
	none, plain, goRate := median(rates["none"]), median(rates["plain"]), median(rates["go"])
	for _, v := range variants {
		rate := median(rates[v.key])
		f := Figure{Key: fmt.Sprintf("emit.w%d.%s", writers, v.key), Scenario: ScenarioEmit, Name: v.name, Value: rate, Unit: "tx/s",
			Note: fmt.Sprintf("%d writers; %.2f× no event", writers, rate/none)}
		switch v.key {
		case "none":
			f.Note = fmt.Sprintf("%d writers, one-insert transaction", writers)
		case "go", "sql", "trigger", "go_relay", "go_relay_match":
			f.Goal, f.Ratio, f.RatioOf = "≥ 0.95× plain", rate/plain, "plain"
			f.Verdict = verdict(rate >= 0.95*plain)
		case "river_insert":
			f.Ratio, f.RatioOf = rate/plain, "plain"
			f.Note += fmt.Sprintf("; hookrelay Go emit is %.2f× this", goRate/rate)
		default:
			f.Ratio, f.RatioOf = rate/plain, "plain"
		}
		e.report.add(f)
	}
	return nil
}

// emitRound runs one variant for EmitDuration from empty tables and returns
// its committed transactions per second.
func (e *env) emitRound(ctx context.Context, pool *pgxpool.Pool, writers int, h hook, v emitVariant) (float64, error) {
	if _, err := e.pool.Exec(ctx, `TRUNCATE bench.deploys, bench.deploys_emitting, bench.events, hookrelay.outbox,
hookrelay.deliveries, hookrelay.delivery_attempts, hookrelay.river_job`); err != nil {
		return 0, fmt.Errorf("empty tables: %w", err)
	}
	if _, err := e.pool.Exec(ctx, `SELECT setval('hookrelay.relay_idle', $1::boolean::int)`, v.idle); err != nil {
		return 0, fmt.Errorf("set relay idle=%t: %w", v.idle, err)
	}
	if v.relay {
		key, _ := e.stream()
		stop, err := e.runRelay(ctx, key)
		if err != nil {
			return 0, err
		}
		defer e.rdb.Del(context.WithoutCancel(ctx), key) // the deliveries of go_relay_match pile up there
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
	project := uuid.Nil // a project of its own per writer: no webhook matches
	if v.match {
		project = h.Project
	}
	w, err := writeFor(ctx, pool, writers, e.cfg.Sizes.EmitDuration, project, v.body)
	if err != nil {
		return 0, err
	}
	return w.rate(), nil
}

// commit is one committed "deploy a config" transaction.
type commit struct {
	event uuid.UUID // the event's id, if the body returned one
	at    time.Time // when COMMIT returned
}

// written is what writeFor's writers committed.
type written struct {
	start, end time.Time // the first BEGIN, the last writer's end
	commits    []commit
}

// rate is the committed transactions per second while writing.
func (w written) rate() float64 { return float64(len(w.commits)) / w.end.Sub(w.start).Seconds() }

// writeFor has writers concurrent writers commit "deploy a config"
// transactions with body back to back (closed loop) for d. Their
// deployments belong to project, or with uuid.Nil to a project per writer.
func writeFor(ctx context.Context, pool *pgxpool.Pool, writers int, d time.Duration, project uuid.UUID, body emitFunc) (written, error) {
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		logs     = make([][]commit, writers)
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := project
			if p == uuid.Nil {
				p = uuid.New()
			}
			for n := 0; time.Now().Before(deadline); n++ {
				var id uuid.UUID
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					var err error
					id, err = body(ctx, tx, newDeployment(p, n))
					return err
				})
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("writer %d: %w", w, err) })
					return
				}
				logs[w] = append(logs[w], commit{event: id, at: time.Now()})
			}
		}()
	}
	wg.Wait()
	out := written{start: start, end: time.Now()}
	if firstErr != nil {
		return out, firstErr
	}
	for _, l := range logs {
		out.commits = append(out.commits, l...)
	}
	return out, nil
}

// runRelay starts a relay with its own pool on stream key, as a user runs
// one, until the returned stop is called.
func (e *env) runRelay(ctx context.Context, key string) (stop func(), err error) {
	pool, err := e.newPool(ctx, 4)
	if err != nil {
		return nil, err
	}
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
