package deliver_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/signature"
)

func TestWorker_DeliversSignedEnvelopeWithDesignHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	wh := h.webhook(rc.URL + "/hooks?x=1")
	h.startWorker(h.config())
	id := h.delivery(wh.ID, 3)

	d := h.waitStatus(id, "delivered", 10*time.Second)
	if d.Attempts != 1 || d.DeliveredAt == nil || d.NextAt != nil || d.LastStatus == nil || *d.LastStatus != 200 {
		t.Fatalf("delivery state %+v, want delivered on attempt 1 with status 200", d)
	}
	att := h.attempts(id)
	if len(att) != 1 || att[0].Attempt != 1 || att[0].StatusCode == nil || *att[0].StatusCode != 200 ||
		att[0].ErrorClass != nil || att[0].Error != nil || att[0].Body == nil || !strings.Contains(*att[0].Body, `"ok":true`) {
		t.Fatalf("attempt rows %+v, want one 200 row with the response body", att)
	}

	reqs := rc.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	for k, want := range map[string]string{
		"Content-Type":      "application/json",
		"User-Agent":        "Agenta-Webhooks/1.0",
		"X-Agenta-Delivery": id.String(),
		"X-Agenta-Event":    "config.deployed",
		"X-Custom":          "yes",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}

	// The body is the design's envelope of the stored event.
	var env struct {
		ID         uuid.UUID      `json:"id"`
		Type       string         `json:"type"`
		Timestamp  time.Time      `json:"timestamp"`
		APIVersion string         `json:"api_version"`
		ProjectID  uuid.UUID      `json:"project_id"`
		Data       map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	var eventID uuid.UUID
	var createdAt time.Time
	if err := h.db.Pool.QueryRow(t.Context(), `SELECT event_id, event_created_at FROM hookrelay.deliveries WHERE id = $1`, id).
		Scan(&eventID, &createdAt); err != nil {
		t.Fatal(err)
	}
	if env.ID != eventID || env.Type != "config.deployed" || !env.Timestamp.Equal(createdAt) ||
		env.APIVersion != deliver.APIVersion || env.ProjectID != h.project || env.Data["deployed_by"] != "ada@example.com" {
		t.Fatalf("envelope %+v does not describe event %s of project %s created at %s", env, eventID, h.project, createdAt)
	}

	// The signature verifies with the package and with an HMAC computed here.
	sig := r.Header.Get("X-Agenta-Signature")
	if err := signature.Verify(r.Body, sig, []string{wh.Secret}, 0); err != nil {
		t.Fatalf("signature.Verify: %v", err)
	}
	ts, v1, ok := strings.Cut(sig, ",v1=")
	ts = strings.TrimPrefix(ts, "t=")
	mac := hmac.New(sha256.New, []byte(wh.Secret))
	mac.Write([]byte(ts + "." + string(r.Body)))
	if !ok || v1 != hex.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("signature header %q does not match HMAC-SHA256(secret, t.body)", sig)
	}
	if got := testutil.ToFloat64(h.m.Deliveries.WithLabelValues("delivered")); got != 1 {
		t.Fatalf("delivered outcomes = %v, want 1", got)
	}
}

func TestWorker_RetriesOnScheduleUntilReceiverRecovers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, statusThen(http.StatusInternalServerError, 2))
	wh := h.webhook(rc.URL)
	cfg := h.config()
	cfg.RetrySchedule = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}
	h.startWorker(cfg)
	id := h.delivery(wh.ID, 5)

	d := h.waitStatus(id, "delivered", 15*time.Second)
	if d.Attempts != 3 {
		t.Fatalf("delivered after %d attempts, want 3", d.Attempts)
	}
	att := h.attempts(id)
	if len(att) != 3 {
		t.Fatalf("%d attempt rows, want 3", len(att))
	}
	for i, want := range []int{500, 500, 200} {
		if att[i].StatusCode == nil || *att[i].StatusCode != want {
			t.Fatalf("attempt %d status %v, want %d", i+1, att[i].StatusCode, want)
		}
	}
	if att[0].Error == nil || !strings.Contains(*att[0].Error, "500") {
		t.Fatalf("attempt 1 error %v, want it to name the 500", att[0].Error)
	}
	for i, delay := range cfg.RetrySchedule {
		gap := att[i+1].StartedAt.Sub(att[i].StartedAt)
		if minGap := delay * 9 / 10; gap < minGap {
			t.Fatalf("gap before attempt %d = %s, want at least %s (schedule %s minus 10%% jitter)", i+2, gap, minGap, delay)
		}
	}
	ids := map[string]bool{}
	for _, r := range rc.Requests() {
		ids[r.Header.Get("X-Agenta-Delivery")] = true
	}
	if len(ids) != 1 || !ids[id.String()] {
		t.Fatalf("delivery ids seen by the receiver %v, want only %s", ids, id)
	}
	if got := testutil.ToFloat64(h.m.RetriesScheduled); got != 2 {
		t.Fatalf("retries scheduled = %v, want 2", got)
	}
}

