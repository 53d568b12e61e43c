package deliver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/receiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/relay"
)

// healthRow is a webhook's hookrelay.webhook_health row.
type healthRow struct {
	Circuit      string
	Failures     int
	FailingSince *time.Time
	RetryAt      *time.Time
}

func (h *harness) health(webhook uuid.UUID) healthRow {
	h.t.Helper()
	var r healthRow
	err := h.db.Pool.QueryRow(h.t.Context(), `SELECT circuit, consecutive_failures, failing_since, retry_at
		FROM hookrelay.webhook_health WHERE webhook_id = $1`, webhook).Scan(&r.Circuit, &r.Failures, &r.FailingSince, &r.RetryAt)
	if err == pgx.ErrNoRows {
		return healthRow{Circuit: "closed"}
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// count runs a query that returns one count.
func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// newFailingEndpoint is a harness with a webhook whose receiver answers 500
// until healthy is set, and a worker configuration that makes one attempt
// at a time (so exactly Failures of them open the breaker).
func newFailingEndpoint(t *testing.T) (*harness, *atomic.Bool, *receiver.Receiver, hook, deliver.Config) {
	h := newHarness(t)
	healthy := &atomic.Bool{}
	rc := newReceiver(t, switchable(healthy))
	cfg := h.config()
	cfg.Concurrency = 1
	return h, healthy, rc, h.webhook(rc.URL), cfg
}

// switchable answers 500 until healthy is set, then 200.
func switchable(healthy *atomic.Bool) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// TestBreaker_OpensParksProbesAndClosesWithNoAttemptLostOrWasted: after
// Failures consecutive failures the breaker opens; deliveries that arrive
// then are parked without an attempt; probes go one at a time after the
// cool-down; once the endpoint answers again one probe closes the breaker
// and every parked delivery is delivered with exactly the attempts it
// needed.
func TestBreaker_OpensParksProbesAndClosesWithNoAttemptLostOrWasted(t *testing.T) {
	t.Parallel()
	h, healthy, rc, wh, cfg := newFailingEndpoint(t)
	cfg.RetrySchedule = []time.Duration{500 * time.Millisecond}
	cfg.Breaker = deliver.BreakerConfig{Failures: 3, Cooldown: 300 * time.Millisecond, MaxCooldown: 600 * time.Millisecond}
	h.startWorker(cfg)

	start := time.Now() // the breaker opens after this: probes are bounded by the time since
	var all []uuid.UUID
	for range 3 {
		all = append(all, h.delivery(wh.ID, 10))
	}
	testwait.Until(t, 10*time.Second, func() bool { return h.health(wh.ID).Circuit == "open" },
		func() string { return "circuit " + h.health(wh.ID).Circuit + ", want open after 3 failures" })

	for range 10 {
		all = append(all, h.delivery(wh.ID, 10))
	}
	// While the endpoint keeps failing, deliveries wait parked (the new
	// ones, and the first three when their retries come due): one at a
	// time goes as a probe, once per cool-down.
	testwait.Until(t, 10*time.Second, func() bool {
		return h.count(`SELECT count(*) FROM hookrelay.deliveries WHERE id = ANY($1) AND parked_at IS NOT NULL`, all) >= 10 &&
			h.count(`SELECT count(*) FROM hookrelay.delivery_attempts WHERE delivery_id = ANY($1)`, all) >= 4
	}, func() string { return "deliveries are not parked, or no probe went after the cool-down" })
	healthy.Store(true)
	healed := time.Now()

	for _, id := range all {
		h.waitStatus(id, "delivered", 10*time.Second)
	}
	if c := h.health(wh.ID); c.Circuit != "closed" || c.Failures != 0 || c.FailingSince != nil {
		t.Fatalf("health after recovery %+v, want closed with no failures", c)
	}
	// No attempt lost or wasted: every delivery made exactly one successful
	// attempt, and the failed ones after the breaker opened are probes: at
	// most one per cool-down (300 ms, growing) while it was open.
	failed := h.count(`SELECT count(*) FROM hookrelay.delivery_attempts WHERE delivery_id = ANY($1) AND status_code = 500`, all)
	total := h.count(`SELECT count(*) FROM hookrelay.delivery_attempts WHERE delivery_id = ANY($1)`, all)
	probes, maxProbes := failed-3, int(healed.Sub(start)/(300*time.Millisecond))+1
	if total != len(all)+failed || probes < 1 || probes > maxProbes {
		t.Fatalf("%d attempts of which %d failed: want %d successes, 3 failures before the breaker opened "+
			"and 1–%d failed probes", total, failed, len(all), maxProbes)
	}
	if n := len(rc.Requests()); n != total {
		t.Fatalf("receiver got %d requests, recorded attempts %d: every request must be one attempt row", n, total)
	}
	// The transitions are operational events in the outbox.
	for _, typ := range []string{deliver.EventWebhookCircuitOpened, deliver.EventWebhookCircuitClosed} {
		if n := h.count(`SELECT count(*) FROM hookrelay.outbox WHERE event_type = $1 AND project_id = $2
			AND data -> 'webhook' ->> 'id' = $3`, typ, h.project, wh.ID.String()); n != 1 {
			t.Fatalf("%d %s events, want 1", n, typ)
		}
	}
}

// TestBreaker_AutoDisableSkipsParkedAndPendingDeliveries: an endpoint that
// fails without a single success for DisableAfter is deactivated with its
// reason; its parked deliveries end skipped with that reason, and
// webhook.disabled is emitted.
func TestBreaker_AutoDisableSkipsParkedAndPendingDeliveries(t *testing.T) {
	t.Parallel()
	h, _, _, wh, cfg := newFailingEndpoint(t)
	cfg.RetrySchedule = []time.Duration{time.Hour}
	cfg.Breaker = deliver.BreakerConfig{Failures: 2, Cooldown: 200 * time.Millisecond, MaxCooldown: 200 * time.Millisecond,
		DisableAfter: time.Second}
	h.startWorker(cfg)
	start := time.Now()
	h.delivery(wh.ID, 10)
	h.delivery(wh.ID, 10)
	testwait.Until(t, 10*time.Second, func() bool { return h.health(wh.ID).Circuit == "open" },
		func() string { return "circuit " + h.health(wh.ID).Circuit + ", want open" })
	var parked []uuid.UUID
	for range 5 {
		parked = append(parked, h.delivery(wh.ID, 10))
	}

	var active bool
	var reason *string
	var disabledAt *time.Time
	testwait.Until(t, 10*time.Second, func() bool {
		if err := h.db.Pool.QueryRow(t.Context(), `SELECT is_active, disabled_reason, disabled_at FROM hookrelay.webhooks WHERE id = $1`,
			wh.ID).Scan(&active, &reason, &disabledAt); err != nil {
			t.Fatal(err)
		}
		return !active
	}, func() string { return "webhook still active after failing for longer than DisableAfter" })
	if reason == nil || !strings.Contains(*reason, "without a success since") || disabledAt == nil {
		t.Fatalf("disabled_reason %v, disabled_at %v: want the reason and the time", reason, disabledAt)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("disabled after %s, before DisableAfter (1s)", took)
	}
	for _, id := range parked {
		d := h.waitStatus(id, "skipped", 10*time.Second)
		if d.LastError == nil || !strings.Contains(*d.LastError, "without a success since") {
			t.Fatalf("parked delivery %+v, want skipped with the webhook's reason", d)
		}
	}
	var data []byte
	if err := h.db.Pool.QueryRow(t.Context(), `SELECT data FROM hookrelay.outbox WHERE event_type = 'webhook.disabled' AND project_id = $1`,
		h.project).Scan(&data); err != nil {
		t.Fatalf("webhook.disabled event: %v", err)
	}
	var ev struct {
		Webhook        struct{ ID uuid.UUID }
		DisabledReason string `json:"disabled_reason"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.Webhook.ID != wh.ID || ev.DisabledReason != *reason {
		t.Fatalf("webhook.disabled data %s, want the webhook and its reason", data)
	}
}

// TestWorker_ExhaustedDeliveryEmitsDeliveryFailed: a delivery that fails
// its last attempt emits delivery.failed; a failing delivery of a
// delivery.failed event does not emit another.
func TestWorker_ExhaustedDeliveryEmitsDeliveryFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, statusThen(http.StatusInternalServerError, 100))
	wh := h.webhook(rc.URL)
	h.startWorker(h.config())
	id := h.delivery(wh.ID, 1)
	h.waitStatus(id, "failed", 10*time.Second)
	var data []byte
	if err := h.db.Pool.QueryRow(t.Context(), `SELECT data FROM hookrelay.outbox WHERE event_type = 'delivery.failed'`).Scan(&data); err != nil {
		t.Fatalf("delivery.failed event: %v", err)
	}
	var ev struct {
		Delivery struct {
			ID                 uuid.UUID
			Attempts           int
			LastResponseStatus int `json:"last_response_status"`
		}
		Webhook struct{ ID uuid.UUID }
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.Delivery.ID != id || ev.Delivery.Attempts != 1 ||
		ev.Delivery.LastResponseStatus != 500 || ev.Webhook.ID != wh.ID {
		t.Fatalf("delivery.failed data %s, want the delivery, its attempts, last status and webhook", data)
	}

	// A delivery of that delivery.failed event that fails emits nothing.
	var opsID uuid.UUID
	if err := h.db.Pool.QueryRow(t.Context(), `
		INSERT INTO hookrelay.deliveries (event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts)
		SELECT id, $1, project_id, event_type, data, created_at, 1 FROM hookrelay.outbox WHERE event_type = 'delivery.failed'
		RETURNING id`, wh.ID).Scan(&opsID); err != nil {
		t.Fatal(err)
	}
	h.publish(opsID)
	h.waitStatus(opsID, "failed", 10*time.Second)
	if n := h.count(`SELECT count(*) FROM hookrelay.outbox WHERE event_type = 'delivery.failed'`); n != 1 {
		t.Fatalf("%d delivery.failed events, want 1: a failed delivery of delivery.failed must not emit another", n)
	}
}

// TestOperationalEvents_ReachASubscribedWebhook: with a relay running, the
// breaker's and the dead letter's events reach a webhook that subscribed to
// them, as ordinary signed deliveries.
func TestOperationalEvents_ReachASubscribedWebhook(t *testing.T) {
	t.Parallel()
	h, _, _, wh, cfg := newFailingEndpoint(t)
	opsRC := newReceiver(t, nil)
	var ops uuid.UUID
	if err := h.db.Pool.QueryRow(t.Context(), `INSERT INTO hookrelay.webhooks (project_id, name, url, secret, event_types)
		VALUES ($1, 'ops', $2, 'whsec_ops', $3) RETURNING id`, h.project, opsRC.URL, deliver.OperationalEventTypes()).Scan(&ops); err != nil {
		t.Fatal(err)
	}
	// The deliveries exist before the relay starts: the relay fans the same
	// events out to wh (subscribed to "*") and would race the inserts.
	first, second := h.createDelivery(wh.ID, 1), h.createDelivery(wh.ID, 1)
	r := relay.New(h.db.Pool, h.rdb, relay.Config{Stream: h.keys.Stream, PollInterval: 50 * time.Millisecond}, nil, nil)
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	cfg.Breaker = deliver.BreakerConfig{Failures: 2, Cooldown: time.Hour}
	h.startWorker(cfg)
	h.publish(first, second)

	want := map[string]bool{deliver.EventWebhookCircuitOpened: true, deliver.EventDeliveryFailed: true}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	reqs, err := opsRC.Wait(ctx, func(reqs []receiver.Request) bool {
		seen := map[string]int{}
		for _, r := range reqs {
			var ev struct{ Type string }
			_ = json.Unmarshal(r.Body, &ev)
			seen[ev.Type]++
		}
		return seen[deliver.EventWebhookCircuitOpened] == 1 && seen[deliver.EventDeliveryFailed] == 2
	})
	if err != nil {
		t.Fatalf("operational events at the subscribed webhook: %d requests, want %v: %v", len(reqs), want, err)
	}
	for _, r := range reqs {
		if r.Header.Get("X-Agenta-Signature") == "" {
			t.Fatalf("operational event delivered unsigned: %v", r.Header)
		}
	}
}
