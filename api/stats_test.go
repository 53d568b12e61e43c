package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/api"
)

func TestStats_CountsTheProjectsDeliveriesByBucketStatusAndWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.Group = "stats-group" })
	a := e.createWebhook("https://x.example/a", nil)["id"].(string)
	b := e.createWebhook("https://x.example/b", nil)["id"].(string)
	now := time.Now()
	e.insertDelivery(a, now.Add(-time.Minute), "delivered")
	e.insertDelivery(a, now.Add(-2*time.Minute), "failed")
	e.insertDelivery(b, now.Add(-3*time.Minute), "pending")
	e.insertDelivery(b, now.Add(-2*time.Hour), "delivered") // outside 1h, inside 24h
	e.exec(`UPDATE hookrelay.deliveries SET delivered_at = created_at + interval '40 ms', event_created_at = created_at WHERE status = 'delivered'`)

	s := e.do("GET", "/stats", nil).want(t, http.StatusOK)
	totals := s["totals"].(map[string]any)
	if totals["delivered"] != 1.0 || totals["failed"] != 1.0 || totals["pending"] != 1.0 {
		t.Errorf("1h totals %v, want 1 delivered, 1 failed, 1 pending", totals)
	}
	if s["success_ratio"] != 0.5 || len(s["series"].([]any)) != 60 || s["bucket_seconds"] != 60.0 {
		t.Errorf("1h: ratio %v, %d buckets of %v s; want 0.5, 60 of 60", s["success_ratio"], len(s["series"].([]any)), s["bucket_seconds"])
	}
	if p50 := s["latency_ms"].(map[string]any)["p50"].(float64); p50 < 39 || p50 > 41 {
		t.Errorf("p50 %v ms, want 40", p50)
	}
	if bl := s["backlog"].(map[string]any); bl["pending"] != 1.0 || bl["oldest_pending_at"] == nil {
		t.Errorf("backlog %v, want one pending with its time", bl)
	}
	if s["stream"] == nil {
		t.Error("stream stats are null with Redis up")
	}
	day := e.do("GET", "/stats?window=24h", nil).want(t, http.StatusOK)
	if n := day["totals"].(map[string]any)["delivered"]; n != 2.0 || len(day["series"].([]any)) != 96 {
		t.Errorf("24h: %v delivered in %d buckets, want 2 in 96", n, len(day["series"].([]any)))
	}
	e.do("GET", "/stats?window=7d", nil).wantError(t, 400, "invalid_field", "window:")
}
