package relay_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

func TestRelay_FanOutHonoursTypesProjectFiltersAndActive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	ctx := context.Background()
	app1, app2 := uuid.New(), uuid.New()
	prod, staging := "production", "staging"
	otherProject, lonelyProject := uuid.New(), uuid.New()

	all := e.addWebhook(webhook{eventTypes: []string{"*"}})
	deployed := e.addWebhook(webhook{eventTypes: []string{"config.deployed"}})
	archived := e.addWebhook(webhook{eventTypes: []string{"config.archived", "config.committed"}})
	other := e.addWebhook(webhook{project: otherProject, eventTypes: []string{"*"}})
	e.addWebhook(webhook{eventTypes: []string{"*"}, inactive: true})
	onApp1 := e.addWebhook(webhook{eventTypes: []string{"*"}, application: &app1})
	onProd := e.addWebhook(webhook{eventTypes: []string{"config.deployed"}, environment: &prod})
	onApp1Staging := e.addWebhook(webhook{eventTypes: []string{"*"}, application: &app1, environment: &staging})
	ops := e.addWebhook(webhook{eventTypes: deliver.OperationalEventTypes()})

	data := func(app uuid.UUID, env string) map[string]any {
		d := map[string]any{"params": map[string]any{"t": 0.2}}
		if app != uuid.Nil {
			// Filters match the id whatever its case.
			d["application"] = map[string]any{"id": strings.ToUpper(app.String())}
		}
		if env != "" {
			d["environment"] = map[string]any{"name": env}
		}
		return d
	}
	e1 := e.emit("config.deployed", data(app1, prod))
	e2 := e.emit("config.archived", data(app2, staging))
	e3 := e.emit("config.deployed", data(uuid.Nil, ""))
	e4 := e.emit("config.deployed", data(app1, staging))
	// hookrelay's own events reach only webhooks that name them, not "*".
	var opsEvents []uuid.UUID
	for _, typ := range deliver.OperationalEventTypes() {
		opsEvents = append(opsEvents, e.emit(typ, map[string]any{"webhook": map[string]any{"id": uuid.NewString()}}))
	}
	e.project = otherProject
	e5 := e.emit("config.deployed", data(app1, prod))
	e.project = lonelyProject
	e.emit("config.deployed", data(app1, prod)) // no webhook at all: published, no delivery

	expected := map[uuid.UUID][]uuid.UUID{
		e1: {all, deployed, onApp1, onProd},
		e2: {all, archived},
		e3: {all, deployed},
		e4: {all, deployed, onApp1, onApp1Staging},
		e5: {other},
	}
	for _, ev := range opsEvents {
		expected[ev] = []uuid.UUID{ops}
	}
	want := map[[2]uuid.UUID]bool{}
	for ev, hooks := range expected {
		for _, h := range hooks {
			want[[2]uuid.UUID{ev, h}] = true
		}
	}

	r, _ := e.relay(time.Hour, 100, false)
	if n, err := r.Drain(ctx); err != nil || n != 6+len(opsEvents) {
		t.Fatalf("Drain: %d events, %v; want %d", n, err, 6+len(opsEvents))
	}
	if n := e.unpublished(); n != 0 {
		t.Fatalf("%d events unpublished", n)
	}

	rows, _ := e.pool.Query(ctx, `SELECT d.id, d.event_id, d.webhook_id, d.project_id, d.event_type, d.payload,
			d.max_attempts, d.status, d.attempts, d.next_attempt_at IS NULL, o.project_id, o.event_type, o.data
		FROM hookrelay.deliveries d JOIN hookrelay.outbox o ON o.id = d.event_id`)
	got := map[[2]uuid.UUID]bool{}
	deliveries := map[uuid.UUID]bool{}
	for rows.Next() {
		var (
			id, ev, hook, project, oProject uuid.UUID
			typ, status, oType              string
			payload, oData                  json.RawMessage
			maxAttempts, attempts           int
			unscheduled                     bool
		)
		if err := rows.Scan(&id, &ev, &hook, &project, &typ, &payload, &maxAttempts, &status, &attempts,
			&unscheduled, &oProject, &oType, &oData); err != nil {
			t.Fatal(err)
		}
		got[[2]uuid.UUID{ev, hook}] = true
		deliveries[id] = true
		if project != oProject || typ != oType || string(payload) != string(oData) {
			t.Errorf("delivery %s does not carry its event: %s %s %s", id, project, typ, payload)
		}
		if maxAttempts != 5 || status != "pending" || attempts != 0 || !unscheduled {
			t.Errorf("delivery %s: max_attempts %d, status %s, attempts %d, unscheduled %t", id, maxAttempts, status, attempts, unscheduled)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for pair := range want {
		if !got[pair] {
			t.Errorf("missing delivery of event %s to webhook %s", pair[0], pair[1])
		}
	}
	for pair := range got {
		if !want[pair] {
			t.Errorf("unexpected delivery of event %s to webhook %s", pair[0], pair[1])
		}
	}

	onStream := e.streamDeliveries()
	if len(onStream) != len(deliveries) {
		t.Fatalf("%d entries on the stream, %d deliveries", len(onStream), len(deliveries))
	}
	for _, id := range onStream {
		if !deliveries[id] {
			t.Fatalf("stream entry %s is not a delivery", id)
		}
	}
}

// TestRelay_StreamEntriesCarryOnlyTheDeliveryID guards against leaking
// secrets or payloads into Redis.
func TestRelay_StreamEntriesCarryOnlyTheDeliveryID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	e.emit("config.deployed", map[string]any{"secret_looking": "whsec_test"})
	r, _ := e.relay(time.Hour, 10, false)
	if _, err := r.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs, err := e.rdb.XRange(context.Background(), e.stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d entries, want 1", len(msgs))
	}
	if len(msgs[0].Values) != 1 || msgs[0].Values["delivery_id"] == nil {
		t.Fatalf("entry fields %v, want only delivery_id", msgs[0].Values)
	}
	// Delivery ids are time-ordered (migration 00011), so the relay's inserts
	// land on the right edge of the primary key.
	if id, err := uuid.Parse(msgs[0].Values["delivery_id"].(string)); err != nil || id.Version() != 7 {
		t.Fatalf("delivery id %v (%v), want a version-7 UUID", msgs[0].Values["delivery_id"], err)
	}
}

