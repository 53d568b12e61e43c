package sql_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	auditsql "github.com/hookrelay/hookrelay/sql"
)

// fixtures writes rows straight into hookrelay's tables, the way the relay
// and the workers would leave them.
type fixtures struct {
	t    testing.TB
	pool *pgxpool.Pool
}

// hook describes a webhook row.
type hook struct {
	Project    uuid.UUID
	EventTypes []string
	App        *uuid.UUID
	Env        *string
	Inactive   bool
	CreatedAt  time.Time
	UpdatedAt  time.Time // zero: same as CreatedAt
}

func (f fixtures) webhook(h hook) uuid.UUID {
	f.t.Helper()
	if h.UpdatedAt.IsZero() {
		h.UpdatedAt = h.CreatedAt
	}
	id := uuid.New()
	f.exec(`INSERT INTO hookrelay.webhooks
	            (id, project_id, name, url, secret, event_types, application_id, environment_name, is_active, created_at, updated_at)
	        VALUES ($1, $2, $3, $4, 'whsec_test', $5, $6, $7, $8, $9, $10)`,
		id, h.Project, "hook-"+id.String()[:8], "https://example.com/"+id.String(), h.EventTypes, h.App, h.Env, !h.Inactive, h.CreatedAt, h.UpdatedAt)
	return id
}

// event inserts an outbox row; published says whether the relay fanned it
// out. An unpublished row gets an xid no relay cursor reaches; a published
// one moves the cursor past it.
func (f fixtures) event(project uuid.UUID, typ string, data map[string]any, createdAt time.Time, published bool) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	if !published {
		f.exec(`INSERT INTO hookrelay.outbox (id, event_type, project_id, data, created_at, xid)
		        VALUES ($1, $2, $3, $4, $5, $6::text::xid8)`, id, typ, project, data, createdAt, testdb.FarFutureXID)
		return id
	}
	f.exec(`INSERT INTO hookrelay.outbox (id, event_type, project_id, data, created_at)
	        VALUES ($1, $2, $3, $4, $5)`, id, typ, project, data, createdAt)
	f.exec(testdb.PublishOutboxSQL)
	return id
}

// delivery describes a delivery row and its attempts.
type delivery struct {
	Event, Webhook, Project uuid.UUID
	Status                  string
	Codes                   []int // one attempt row per code, numbered 1..n; 0 is a connection error
	Attempts                *int  // the attempts column; nil: len(Codes)
	Numbers                 []int // attempt numbers; nil: 1..n
	MaxAttempts             int   // 0: 6
	EventCreatedAt          time.Time
	FirstAttemptAt          time.Time // attempts start here, one second apart; zero: EventCreatedAt
	DeliveredAt             *time.Time
	NextAttemptAt           *time.Time
}

func (f fixtures) delivery(d delivery) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	attempts := len(d.Codes)
	if d.Attempts != nil {
		attempts = *d.Attempts
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 6
	}
	if d.Event == uuid.Nil {
		d.Event = uuid.New()
	}
	if d.FirstAttemptAt.IsZero() {
		d.FirstAttemptAt = d.EventCreatedAt
	}
	var last *time.Time
	if len(d.Codes) > 0 {
		l := d.FirstAttemptAt.Add(time.Duration(len(d.Codes)-1) * time.Second)
		last = &l
	}
	f.exec(`INSERT INTO hookrelay.deliveries
	            (id, event_id, webhook_id, project_id, event_type, payload, event_created_at, status,
	             attempts, max_attempts, next_attempt_at, last_attempt_at, delivered_at, created_at, updated_at)
	        VALUES ($1, $2, $3, $4, 'config.deployed', '{}', $5::timestamptz, $6, $7, $8, $9, $10::timestamptz, $11, $5::timestamptz, coalesce($10::timestamptz, $5::timestamptz))`,
		id, d.Event, d.Webhook, d.Project, d.EventCreatedAt, d.Status, attempts, d.MaxAttempts,
		d.NextAttemptAt, last, d.DeliveredAt)
	for i, code := range d.Codes {
		n := i + 1
		if d.Numbers != nil {
			n = d.Numbers[i]
		}
		var status *int
		var errText *string
		if code == 0 {
			e := "connection refused"
			errText = &e
		} else {
			status = &code
		}
		f.exec(`INSERT INTO hookrelay.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
		        VALUES ($1, $2, $3, 12.5, $4, $5)`,
			id, n, d.FirstAttemptAt.Add(time.Duration(i)*time.Second), status, errText)
	}
	return id
}

func (f fixtures) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("fixture: %v\n%s", err, sql)
	}
}

// run runs the named audit query and collects its rows into T by column name.
func run[T any](t testing.TB, pool *pgxpool.Pool, name string, args map[string]any) []T {
	t.Helper()
	q, err := auditsql.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := q.Run(context.Background(), pool, args)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	if err != nil {
		t.Fatalf("collect %s rows: %v", name, err)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func ids[T any](rows []T, id func(T) uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i] = id(r)
	}
	return out
}

// assertIDs checks that got holds exactly want, in that order.
func assertIDs(t testing.TB, what string, got []uuid.UUID, want ...uuid.UUID) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d rows %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}
