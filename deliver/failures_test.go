package deliver_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// classes returns the error class of each attempt ("" for none).
func classes(att []attemptRow) []string {
	out := make([]string, len(att))
	for i, a := range att {
		if a.ErrorClass != nil {
			out[i] = *a.ErrorClass
		}
	}
	return out
}

func TestWorker_TimeoutIsRecordedAndRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // hang until the sender gives up
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	wh := h.webhook(rc.URL)
	cfg := h.config()
	cfg.Send.Timeout = 300 * time.Millisecond
	h.startWorker(cfg)
	id := h.delivery(wh.ID, 3)

	h.waitStatus(id, "delivered", 10*time.Second)
	att := h.attempts(id)
	if got := classes(att); len(att) != 2 || got[0] != "timeout" || att[0].StatusCode != nil || att[0].Error == nil {
		t.Fatalf("attempts %+v (classes %v), want a timeout without status then a success", att, got)
	}
	if att[0].DurationMS < 250 {
		t.Fatalf("timed-out attempt took %.0f ms, want about the 300 ms timeout", att[0].DurationMS)
	}
}

func TestWorker_ConnectionRefusedFailsAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	wh := h.webhook("http://" + addr + "/hook")
	h.startWorker(h.config())
	id := h.delivery(wh.ID, 2)

	d := h.waitStatus(id, "failed", 10*time.Second)
	att := h.attempts(id)
	if got := classes(att); len(att) != 2 || got[0] != "connection_refused" || got[1] != "connection_refused" {
		t.Fatalf("attempt classes %v, want two connection_refused", got)
	}
	if d.LastError == nil || !strings.HasPrefix(*d.LastError, "connection_refused") || d.LastStatus != nil {
		t.Fatalf("delivery %+v, want last_error naming connection_refused and no status", d)
	}
}

func TestWorker_RedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	wh := h.webhook(rc.URL)
	h.startWorker(h.config())
	id := h.delivery(wh.ID, 1)

	d := h.waitStatus(id, "failed", 10*time.Second)
	if d.LastStatus == nil || *d.LastStatus != http.StatusFound {
		t.Fatalf("delivery %+v, want last status 302", d)
	}
	if n := len(target.Requests()); n != 0 {
		t.Fatalf("redirect target got %d requests, want 0", n)
	}
}

func TestWorker_GoneDeactivatesWebhookAndSkipsItsNextDeliveries(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, statusThen(http.StatusGone, 100))
	wh := h.webhook(rc.URL)
	h.startWorker(h.config())
	id := h.delivery(wh.ID, 5)

	d := h.waitStatus(id, "failed", 10*time.Second)
	if d.Attempts != 1 {
		t.Fatalf("410 delivery made %d attempts, want 1", d.Attempts)
	}
	var active bool
	var reason *string
	if err := h.db.Pool.QueryRow(t.Context(), `SELECT is_active, disabled_reason FROM hookrelay.webhooks WHERE id = $1`, wh.ID).
		Scan(&active, &reason); err != nil {
		t.Fatal(err)
	}
	if active || reason == nil || !strings.Contains(*reason, "410") {
		t.Fatalf("webhook is_active=%v disabled_reason=%v, want deactivated with a reason naming 410", active, reason)
	}
	next := h.delivery(wh.ID, 5)
	d = h.waitStatus(next, "skipped", 10*time.Second)
	if d.LastError == nil || !strings.Contains(*d.LastError, "410") {
		t.Fatalf("next delivery %+v, want skipped with the webhook's reason", d)
	}
	if n := len(rc.Requests()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
}

func TestWorker_RefusesPrivateAddressesUnlessAllowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	loopback := h.webhook(rc.URL)
	metadata := h.webhook("http://169.254.169.254/latest/meta-data/")
	cfg := h.config()
	cfg.Send.AllowPrivate = false
	cfg.Send.Timeout = 500 * time.Millisecond
	h.startWorker(cfg)
	ids := []uuid.UUID{h.delivery(loopback.ID, 2), h.delivery(metadata.ID, 2)}

	for _, id := range ids {
		h.waitStatus(id, "failed", 10*time.Second)
		att := h.attempts(id)
		if got := classes(att); len(att) != 2 || got[0] != "forbidden_address" || got[1] != "forbidden_address" {
			t.Fatalf("attempt classes %v, want two forbidden_address", got)
		}
		if att[0].Error == nil || *att[0].Error == "" {
			t.Fatal("refused attempt has no error message")
		}
	}
	if n := len(rc.Requests()); n != 0 {
		t.Fatalf("loopback receiver got %d requests, want 0", n)
	}
}

func TestWorker_SkipsInactiveAndDeletedWebhooks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	paused := h.webhook(rc.URL)
	h.exec(`UPDATE hookrelay.webhooks SET is_active = false, disabled_reason = 'paused by user' WHERE id = $1`, paused.ID)
	deleted := h.webhook(rc.URL)
	h.startWorker(h.config())
	pausedDelivery := h.createDelivery(paused.ID, 3)
	deletedDelivery := h.createDelivery(deleted.ID, 3)
	h.exec(`DELETE FROM hookrelay.webhooks WHERE id = $1`, deleted.ID)
	h.publish(pausedDelivery, deletedDelivery)

	for id, why := range map[uuid.UUID]string{pausedDelivery: "paused by user", deletedDelivery: "webhook deleted"} {
		d := h.waitStatus(id, "skipped", 10*time.Second)
		if d.LastError == nil || !strings.Contains(*d.LastError, why) || d.Attempts != 0 {
			t.Fatalf("skipped delivery %+v, want last_error containing %q and no attempt", d, why)
		}
	}
	if n := len(rc.Requests()); n != 0 {
		t.Fatalf("receiver got %d requests, want 0", n)
	}
	if got := testutil.ToFloat64(h.m.Deliveries.WithLabelValues("skipped")); got != 2 {
		t.Fatalf("skipped outcomes = %v, want 2", got)
	}
}

// TestWorker_RetryPublishedBeforeTheAckIsNotDropped: a retry due at once can
// be put back on the stream, and read here, before the failed attempt's
// entry is acknowledged; the worker holds that entry as a duplicate, and
// acknowledging it with the first dropped the retry (the delivery stayed
// pending with no entry and no job). It must be attempted again.
func TestWorker_RetryPublishedBeforeTheAckIsNotDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, statusThen(http.StatusInternalServerError, 1))
	wh := h.webhook(rc.URL)
	cfg := h.config()
	cfg.RetrySchedule = []time.Duration{time.Millisecond}
	cfg.ClaimIdle = time.Second
	w, err := deliver.NewWorker(h.db.Pool, h.rdb, h.jobs.River(), cfg, h.reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := true
	w.AfterRecord(func() {
		if !first {
			return
		}
		first = false
		// The retry's own entry is read (pending on this worker) before
		// the first entry is acknowledged.
		testwait.Until(t, 10*time.Second, func() bool {
			p, err := h.rdb.XPending(t.Context(), h.keys.Stream, h.keys.Group).Result()
			return err == nil && p.Count == 2
		}, func() string { return "the retry's entry was not read before the acknowledgement" })
	})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	id := h.delivery(wh.ID, 5)
	if d := h.waitStatus(id, "delivered", 10*time.Second); d.Attempts != 2 {
		t.Fatalf("delivery %+v, want delivered on its second attempt", d)
	}
}
