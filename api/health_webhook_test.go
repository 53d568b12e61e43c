package api_test

import (
	"net/http"
	"testing"
)

// TestWebhooks_HealthAndLimitsAreShownAndReEnablingResetsHealth: a webhook
// shows its limits and its endpoint's health; auto-disable's reason and
// time are shown; re-enabling clears them and starts the health afresh.
func TestWebhooks_HealthAndLimitsAreShownAndReEnablingResetsHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	created := e.createWebhook("https://hooks.example.com/in", func(m map[string]any) {
		m["rate_limit"] = 10
		m["event_types"] = []string{"config.deployed", "webhook.circuit_opened", "delivery.failed"}
	})
	id := created["id"].(string)
	health, _ := created["health"].(map[string]any)
	if created["rate_limit"] != float64(10) || created["max_in_flight"] != nil || health["circuit"] != "closed" ||
		health["consecutive_failures"] != float64(0) || created["disabled_reason"] != nil {
		t.Fatalf("new webhook: rate_limit %v, max_in_flight %v, health %v, disabled_reason %v",
			created["rate_limit"], created["max_in_flight"], health, created["disabled_reason"])
	}
	patched := e.do("PATCH", "/webhooks/"+id, map[string]any{"rate_limit": nil, "max_in_flight": 4}).want(t, http.StatusOK)
	if patched["rate_limit"] != nil || patched["max_in_flight"] != float64(4) {
		t.Fatalf("after PATCH: rate_limit %v, max_in_flight %v", patched["rate_limit"], patched["max_in_flight"])
	}

	// What the worker writes when the endpoint fails and is disabled.
	e.exec(`INSERT INTO hookrelay.webhook_health (webhook_id, circuit, consecutive_failures, failing_since, retry_at)
		VALUES ($1, 'open', 25, now() - interval '5 days', now() + interval '10 minutes')`, id)
	e.exec(`UPDATE hookrelay.webhooks SET is_active = false, disabled_reason = 'endpoint failed without a success since then',
		disabled_at = now() WHERE id = $1`, id)
	got := e.do("GET", "/webhooks/"+id, nil).want(t, http.StatusOK)
	health, _ = got["health"].(map[string]any)
	if health["circuit"] != "open" || health["consecutive_failures"] != float64(25) || health["failing_since"] == nil ||
		got["disabled_reason"] == nil || got["disabled_at"] == nil || got["is_active"] != false {
		t.Fatalf("disabled webhook shows health %v, disabled_reason %v, disabled_at %v", health, got["disabled_reason"], got["disabled_at"])
	}

	again := e.do("PATCH", "/webhooks/"+id, map[string]any{"is_active": true}).want(t, http.StatusOK)
	health, _ = again["health"].(map[string]any)
	if again["is_active"] != true || again["disabled_reason"] != nil || again["disabled_at"] != nil ||
		health["circuit"] != "closed" || health["consecutive_failures"] != float64(0) {
		t.Fatalf("re-enabled webhook: is_active %v, disabled_reason %v, disabled_at %v, health %v",
			again["is_active"], again["disabled_reason"], again["disabled_at"], health)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.webhook_health WHERE webhook_id = $1`, id); n != 0 {
		t.Fatalf("health row kept after re-enabling")
	}
}
