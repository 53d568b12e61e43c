package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/migrations"
)

// riverQueue is the baseline's River queue.
const riverQueue = "bench_baseline"

// riverDeliveryArgs is the River-only design's delivery: one job per event ×
// webhook, inserted in the business transaction, carrying the event.
type riverDeliveryArgs struct {
	DeliveryID uuid.UUID       `json:"delivery_id"`
	WebhookID  uuid.UUID       `json:"webhook_id"`
	EventID    uuid.UUID       `json:"event_id"`
	EventType  string          `json:"event_type"`
	ProjectID  uuid.UUID       `json:"project_id"`
	EventAt    time.Time       `json:"event_at"`
	Data       json.RawMessage `json:"data"`
}

func (riverDeliveryArgs) Kind() string { return "bench.deliver" }

// riverDeliveryWorker is the River-only design's worker: it loads the
// webhook, POSTs the signed envelope with hookrelay's own sender, records an
// attempt row and lets River retry on failure.
type riverDeliveryWorker struct {
	river.WorkerDefaults[riverDeliveryArgs]
	pool   *pgxpool.Pool
	sender *httpsend.Sender
}

func (w *riverDeliveryWorker) Work(ctx context.Context, job *river.Job[riverDeliveryArgs]) error {
	a := job.Args
	var url, secret string
	err := w.pool.QueryRow(ctx, `SELECT url, secret FROM hookrelay.webhooks WHERE id = $1 AND is_active`, a.WebhookID).Scan(&url, &secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // webhook gone: nothing to deliver
	}
	if err != nil {
		return fmt.Errorf("load webhook: %w", err)
	}
	body, err := deliver.Envelope{ID: a.EventID, Type: a.EventType, Timestamp: a.EventAt, ProjectID: a.ProjectID, Data: a.Data}.Encode()
	if err != nil {
		return err
	}
	res := w.sender.Send(ctx, httpsend.Request{URL: url, DeliveryID: a.DeliveryID, EventType: a.EventType, Body: body, Secrets: []string{secret}})
	var status *int
	var errText *string
	if res.StatusCode != 0 {
		status = &res.StatusCode
	}
	if res.Err != nil {
		s := res.Err.Error()
		errText = &s
	}
	_, err = w.pool.Exec(ctx, `INSERT INTO bench.river_attempts
    (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, a.DeliveryID, job.Attempt, res.Started,
		float64(res.Duration)/float64(time.Millisecond), status, errText, res.Body)
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	if !res.Success() {
		return fmt.Errorf("delivery %s: attempt %d failed (status %d, %s)", a.DeliveryID, job.Attempt, res.StatusCode, res.ErrorClass)
	}
	return nil
}

// riverSettings are the River baseline client's tuning.
type riverSettings struct {
	MaxWorkers               int
	FetchCooldown, FetchPoll time.Duration
}

func (r riverSettings) String() string {
	return fmt.Sprintf("%d workers, fetch cooldown %s, fetch poll %s", r.MaxWorkers, r.FetchCooldown, r.FetchPoll)
}

// riverBaseline is a River client working the baseline queue.
type riverBaseline struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	sender *httpsend.Sender
}

func (e *env) newRiverBaseline(ctx context.Context, rs riverSettings) (*riverBaseline, error) {
	pool, err := e.newPool(ctx, e.cfg.Sizes.PoolSize)
	if err != nil {
		return nil, err
	}
	b := &riverBaseline{pool: pool, sender: httpsend.New(httpsend.Config{AllowPrivate: true})}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &riverDeliveryWorker{pool: pool, sender: b.sender}); err != nil {
		pool.Close()
		return nil, fmt.Errorf("register baseline worker: %w", err)
	}
	b.client, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:            migrations.Schema,
		Queues:            map[string]river.QueueConfig{riverQueue: {MaxWorkers: rs.MaxWorkers}},
		Workers:           workers,
		FetchCooldown:     rs.FetchCooldown,
		FetchPollInterval: rs.FetchPoll,
		Logger:            e.log,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("baseline river client: %w", err)
	}
	return b, nil
}

func (b *riverBaseline) stop(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = b.client.Stop(ctx)
	b.sender.Close()
	b.pool.Close()
}

// emit is the baseline's "deploy a config" transaction: the business row
// and one delivery job for the webhook.
func (b *riverBaseline) emit(h hook) emitFunc {
	return func(ctx context.Context, tx pgx.Tx, d deployment) (uuid.UUID, error) {
		if err := insertBusinessRow(ctx, tx, insertDeploy, d); err != nil {
			return uuid.Nil, err
		}
		args, err := deliveryArgs(h, d)
		if err != nil {
			return uuid.Nil, err
		}
		if _, err := b.client.InsertTx(ctx, tx, args, &river.InsertOpts{Queue: riverQueue}); err != nil {
			return uuid.Nil, fmt.Errorf("insert delivery job: %w", err)
		}
		return args.EventID, nil
	}
}

func deliveryArgs(h hook, d deployment) (riverDeliveryArgs, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return riverDeliveryArgs{}, fmt.Errorf("encode event: %w", err)
	}
	return riverDeliveryArgs{DeliveryID: uuid.New(), WebhookID: h.ID, EventID: uuid.New(), EventType: eventType,
		ProjectID: h.Project, EventAt: time.Now(), Data: data}, nil
}

// runRiver measures the River-only baseline: throughput on a backlog of
// Deliveries jobs, then latency at Rate per second, as the deliver and
// latency scenarios do for hookrelay.
func (e *env) runRiver(ctx context.Context) error {
	s := e.cfg.Sizes
	rs, err := e.riverSettings(ctx)
	if err != nil {
		return err
	}
	fx, err := e.fixture(ctx)
	if err != nil {
		return err
	}
	defer fx.rcv.close()
	rcv, h := fx.rcv, fx.hook
	rate, note, err := e.riverBacklog(ctx, rcv, h, s.Deliveries, rs)
	if err != nil {
		return err
	}
	e.report.add(Figure{Key: "river.throughput", Scenario: ScenarioRiver, Name: "River-only worker, deliveries/s", Value: rate,
		Unit: "deliveries/s", Note: note})
	if _, err := e.pool.Exec(ctx, `TRUNCATE hookrelay.river_job, bench.river_attempts, bench.deploys`); err != nil {
		return fmt.Errorf("empty baseline tables: %w", err)
	}
	rcv.reset()

	b, err := e.newRiverBaseline(ctx, rs)
	if err != nil {
		return err
	}
	defer b.stop(ctx)
	if err := b.client.Start(ctx); err != nil {
		return fmt.Errorf("start baseline river client: %w", err)
	}
	appPool, err := e.newPool(ctx, s.Writers+1)
	if err != nil {
		return err
	}
	defer appPool.Close()
	lat, p, err := e.measureLatency(ctx, rcv, appPool, h.Project, b.emit(h))
	if err != nil {
		return err
	}
	e.addLatencies(ScenarioRiver, "river", "River-only commit → receipt", lat, p, 0, 0)
	return nil
}

// riverBacklog inserts n jobs, then times a River client with settings rs
// working them all until River has marked every one completed. It returns
// the deliveries per second and a note on the run.
func (e *env) riverBacklog(ctx context.Context, rcv *receiver, h hook, n int, rs riverSettings) (float64, string, error) {
	b, err := e.newRiverBaseline(ctx, rs)
	if err != nil {
		return 0, "", err
	}
	defer b.stop(ctx)
	params := make([]river.InsertManyParams, 0, publishChunk)
	for done := 0; done < n; done += len(params) {
		params = params[:0]
		for k := range min(publishChunk, n-done) {
			args, err := deliveryArgs(h, newDeployment(h.Project, done+k))
			if err != nil {
				return 0, "", err
			}
			params = append(params, river.InsertManyParams{Args: args, InsertOpts: &river.InsertOpts{Queue: riverQueue}})
		}
		if _, err := b.client.InsertManyFast(ctx, params); err != nil {
			return 0, "", fmt.Errorf("insert baseline jobs: %w", err)
		}
	}
	if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE hookrelay.river_job`); err != nil {
		return 0, "", fmt.Errorf("analyse river_job: %w", err)
	}

	start := time.Now()
	if err := b.client.Start(ctx); err != nil {
		return 0, "", fmt.Errorf("start baseline river client: %w", err)
	}
	err = rcv.waitDistinct(ctx, n, backlogTimeout(n))
	if err == nil {
		err = waitUntil(ctx, time.Minute, 10*time.Millisecond, func() (bool, error) {
			var left int
			err := e.pool.QueryRow(ctx, `SELECT count(*) FROM hookrelay.river_job WHERE state <> 'completed'`).Scan(&left)
			return left == 0, err
		})
	}
	elapsed := time.Since(start)
	if err != nil {
		return 0, "", fmt.Errorf("baseline jobs: %w", err)
	}
	var attempts int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM bench.river_attempts`).Scan(&attempts); err != nil {
		return 0, "", fmt.Errorf("count baseline attempts: %w", err)
	}
	if attempts < n {
		return 0, "", fmt.Errorf("baseline recorded %d attempts for %d deliveries", attempts, n)
	}
	requests, distinct := rcv.counts()
	return float64(n) / elapsed.Seconds(), fmt.Sprintf("%d jobs in %s, %s, pool %d, %d duplicate requests",
		n, elapsed.Round(time.Millisecond), rs, e.cfg.Sizes.PoolSize, requests-distinct), nil
}
