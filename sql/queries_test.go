package sql_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
)

var day = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)

// window is the 10 March 2025 window most tests query.
func window(project string) map[string]any {
	return map[string]any{"since": day, "until": day.Add(24 * time.Hour), "project_id": project}
}

type failedRow struct {
	DeliveryID         uuid.UUID `db:"delivery_id"`
	ProjectID          uuid.UUID `db:"project_id"`
	WebhookID          uuid.UUID `db:"webhook_id"`
	WebhookURL         *string   `db:"webhook_url"`
	EventID            uuid.UUID `db:"event_id"`
	EventType          string    `db:"event_type"`
	Attempts           int       `db:"attempts"`
	MaxAttempts        int       `db:"max_attempts"`
	LastResponseStatus *int      `db:"last_response_status"`
	LastError          *string   `db:"last_error"`
	EventCreatedAt     time.Time `db:"event_created_at"`
	FailedAt           time.Time `db:"failed_at"`
}

func TestFailedDeliveries_ReturnsFailedInWindowPerProjectNewestFirst(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	p1, p2 := uuid.New(), uuid.New()
	w1 := f.webhook(hook{Project: p1, EventTypes: []string{"*"}, CreatedAt: day.Add(-time.Hour)})
	w2 := f.webhook(hook{Project: p2, EventTypes: []string{"*"}, CreatedAt: day.Add(-time.Hour)})
	at := func(h int) time.Time { return day.Add(time.Duration(h) * time.Hour) }

	early := f.delivery(delivery{Webhook: w1, Project: p1, Status: "failed", Codes: []int{500, 500, 500}, MaxAttempts: 3, EventCreatedAt: at(1)})
	gone := f.delivery(delivery{Webhook: w1, Project: p1, Status: "failed", Codes: []int{410}, EventCreatedAt: at(5)})
	other := f.delivery(delivery{Webhook: w2, Project: p2, Status: "failed", Codes: []int{0, 0}, MaxAttempts: 2, EventCreatedAt: at(3)})
	// Not failed, or failed outside the window: never listed.
	f.delivery(delivery{Webhook: w1, Project: p1, Status: "delivered", Codes: []int{200}, EventCreatedAt: at(2), DeliveredAt: ptr(at(2))})
	f.delivery(delivery{Webhook: w1, Project: p1, Status: "pending", Codes: []int{500}, EventCreatedAt: at(2), NextAttemptAt: ptr(at(3))})
	f.delivery(delivery{Webhook: w1, Project: p1, Status: "failed", Codes: []int{500}, MaxAttempts: 1, EventCreatedAt: at(-2)})
	f.delivery(delivery{Webhook: w1, Project: p1, Status: "failed", Codes: []int{500}, MaxAttempts: 1, EventCreatedAt: at(24)})

	all := run[failedRow](t, db.Pool, "failed_deliveries", window(""))
	assertIDs(t, "all projects", ids(all, func(r failedRow) uuid.UUID { return r.DeliveryID }), gone, other, early)

	only := run[failedRow](t, db.Pool, "failed_deliveries", window(p1.String()))
	assertIDs(t, "project 1", ids(only, func(r failedRow) uuid.UUID { return r.DeliveryID }), gone, early)
	if r := only[1]; r.Attempts != 3 || r.MaxAttempts != 3 || r.WebhookID != w1 || r.WebhookURL == nil ||
		!r.FailedAt.Equal(at(1).Add(2*time.Second)) {
		t.Errorf("early failure row = %+v, want 3/3 attempts on %s failing at the last attempt %s", r, w1, at(1).Add(2*time.Second))
	}
}

type rateRow struct {
	WebhookID      uuid.UUID `db:"webhook_id"`
	ProjectID      uuid.UUID `db:"project_id"`
	WebhookName    *string   `db:"webhook_name"`
	WebhookURL     *string   `db:"webhook_url"`
	IsActive       *bool     `db:"is_active"`
	Deliveries     int       `db:"deliveries"`
	Attempts       int       `db:"attempts"`
	Failures       int       `db:"failures"`
	FailureRate    float64   `db:"failure_rate"`
	FirstAttemptAt time.Time `db:"first_attempt_at"`
	LastAttemptAt  time.Time `db:"last_attempt_at"`
}

