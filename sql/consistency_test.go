package sql_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
)

type problemRow struct {
	Problem    string     `db:"problem"`
	ProjectID  uuid.UUID  `db:"project_id"`
	EventID    uuid.UUID  `db:"event_id"`
	WebhookID  uuid.UUID  `db:"webhook_id"`
	DeliveryID *uuid.UUID `db:"delivery_id"`
	Detail     string     `db:"detail"`
}

// healthy is a consistent system: every published event fanned out to every
// webhook that matched it, every delivery's status agreeing with its attempts.
type healthy struct {
	project   uuid.UUID
	deploys   uuid.UUID // webhook subscribed to config.deployed only
	allOfAppX uuid.UUID // webhook subscribed to everything of application appX
	appX      uuid.UUID
	start     time.Time
}

func plantHealthy(f fixtures) healthy {
	f.t.Helper()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(m int) time.Time { return start.Add(time.Duration(m) * time.Minute) }
	p := uuid.New()
	appX, appY := uuid.New(), uuid.New()

	deploys := f.webhook(hook{Project: p, EventTypes: []string{"config.deployed"}, CreatedAt: at(0)})
	allOfAppX := f.webhook(hook{Project: p, EventTypes: []string{"*"}, App: &appX, CreatedAt: at(0)})
	production := f.webhook(hook{Project: p, EventTypes: []string{"config.deployed", "config.archived"}, Env: ptr("production"), CreatedAt: at(0)})
	// These match the first event but must have no delivery: inactive, created
	// after it, changed after it, or in another project.
	f.webhook(hook{Project: p, EventTypes: []string{"*"}, Inactive: true, CreatedAt: at(0)})
	f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: at(30)})
	f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: at(0), UpdatedAt: at(30)})
	f.webhook(hook{Project: uuid.New(), EventTypes: []string{"*"}, CreatedAt: at(0)})

	data := func(app fmt.Stringer, env string) map[string]any {
		return map[string]any{"application": map[string]any{"id": app.String()}, "environment": map[string]any{"name": env}}
	}
	// Matches deploys, allOfAppX and production.
	e1 := f.event(p, "config.deployed", data(appX, "production"), at(10), true)
	f.delivery(delivery{Event: e1, Webhook: deploys, Project: p, Status: "delivered", Codes: []int{500, 200}, EventCreatedAt: at(10), DeliveredAt: ptr(at(11))})
	f.delivery(delivery{Event: e1, Webhook: allOfAppX, Project: p, Status: "failed", Codes: []int{500, 0, 503}, MaxAttempts: 3, EventCreatedAt: at(10)})
	f.delivery(delivery{Event: e1, Webhook: production, Project: p, Status: "failed", Codes: []int{500, 410}, EventCreatedAt: at(10)})
	// Matches deploys only (other application, other environment).
	e2 := f.event(p, "config.deployed", data(appY, "staging"), at(12), true)
	f.delivery(delivery{Event: e2, Webhook: deploys, Project: p, Status: "pending", Codes: []int{0}, EventCreatedAt: at(12), NextAttemptAt: ptr(at(70))})
	// Matches production only; its delivery was skipped after one attempt.
	e3 := f.event(p, "config.archived", data(appY, "production"), at(13), true)
	f.delivery(delivery{Event: e3, Webhook: production, Project: p, Status: "skipped", Codes: []int{502}, EventCreatedAt: at(13)})
	// Matches nothing: no application for allOfAppX's filter.
	f.event(p, "config.committed", map[string]any{"variant": "v1"}, at(14), true)
	// Not yet published: the relay's lag, not an inconsistency.
	f.event(p, "config.deployed", data(appX, "production"), at(15), false)
	// A delivery not yet attempted.
	e4 := f.event(p, "config.deployed", data(appY, "dev"), at(16), true)
	f.delivery(delivery{Event: e4, Webhook: deploys, Project: p, Status: "pending", EventCreatedAt: at(16)})
	// The relay matches application ids case-insensitively.
	e5 := f.event(p, "config.archived", data(upper{appX}, "staging"), at(17), true)
	f.delivery(delivery{Event: e5, Webhook: allOfAppX, Project: p, Status: "delivered", Codes: []int{200}, EventCreatedAt: at(17), DeliveredAt: ptr(at(17))})
	return healthy{project: p, deploys: deploys, allOfAppX: allOfAppX, appX: appX, start: start}
}