func TestWorker_FailsAfterMaxAttemptsThenReplayDelivers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var healthy atomic.Bool
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, "boom", http.StatusBadGateway)
	})
	wh := h.webhook(rc.URL)
	h.startWorker(h.config())
	id := h.delivery(wh.ID, 3)

	d := h.waitStatus(id, "failed", 15*time.Second)
	if d.Attempts != 3 || d.NextAt != nil || d.LastStatus == nil || *d.LastStatus != 502 {
		t.Fatalf("failed delivery %+v, want 3 attempts, no next attempt, last status 502", d)
	}
	if att := h.attempts(id); len(att) != 3 || att[2].Body == nil || !strings.Contains(*att[2].Body, "boom") {
		t.Fatalf("attempt rows %+v, want exactly 3 with the response body", att)
	}
	if got := testutil.ToFloat64(h.m.DeadLetters); got != 1 {
		t.Fatalf("dead letters = %v, want 1", got)
	}

	ctx := t.Context()
	if err := deliver.Replay(ctx, h.db.Pool, h.rdb, deliver.Streams{Base: h.keys.Stream}, uuid.New(), wh.ID, id); !errors.Is(err, deliver.ErrNotFound) {
		t.Fatalf("replay in another project: %v, want ErrNotFound", err)
	}
	healthy.Store(true)
	if err := deliver.Replay(ctx, h.db.Pool, h.rdb, deliver.Streams{Base: h.keys.Stream}, h.project, wh.ID, id); err != nil {
		t.Fatal(err)
	}
	d = h.waitStatus(id, "delivered", 10*time.Second)
	if d.Attempts != 4 || d.MaxAttempts != 4 {
		t.Fatalf("replayed delivery %+v, want delivered on attempt 4 of 4", d)
	}
	if len(h.attempts(id)) != 4 {
		t.Fatal("replay did not add exactly one attempt row")
	}
}

func TestReplay_RefusesPendingDelivery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wh := h.webhook("http://127.0.0.1:1/")
	id := h.createDelivery(wh.ID, 3)
	err := deliver.Replay(t.Context(), h.db.Pool, h.rdb, deliver.Streams{Base: h.keys.Stream}, h.project, wh.ID, id)
	if !errors.Is(err, deliver.ErrNotReplayable) {
		t.Fatalf("replay of a pending delivery: %v, want ErrNotReplayable", err)
	}
	if err := deliver.Replay(t.Context(), h.db.Pool, h.rdb, deliver.Streams{Base: h.keys.Stream}, h.project, uuid.New(), id); !errors.Is(err, deliver.ErrNotFound) {
		t.Fatalf("replay under another webhook: %v, want ErrNotFound", err)
	}
}

func TestReplay_RefusesDeliveryOfDeletedWebhookAndChangesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wh := h.webhook("http://127.0.0.1:1/")
	id := h.createDelivery(wh.ID, 3)
	h.exec(`UPDATE hookrelay.deliveries SET status = 'failed' WHERE id = $1`, id)
	h.exec(`DELETE FROM hookrelay.webhooks WHERE id = $1`, wh.ID)
	before := h.state(id)
	err := deliver.Replay(t.Context(), h.db.Pool, h.rdb, deliver.Streams{Base: h.keys.Stream}, h.project, wh.ID, id)
	if !errors.Is(err, deliver.ErrWebhookNotFound) || !errors.Is(err, deliver.ErrNotFound) {
		t.Fatalf("replay under a deleted webhook: %v, want ErrWebhookNotFound (an ErrNotFound)", err)
	}
	if after := h.state(id); after.Status != "failed" || after.MaxAttempts != before.MaxAttempts {
		t.Fatalf("refused replay changed the delivery: %+v → %+v", before, after)
	}
	if n, err := h.rdb.XLen(t.Context(), h.keys.Stream).Result(); err != nil || n != 0 {
		t.Fatalf("stream holds %d entries (%v), want none", n, err)
	}
}

func TestWorker_HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	wh := h.webhook(rc.URL)
	cfg := h.config()
	cfg.RetrySchedule = []time.Duration{50 * time.Millisecond}
	h.startWorker(cfg)
	id := h.delivery(wh.ID, 3)

	h.waitStatus(id, "delivered", 10*time.Second)
	att := h.attempts(id)
	if len(att) != 2 {
		t.Fatalf("%d attempts, want 2", len(att))
	}
	if gap := att[1].StartedAt.Sub(att[0].StartedAt); gap < time.Second {
		t.Fatalf("retried after %s, want at least the 1s of Retry-After", gap)
	}
}
