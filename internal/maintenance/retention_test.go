package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/hookrelay/hookrelay/internal/maintenance"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
)

const day = 24 * time.Hour

// fixtures inserts, against ages of 7 days (outbox) and 30 days
// (deliveries): 5 old published outbox rows, a recent published one and an
// old unpublished one; 5 old finished deliveries with 2 attempts each, a
// recent finished one and an old pending one, each with an attempt.
func fixtures(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
INSERT INTO hookrelay.outbox (event_type, project_id, data, created_at)
SELECT 'old', gen_random_uuid(), '{}', now() - interval '9 days'
FROM generate_series(1, 5);
INSERT INTO hookrelay.outbox (event_type, project_id, data, created_at) VALUES
    ('recent', gen_random_uuid(), '{}', now() - interval '6 days')`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), testdb.PublishOutboxSQL); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(context.Background(), `
INSERT INTO hookrelay.outbox (event_type, project_id, data, created_at) VALUES
    ('unpublished', gen_random_uuid(), '{}', now() - interval '9 days');

INSERT INTO hookrelay.deliveries (event_id, webhook_id, project_id, event_type, payload,
    event_created_at, status, max_attempts, updated_at)
SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'old', '{}',
    now() - interval '40 days', (ARRAY['delivered', 'failed', 'skipped'])[1 + i % 3], 6,
    now() - interval '31 days'
FROM generate_series(1, 5) AS i;
INSERT INTO hookrelay.deliveries (event_id, webhook_id, project_id, event_type, payload,
    event_created_at, status, max_attempts, updated_at) VALUES
    (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'recent', '{}', now(), 'delivered', 6,
     now() - interval '29 days'),
    (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'pending', '{}', now(), 'pending', 6,
     now() - interval '90 days');
INSERT INTO hookrelay.delivery_attempts (delivery_id, attempt, started_at, duration_ms)
SELECT d.id, n, now() - interval '31 days', 1 FROM hookrelay.deliveries d, generate_series(1, 2) AS n
WHERE d.event_type = 'old' OR n = 1;

INSERT INTO hookrelay.recoveries (project_id, webhook_id, since, until, state, cursor_created_at, finished_at)
SELECT gen_random_uuid(), gen_random_uuid(), now() - interval '60 days', now() - interval '59 days', s,
    now() - interval '60 days', f
FROM (VALUES ('done', now() - interval '31 days'), ('canceled', now() - interval '31 days'),
             ('done', now() - interval '29 days'), ('running', NULL)) AS r(s, f);`)
	if err != nil {
		t.Fatalf("insert fixtures: %v", err)
	}
}

func newWorker(pool *pgxpool.Pool, m *metrics.Metrics, budget time.Duration) *maintenance.Retention {
	return maintenance.NewRetention(pool, maintenance.RetentionConfig{
		OutboxAge: 7 * day, DeliveriesAge: 30 * day, Interval: time.Hour, BatchSize: 2, Budget: budget,
	}, m, nil)
}

// left lists the event types of the rows of a table.
func left(t *testing.T, pool *pgxpool.Pool, query string) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got[s]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func wantLeft(t *testing.T, pool *pgxpool.Pool, query string, want map[string]int) {
	t.Helper()
	got := left(t, pool, query)
	if len(got) != len(want) {
		t.Fatalf("%s: left %v, want %v", query, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: left %v, want %v", query, got, want)
		}
	}
}

const (
	outboxLeft     = `SELECT event_type FROM hookrelay.outbox`
	deliveriesLeft = `SELECT event_type FROM hookrelay.deliveries`
	attemptsLeft   = `SELECT d.event_type FROM hookrelay.delivery_attempts a JOIN hookrelay.deliveries d ON d.id = a.delivery_id`
	orphanAttempts = `SELECT 'orphan' FROM hookrelay.delivery_attempts a
        WHERE NOT EXISTS (SELECT 1 FROM hookrelay.deliveries d WHERE d.id = a.delivery_id)`
)

func TestPrune_DeletesOnlyOldPublishedOutboxAndOldFinishedDeliveriesWithAttempts(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	fixtures(t, pool)
	m := metrics.New(nil)

	res, err := newWorker(pool, m, time.Minute).Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res != (maintenance.RetentionResult{Outbox: 5, Deliveries: 5, Attempts: 10, Recoveries: 2}) {
		t.Fatalf("pruned %+v, want 5 outbox rows, 5 deliveries, 10 attempts, 2 recoveries", res)
	}
	wantLeft(t, pool, `SELECT state FROM hookrelay.recoveries`, map[string]int{"done": 1, "running": 1})
	wantLeft(t, pool, outboxLeft, map[string]int{"recent": 1, "unpublished": 1})
	wantLeft(t, pool, deliveriesLeft, map[string]int{"recent": 1, "pending": 1})
	wantLeft(t, pool, attemptsLeft, map[string]int{"recent": 1, "pending": 1})
	wantLeft(t, pool, orphanAttempts, map[string]int{})
	for table, want := range map[string]float64{"outbox": 5, "deliveries": 5, "delivery_attempts": 10} {
		if got := testutil.ToFloat64(m.Pruned.WithLabelValues(table)); got != want {
			t.Fatalf("pruned{table=%s} = %v, want %v", table, got, want)
		}
	}

	if res, err := newWorker(pool, m, time.Minute).Prune(context.Background()); err != nil || res != (maintenance.RetentionResult{}) {
		t.Fatalf("second run pruned %+v (%v), want nothing", res, err)
	}
}

func TestPrune_DeletesInBatchesAndStopsWhenTheBudgetIsSpent(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	fixtures(t, pool)
	// A budget spent at once still lets one batch (2 rows) go, then stops.
	w := newWorker(pool, metrics.New(nil), time.Nanosecond)
	res, err := w.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res != (maintenance.RetentionResult{Outbox: 2, Incomplete: true}) {
		t.Fatalf("pruned %+v, want one batch of 2 outbox rows and incomplete", res)
	}
	wantLeft(t, pool, outboxLeft, map[string]int{"old": 3, "recent": 1, "unpublished": 1})

	// Later runs carry on where it stopped.
	total := maintenance.RetentionResult{Outbox: 2}
	for range 10 {
		res, err := w.Prune(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		total.Outbox += res.Outbox
		total.Deliveries += res.Deliveries
		total.Attempts += res.Attempts
		if !res.Incomplete {
			break
		}
	}
	if total != (maintenance.RetentionResult{Outbox: 5, Deliveries: 5, Attempts: 10}) {
		t.Fatalf("pruned %+v in total, want 5, 5, 10", total)
	}
	wantLeft(t, pool, deliveriesLeft, map[string]int{"recent": 1, "pending": 1})
}

func TestWork_RunsRetention(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t).Pool
	fixtures(t, pool)
	job := &river.Job[maintenance.RetentionArgs]{JobRow: &rivertype.JobRow{Kind: maintenance.RetentionKind}}
	if err := newWorker(pool, metrics.New(nil), time.Minute).Work(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	wantLeft(t, pool, outboxLeft, map[string]int{"recent": 1, "unpublished": 1})
}