func TestFailureRateByEndpoint_CountsAttemptsAndFailuresPerWebhookInWindow(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	p := uuid.New()
	healthy := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day.Add(-time.Hour)})
	flaky := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day.Add(-time.Hour)})
	deleted := uuid.New() // a webhook since deleted: its deliveries remain
	noon := day.Add(12 * time.Hour)

	f.delivery(delivery{Webhook: healthy, Project: p, Status: "delivered", Codes: []int{200}, EventCreatedAt: noon, DeliveredAt: ptr(noon)})
	f.delivery(delivery{Webhook: healthy, Project: p, Status: "delivered", Codes: []int{204}, EventCreatedAt: noon, DeliveredAt: ptr(noon)})
	// flaky: 500, timeout, 200 on one delivery; 503 on another; 1 of 4 succeeded.
	f.delivery(delivery{Webhook: flaky, Project: p, Status: "delivered", Codes: []int{500, 0, 200}, EventCreatedAt: noon, DeliveredAt: ptr(noon)})
	f.delivery(delivery{Webhook: flaky, Project: p, Status: "pending", Codes: []int{503}, EventCreatedAt: noon, NextAttemptAt: ptr(noon.Add(time.Hour))})
	// Attempts outside the window do not count.
	f.delivery(delivery{Webhook: flaky, Project: p, Status: "failed", Codes: []int{500}, MaxAttempts: 1, EventCreatedAt: day.Add(-time.Minute)})
	f.delivery(delivery{Webhook: deleted, Project: p, Status: "delivered", Codes: []int{301, 200}, EventCreatedAt: noon, DeliveredAt: ptr(noon)})
	// Another project's endpoint, filtered out by project.
	f.delivery(delivery{Webhook: uuid.New(), Project: uuid.New(), Status: "failed", Codes: []int{500}, MaxAttempts: 1, EventCreatedAt: noon})

	rows := run[rateRow](t, db.Pool, "failure_rate_by_endpoint", window(p.String()))
	assertIDs(t, "webhooks worst first", ids(rows, func(r rateRow) uuid.UUID { return r.WebhookID }), flaky, deleted, healthy)
	want := map[uuid.UUID][4]float64{ // deliveries, attempts, failures, rate
		flaky:   {2, 4, 3, 0.75},
		deleted: {1, 2, 1, 0.5},
		healthy: {2, 2, 0, 0},
	}
	for _, r := range rows {
		got := [4]float64{float64(r.Deliveries), float64(r.Attempts), float64(r.Failures), r.FailureRate}
		if got != want[r.WebhookID] {
			t.Errorf("webhook %s: deliveries, attempts, failures, rate = %v, want %v", r.WebhookID, got, want[r.WebhookID])
		}
	}
	if r := rows[1]; r.WebhookName != nil || r.IsActive != nil {
		t.Errorf("deleted webhook row has name %v, is_active %v; want both empty", r.WebhookName, r.IsActive)
	}
	if r := rows[0]; !r.FirstAttemptAt.Equal(noon) || !r.LastAttemptAt.Equal(noon.Add(2*time.Second)) {
		t.Errorf("flaky webhook attempts span %s..%s, want %s..%s", r.FirstAttemptAt, r.LastAttemptAt, noon, noon.Add(2*time.Second))
	}
	if all := run[rateRow](t, db.Pool, "failure_rate_by_endpoint", window("")); len(all) != 4 {
		t.Errorf("all projects: %d webhooks, want 4", len(all))
	}
}

type latencyRow struct {
	WebhookID   uuid.UUID `db:"webhook_id"`
	ProjectID   uuid.UUID `db:"project_id"`
	WebhookName *string   `db:"webhook_name"`
	WebhookURL  *string   `db:"webhook_url"`
	Delivered   int       `db:"delivered"`
	P50         float64   `db:"p50_ms"`
	P95         float64   `db:"p95_ms"`
	P99         float64   `db:"p99_ms"`
	Max         float64   `db:"max_ms"`
}