// TestRelay_FanOutRaceStillPublishesTheOtherRelaysDeliveries is the race of
// a relay that died while its fan-out was committing: another relay claims
// the event, its INSERT waits for the dying transaction and then inserts
// nothing. The deliveries that transaction committed must still reach the
// stream, or the event is marked published with no entry at all.
func TestRelay_FanOutRaceStillPublishesTheOtherRelaysDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	ctx := context.Background()
	hook := e.addWebhook(webhook{eventTypes: []string{"*"}})
	ev := e.emit("config.deployed", map[string]any{})

	// Relay A's fan-out, caught between its INSERT and its COMMIT.
	dying, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dying.Rollback(ctx) //nolint:errcheck // no-op after commit
	var delivery uuid.UUID
	if err := dying.QueryRow(ctx, `INSERT INTO hookrelay.deliveries
		(event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts)
		SELECT id, $2, project_id, event_type, data, created_at, 5 FROM hookrelay.outbox WHERE id = $1
		RETURNING id`, ev, hook).Scan(&delivery); err != nil {
		t.Fatal(err)
	}

	r, _ := e.relay(time.Hour, 100, false)
	drained := make(chan error, 1)
	go func() {
		_, err := r.Drain(ctx)
		drained <- err
	}()
	testwait.For(t, 10*time.Second, "relay C's fan-out to wait for relay A's row lock", func() bool {
		return e.count(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	})
	if err := dying.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if n := e.unpublished(); n != 0 {
		t.Fatalf("%d events unpublished", n)
	}
	if got := e.streamDeliveries(); len(got) != 1 || got[0] != delivery {
		t.Fatalf("stream holds %v, want exactly relay A's delivery %s", got, delivery)
	}
}

// TestRelay_ParksDeliveriesOfAnOpenBreaker: a webhook whose breaker is open
// (or half open) gets its deliveries created parked and never published, so
// a dead endpoint's events cost the workers nothing; a webhook whose breaker
// is closed, or that has no health row, is published as always.
func TestRelay_ParksDeliveriesOfAnOpenBreaker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	ctx := context.Background()
	open := e.addWebhook(webhook{eventTypes: []string{"*"}})
	halfOpen := e.addWebhook(webhook{eventTypes: []string{"*"}})
	closed := e.addWebhook(webhook{eventTypes: []string{"*"}})
	e.addWebhook(webhook{eventTypes: []string{"*"}}) // no health row
	if _, err := e.pool.Exec(ctx, `INSERT INTO hookrelay.webhook_health (webhook_id, circuit, consecutive_failures)
		VALUES ($1, 'open', 20), ($2, 'half_open', 20), ($3, 'closed', 3)`, open, halfOpen, closed); err != nil {
		t.Fatal(err)
	}
	events := []uuid.UUID{e.emit("config.deployed", map[string]any{}), e.emit("config.deployed", map[string]any{})}

	r, m := e.relay(time.Hour, 100, false)
	if n, err := r.Drain(ctx); err != nil || n != len(events) {
		t.Fatalf("Drain: %d events, %v; want %d", n, err, len(events))
	}
	onStream := map[uuid.UUID]bool{}
	for _, id := range e.streamDeliveries() {
		onStream[id] = true
	}
	rows, err := e.pool.Query(ctx, `SELECT id, webhook_id, parked_at IS NOT NULL FROM hookrelay.deliveries WHERE event_id = ANY($1)`, events)
	if err != nil {
		t.Fatal(err)
	}
	var id, wh uuid.UUID
	var parked bool
	n := 0
	if _, err := pgx.ForEachRow(rows, []any{&id, &wh, &parked}, func() error {
		n++
		wantParked := wh == open || wh == halfOpen
		if parked != wantParked || onStream[id] == wantParked {
			t.Errorf("delivery of webhook %s: parked %v, on the stream %v; want parked %v and on the stream %v",
				wh, parked, onStream[id], wantParked, !wantParked)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 4*len(events) || len(onStream) != 2*len(events) {
		t.Fatalf("%d deliveries, %d on the stream; want %d and %d", n, len(onStream), 4*len(events), 2*len(events))
	}
	if got := testutil.ToFloat64(m.DeliveriesParked); got != float64(2*len(events)) {
		t.Fatalf("hookrelay_deliveries_parked_total %v, want %d", got, 2*len(events))
	}
	if got := testutil.ToFloat64(m.DeliveriesCreated); got != float64(4*len(events)) {
		t.Fatalf("hookrelay_deliveries_created_total %v, want %d: parked deliveries are created too", got, 4*len(events))
	}
}
