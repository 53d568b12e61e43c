package deliver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/jobs"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/receiver"
	"github.com/hookrelay/hookrelay/internal/stream"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/outbox"
)

// harness is one test's world: a private database, private stream keys, a
// running River client and the metrics the worker reports to.
type harness struct {
	t       testing.TB
	db      *testdb.DB
	rdb     redis.UniversalClient
	keys    testredis.Keys
	reg     *prometheus.Registry
	m       *metrics.Metrics
	jobs    *jobs.Client
	project uuid.UUID
}

// newHarness uses the shared Redis with private keys.
func newHarness(t testing.TB) *harness {
	rdb, keys := testredis.New(t)
	return newHarnessWith(t, rdb, keys)
}

func newHarnessWith(t testing.TB, rdb redis.UniversalClient, keys testredis.Keys) *harness {
	return newShardedHarness(t, rdb, keys, 1)
}

// newShardedHarness is newHarnessWith whose River jobs (retries, parked,
// recoveries) publish on shards stream keys.
func newShardedHarness(t testing.TB, rdb redis.UniversalClient, keys testredis.Keys, shards int) *harness {
	t.Helper()
	h := &harness{t: t, db: testdb.New(t), rdb: rdb, keys: keys, reg: prometheus.NewRegistry(), project: uuid.New()}
	h.m = metrics.New(h.reg)
	t.Cleanup(func() { rdb.Del(context.Background(), deliver.DeadStream(keys.Stream)) })
	workers := river.NewWorkers()
	if err := deliver.AddWorkers(workers, h.db.Pool, rdb, deliver.Streams{Base: keys.Stream, N: shards}, h.reg, nil); err != nil {
		t.Fatal(err)
	}
	jc, err := jobs.New(h.db.Pool, jobs.Config{Workers: workers, FetchPollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := jc.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := jc.Stop(ctx); err != nil {
			t.Log(err)
		}
	})
	h.jobs = jc
	return h
}

// config is a worker configuration for loopback receivers and quick retries.
func (h *harness) config() deliver.Config {
	return deliver.Config{
		Stream:        h.keys.Stream,
		Group:         h.keys.Group,
		Concurrency:   4,
		ClaimIdle:     time.Minute,
		RetrySchedule: []time.Duration{200 * time.Millisecond},
		MaxAttempts:   3,
		Send: httpsend.Config{
			Timeout:       2 * time.Second,
			AllowPrivate:  true,
			RetryAfterMax: 5 * time.Second,
		},
	}
}

// startWorker starts a worker that is stopped when the test ends.
func (h *harness) startWorker(cfg deliver.Config) *deliver.Worker {
	h.t.Helper()
	w, err := deliver.NewWorker(h.db.Pool, h.rdb, h.jobs.River(), cfg, h.reg, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := w.Start(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// hook is a webhook row.
type hook struct {
	ID     uuid.UUID
	Secret string
}

// webhook inserts an active webhook subscribed to everything.
func (h *harness) webhook(url string) hook {
	h.t.Helper()
	wh := hook{Secret: "whsec_" + uuid.NewString()}
	err := h.db.Pool.QueryRow(h.t.Context(), `
		INSERT INTO hookrelay.webhooks (project_id, name, url, secret, event_types, headers)
		VALUES ($1, 'test', $2, $3, '{*}', '{"X-Custom": "yes"}') RETURNING id`,
		h.project, url, wh.Secret).Scan(&wh.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return wh
}

// exec runs SQL that must succeed.
func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.db.Pool.Exec(h.t.Context(), sql, args...); err != nil {
		h.t.Fatal(err)
	}
}

// eventData is the data of the test events.
var eventData = map[string]any{
	"application": map[string]any{"id": "4f1c2a9e-0000-4000-8000-000000000001", "slug": "checkout"},
	"environment": map[string]any{"name": "production"},
	"deployed_by": "ada@example.com",
}

// delivery emits an event, creates its delivery for webhookID with
// maxAttempts, and publishes it; it returns the delivery id.
func (h *harness) delivery(webhookID uuid.UUID, maxAttempts int) uuid.UUID {
	h.t.Helper()
	id := h.createDelivery(webhookID, maxAttempts)
	h.publish(id)
	return id
}

func (h *harness) createDelivery(webhookID uuid.UUID, maxAttempts int) uuid.UUID {
	h.t.Helper()
	ctx := h.t.Context()
	eventID, err := outbox.Emit(ctx, h.db.Pool, outbox.Event{Type: "config.deployed", ProjectID: h.project, Data: eventData})
	if err != nil {
		h.t.Fatal(err)
	}
	var id uuid.UUID
	err = h.db.Pool.QueryRow(ctx, `
		INSERT INTO hookrelay.deliveries (event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts)
		SELECT id, $2, project_id, event_type, data, created_at, $3 FROM hookrelay.outbox WHERE id = $1
		RETURNING id`, eventID, webhookID, maxAttempts).Scan(&id)
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) publish(ids ...uuid.UUID) {
	h.t.Helper()
	if err := (stream.Shards{Base: h.keys.Stream}).PublishWebhook(h.t.Context(), h.rdb, uuid.Nil, ids...); err != nil {
		h.t.Fatal(err)
	}
}

// deliveryRow is the state of a delivery.
type deliveryRow struct {
	Status      string
	Attempts    int
	MaxAttempts int
	LastStatus  *int
	LastError   *string
	NextAt      *time.Time
	DeliveredAt *time.Time
}

func (h *harness) state(id uuid.UUID) deliveryRow {
	h.t.Helper()
	var d deliveryRow
	err := h.db.Pool.QueryRow(context.Background(), `
		SELECT status, attempts, max_attempts, last_response_status, last_error, next_attempt_at, delivered_at
		FROM hookrelay.deliveries WHERE id = $1`, id).
		Scan(&d.Status, &d.Attempts, &d.MaxAttempts, &d.LastStatus, &d.LastError, &d.NextAt, &d.DeliveredAt)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// waitStatus waits until the delivery has status and returns its state.
func (h *harness) waitStatus(id uuid.UUID, status string, within time.Duration) deliveryRow {
	h.t.Helper()
	var d deliveryRow
	testwait.Until(h.t, within, func() bool { d = h.state(id); return d.Status == status },
		func() string { return "delivery status " + d.Status + ", want " + status })
	return d
}

// attemptRow is one audit row.
type attemptRow struct {
	Attempt    int
	StartedAt  time.Time
	DurationMS float64
	StatusCode *int
	ErrorClass *string
	Error      *string
	Body       *string
}

func (h *harness) attempts(id uuid.UUID) []attemptRow {
	h.t.Helper()
	rows, err := h.db.Pool.Query(context.Background(), `
		SELECT attempt, started_at, duration_ms, status_code, error_class, error, response_body
		FROM hookrelay.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, id)
	if err != nil {
		h.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[attemptRow])
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// newReceiver starts a receiver whose answers respond scripts; nil answers
// 200 {"ok":true}.
func newReceiver(t testing.TB, respond receiver.Respond) *receiver.Receiver {
	if respond == nil {
		respond = func(_ int, w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]bool{"ok": true})
		}
	}
	return testreceiver.Start(t, receiver.Options{Respond: respond})
}

// statusThen answers code to the first n requests and 200 afterwards.
func statusThen(code, n int) func(int, http.ResponseWriter, *http.Request) {
	return func(i int, w http.ResponseWriter, _ *http.Request) {
		if i <= n {
			w.WriteHeader(code)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}