func TestConsistencyCheck_HealthySystemReturnsNothing(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	plantHealthy(fixtures{t, db.Pool})
	if rows := run[problemRow](t, db.Pool, "consistency_check", nil); len(rows) != 0 {
		t.Fatalf("consistency_check on a healthy system returned %d rows, want none:\n%s", len(rows), describe(rows))
	}
}

func TestConsistencyCheck_FindsExactlyThePlantedProblems(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	h := plantHealthy(f)
	p, w := h.project, h.deploys
	at := h.start.Add(20 * time.Minute)

	type key struct {
		problem string
		id      string // delivery id, or event id for missing_delivery
	}
	k := func(problem string, id uuid.UUID) key { return key{problem, id.String()} }
	want := []key{
		// Published and matching deploys, but never fanned out to it.
		k("missing_delivery", f.event(p, "config.deployed", map[string]any{"note": "lost"}, at, true)),
		// Matches allOfAppX only, through the case-insensitive application filter.
		k("missing_delivery", f.event(p, "config.committed", map[string]any{"application": map[string]any{"id": upper{h.appX}.String()}}, at, true)),
		k("delivered_without_2xx_attempt", f.delivery(delivery{Webhook: w, Project: p, Status: "delivered", Codes: []int{500}, EventCreatedAt: at, DeliveredAt: &at})),
		k("delivered_without_delivered_at", f.delivery(delivery{Webhook: w, Project: p, Status: "delivered", Codes: []int{200}, EventCreatedAt: at})),
		k("failed_without_attempts", f.delivery(delivery{Webhook: w, Project: p, Status: "failed", EventCreatedAt: at})),
		k("failed_with_attempts_left", f.delivery(delivery{Webhook: w, Project: p, Status: "failed", Codes: []int{500, 500}, EventCreatedAt: at})),
		// A 410 that is not the last attempt does not excuse an early failure.
		k("failed_with_attempts_left", f.delivery(delivery{Webhook: w, Project: p, Status: "failed", Codes: []int{410, 500}, EventCreatedAt: at})),
		k("pending_with_no_attempts_left", f.delivery(delivery{Webhook: w, Project: p, Status: "pending", Codes: []int{500, 500, 500}, MaxAttempts: 3, EventCreatedAt: at})),
		k("attempts_mismatch", f.delivery(delivery{Webhook: w, Project: p, Status: "pending", Codes: []int{500}, Attempts: ptr(2), EventCreatedAt: at})),
		k("attempts_mismatch", f.delivery(delivery{Webhook: w, Project: p, Status: "pending", Codes: []int{500, 500}, Numbers: []int{1, 3}, EventCreatedAt: at})),
	}

	rows := run[problemRow](t, db.Pool, "consistency_check", nil)
	var got []key
	for _, r := range rows {
		switch {
		case r.Problem == "missing_delivery" && r.DeliveryID == nil && (r.WebhookID == w || r.WebhookID == h.allOfAppX):
			got = append(got, k(r.Problem, r.EventID))
		case r.DeliveryID != nil && r.ProjectID == p:
			got = append(got, k(r.Problem, *r.DeliveryID))
		default:
			t.Errorf("row with unexpected ids: %+v", r)
		}
		if r.Detail == "" {
			t.Errorf("row %s has no detail", r.Problem)
		}
	}
	order := func(a, b key) int {
		if a.problem != b.problem {
			return compare(a.problem, b.problem)
		}
		return compare(a.id, b.id)
	}
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if !slices.Equal(got, want) {
		t.Fatalf("consistency_check found:\n%s\nwant exactly these problems:\n%v", describe(rows), want)
	}
}

// upper prints a uuid in capitals, as some applications send it.
type upper struct{ id uuid.UUID }

func (u upper) String() string { return strings.ToUpper(u.id.String()) }

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func describe(rows []problemRow) string {
	var s string
	for _, r := range rows {
		s += fmt.Sprintf("  %s event=%s webhook=%s delivery=%v: %s\n", r.Problem, r.EventID, r.WebhookID, r.DeliveryID, r.Detail)
	}
	return s
}