func TestLatencyPercentiles_MeasuresEventCreatedToDeliveredPerEndpoint(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	p := uuid.New()
	slow := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day.Add(-time.Hour)})
	fast := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day.Add(-time.Hour)})
	noon := day.Add(12 * time.Hour)
	// slow: latencies 10, 20, ..., 1000 ms.
	for k := 1; k <= 100; k++ {
		done := noon.Add(time.Duration(k*10) * time.Millisecond)
		f.delivery(delivery{Webhook: slow, Project: p, Status: "delivered", Codes: []int{200}, EventCreatedAt: noon, DeliveredAt: &done})
	}
	// fast: a single 7 ms delivery; pending, failed and out-of-window ones do not count.
	f.delivery(delivery{Webhook: fast, Project: p, Status: "delivered", Codes: []int{200}, EventCreatedAt: noon, DeliveredAt: ptr(noon.Add(7 * time.Millisecond))})
	f.delivery(delivery{Webhook: fast, Project: p, Status: "failed", Codes: []int{500}, MaxAttempts: 1, EventCreatedAt: noon})
	f.delivery(delivery{Webhook: fast, Project: p, Status: "delivered", Codes: []int{200}, EventCreatedAt: day.Add(-time.Hour), DeliveredAt: ptr(day.Add(-time.Minute))})

	rows := run[latencyRow](t, db.Pool, "latency_percentiles", window(p.String()))
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2: %+v", len(rows), rows)
	}
	// percentile_cont interpolates: p95 of 10..1000 step 10 sits between 950 and 960.
	want := []latencyRow{
		{WebhookID: slow, Delivered: 100, P50: 505, P95: 950.5, P99: 990.1, Max: 1000},
		{WebhookID: fast, Delivered: 1, P50: 7, P95: 7, P99: 7, Max: 7},
	}
	for i, w := range want {
		g := rows[i]
		if g.WebhookID != w.WebhookID || g.Delivered != w.Delivered || g.P50 != w.P50 || g.P95 != w.P95 || g.P99 != w.P99 || g.Max != w.Max {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	if other := run[latencyRow](t, db.Pool, "latency_percentiles", window(uuid.NewString())); len(other) != 0 {
		t.Errorf("another project sees %d rows, want none", len(other))
	}
}

type backlogRow struct {
	Bucket     string     `db:"bucket"`
	Deliveries int        `db:"deliveries"`
	Webhooks   int        `db:"webhooks"`
	FirstDueAt *time.Time `db:"first_due_at"`
	LastDueAt  *time.Time `db:"last_due_at"`
}

func TestRetryBacklog_BucketsScheduledRetriesByDueTime(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	p := uuid.New()
	w1 := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day})
	w2 := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day})
	now := time.Now()
	retry := func(w uuid.UUID, in time.Duration) {
		f.delivery(delivery{Webhook: w, Project: p, Status: "pending", Codes: []int{500}, EventCreatedAt: now.Add(-time.Hour), NextAttemptAt: ptr(now.Add(in))})
	}
	retry(w1, -2*time.Minute) // overdue
	retry(w1, 30*time.Second)
	retry(w2, 3*time.Minute)
	retry(w1, 4*time.Minute)
	retry(w2, 2*time.Hour)
	retry(w2, 48*time.Hour)
	// Not retries: never attempted, finished, or another project.
	f.delivery(delivery{Webhook: w1, Project: p, Status: "pending", EventCreatedAt: now, NextAttemptAt: ptr(now)})
	f.delivery(delivery{Webhook: w1, Project: p, Status: "delivered", Codes: []int{500, 200}, EventCreatedAt: now, DeliveredAt: &now})
	f.delivery(delivery{Webhook: uuid.New(), Project: uuid.New(), Status: "pending", Codes: []int{500}, EventCreatedAt: now, NextAttemptAt: ptr(now.Add(time.Minute * 2))})

	rows := run[backlogRow](t, db.Pool, "retry_backlog", map[string]any{"project_id": p.String()})
	got := map[string][2]int{}
	var order []string
	for _, r := range rows {
		order = append(order, r.Bucket)
		got[r.Bucket] = [2]int{r.Deliveries, r.Webhooks}
	}
	wantOrder := []string{"overdue", "within 1m", "1m to 5m", "5m to 15m", "15m to 1h", "1h to 4h", "4h to 24h", "after 24h"}
	if len(order) != len(wantOrder) {
		t.Fatalf("buckets = %v, want %v", order, wantOrder)
	}
	for i := range wantOrder {
		if order[i] != wantOrder[i] {
			t.Fatalf("buckets = %v, want %v", order, wantOrder)
		}
	}
	want := map[string][2]int{ // deliveries, distinct webhooks
		"overdue": {1, 1}, "within 1m": {1, 1}, "1m to 5m": {2, 2}, "5m to 15m": {0, 0},
		"15m to 1h": {0, 0}, "1h to 4h": {1, 1}, "4h to 24h": {0, 0}, "after 24h": {1, 1},
	}
	for b, w := range want {
		if got[b] != w {
			t.Errorf("bucket %q: deliveries, webhooks = %v, want %v", b, got[b], w)
		}
	}
	if r := rows[2]; r.FirstDueAt == nil || r.LastDueAt == nil || r.LastDueAt.Sub(*r.FirstDueAt).Round(time.Second) != time.Minute {
		t.Errorf("1m to 5m bucket due span = %v..%v, want one minute apart", r.FirstDueAt, r.LastDueAt)
	}
	all := run[backlogRow](t, db.Pool, "retry_backlog", map[string]any{"project_id": ""})
	if all[2].Deliveries != 3 {
		t.Errorf("all projects, 1m to 5m bucket: %d deliveries, want 3", all[2].Deliveries)
	}
}

type stuckRow struct {
	DeliveryID    uuid.UUID     `db:"delivery_id"`
	ProjectID     uuid.UUID     `db:"project_id"`
	WebhookID     uuid.UUID     `db:"webhook_id"`
	EventID       uuid.UUID     `db:"event_id"`
	EventType     string        `db:"event_type"`
	Attempts      int           `db:"attempts"`
	MaxAttempts   int           `db:"max_attempts"`
	NextAttemptAt *time.Time    `db:"next_attempt_at"`
	UpdatedAt     time.Time     `db:"updated_at"`
	StuckFor      time.Duration `db:"stuck_for"`
}

func TestStuckDeliveries_ListsPendingWithoutProgressOldestFirst(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	p := uuid.New()
	w := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day})
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	// The fixture sets updated_at to the last attempt's start, or to the event's time.
	neverSent := f.delivery(delivery{Webhook: w, Project: p, Status: "pending", EventCreatedAt: ago(2 * time.Hour)})
	overdue := f.delivery(delivery{Webhook: w, Project: p, Status: "pending", Codes: []int{500}, EventCreatedAt: ago(time.Hour), NextAttemptAt: ptr(ago(30 * time.Minute))})
	// Not stuck: recent, a retry due later, finished, or overdue by less than the threshold.
	f.delivery(delivery{Webhook: w, Project: p, Status: "pending", EventCreatedAt: ago(time.Minute)})
	f.delivery(delivery{Webhook: w, Project: p, Status: "pending", Codes: []int{500}, EventCreatedAt: ago(time.Hour), NextAttemptAt: ptr(now.Add(time.Hour))})
	f.delivery(delivery{Webhook: w, Project: p, Status: "delivered", Codes: []int{200}, EventCreatedAt: ago(time.Hour), DeliveredAt: ptr(ago(time.Hour))})
	f.delivery(delivery{Webhook: w, Project: p, Status: "pending", Codes: []int{500}, EventCreatedAt: ago(time.Hour), NextAttemptAt: ptr(ago(time.Minute))})

	rows := run[stuckRow](t, db.Pool, "stuck_deliveries", map[string]any{"older_than": 10 * time.Minute, "project_id": p.String()})
	assertIDs(t, "stuck deliveries", ids(rows, func(r stuckRow) uuid.UUID { return r.DeliveryID }), neverSent, overdue)
	if d := rows[0].StuckFor; d < 2*time.Hour || d > 2*time.Hour+time.Minute {
		t.Errorf("never-sent delivery stuck for %s, want about 2h", d)
	}
	if other := run[stuckRow](t, db.Pool, "stuck_deliveries", map[string]any{"older_than": "10 minutes", "project_id": uuid.NewString()}); len(other) != 0 {
		t.Errorf("another project sees %d stuck deliveries, want none", len(other))
	}
}
