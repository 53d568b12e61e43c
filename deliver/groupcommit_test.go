package deliver_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/receiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// batchedConfig is a worker configuration whose batches fill up: a lingering
// batch waits long enough for every attempt of a small test to join it.
func (h *harness) batchedConfig() deliver.Config {
	cfg := h.config()
	cfg.Concurrency = 32
	cfg.RecordBatch = 64
	cfg.RecordLinger = 200 * time.Millisecond
	return cfg
}

func TestWorker_GroupCommitsManyDeliveriesInFewTransactions(t *testing.T) {
	t.Parallel()
	h, _, wh := newHookedHarness(t)
	const n = 200
	ids := h.createDeliveries(wh.ID, n)
	w := h.startWorker(h.batchedConfig())
	h.publish(ids...)

	testwait.Until(t, 30*time.Second, func() bool {
		return h.count(`SELECT count(*) FROM hookrelay.deliveries WHERE status = 'delivered'`) == n
	},
		func() string { return "not every delivery was delivered" })
	h.waitStreamEmpty(5 * time.Second)
	if got := h.count(`SELECT count(*) FROM hookrelay.delivery_attempts WHERE attempt = 1 AND status_code = 200`); got != n {
		t.Fatalf("%d attempt rows, want %d (one per delivery, attempt 1, status 200)", got, n)
	}
	if got := h.count(`SELECT count(*) FROM hookrelay.deliveries WHERE attempts = 1 AND delivered_at IS NOT NULL
		AND last_response_status = 200 AND next_attempt_at IS NULL`); got != n {
		t.Fatalf("%d deliveries carry their attempt, want %d", got, n)
	}
	if txs := w.RecordTransactions(); txs == 0 || txs > n/5 {
		t.Fatalf("%d deliveries recorded in %d transactions, want at most %d", n, txs, n/5)
	}
	if got := testutil.ToFloat64(h.m.Deliveries.WithLabelValues("delivered")); got != n {
		t.Fatalf("delivered outcomes = %v, want %d", got, n)
	}
}

func TestWorker_UnrecordableDeliveryDoesNotHoldUpItsBatch(t *testing.T) {
	t.Parallel()
	h, _, wh := newHookedHarness(t)
	const n = 20
	ids := h.createDeliveries(wh.ID, n)
	poison := ids[n/2]
	// Postgres refuses the attempt row of one delivery, and so the whole
	// batch's transaction.
	h.exec(`CREATE FUNCTION public.refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.delivery_id = '` + poison.String() + `' THEN RAISE EXCEPTION 'refused by test'; END IF;
    RETURN NEW;
END $$`)
	h.exec(`CREATE TRIGGER refuse_attempt BEFORE INSERT ON hookrelay.delivery_attempts
FOR EACH ROW EXECUTE FUNCTION public.refuse_attempt()`)
	w := h.startWorker(h.batchedConfig())
	h.publish(ids...)

	testwait.Until(t, 30*time.Second, func() bool {
		return h.count(`SELECT count(*) FROM hookrelay.deliveries WHERE status = 'delivered'`) == n-1
	},
		func() string { return "the other deliveries of the batch were not delivered" })
	if got := h.count(`SELECT count(*) FROM hookrelay.delivery_attempts`); got != n-1 {
		t.Fatalf("%d attempt rows, want %d", got, n-1)
	}
	if d := h.state(poison); d.Status != "pending" || d.Attempts != 0 {
		t.Fatalf("unrecordable delivery %+v, want pending with no attempt", d)
	}
	// Its entry alone stays pending in the group, for the claim loop.
	var pending []string
	testwait.Until(t, 5*time.Second, func() bool {
		p, err := h.rdb.XPendingExt(t.Context(), &redis.XPendingExtArgs{
			Stream: h.keys.Stream, Group: h.keys.Group, Start: "-", End: "+", Count: 10,
		}).Result()
		pending = pending[:0]
		for _, e := range p {
			pending = append(pending, e.ID)
		}
		return err == nil && len(pending) == 1
	}, func() string { return "want exactly one entry pending" })
	entries, err := h.rdb.XRange(t.Context(), h.keys.Stream, pending[0], pending[0]).Result()
	if err != nil || len(entries) != 1 || entries[0].Values["delivery_id"] != poison.String() {
		t.Fatalf("pending entry %v (%v), want the unrecordable delivery %s", entries, err, poison)
	}
	if txs := w.RecordTransactions(); txs < n-1 {
		t.Fatalf("%d recording transactions, want the failed batch recorded one by one (at least %d)", txs, n-1)
	}
}

// TestWorker_DuplicateEntriesInFlightAreSentOnce reads three entries of one
// delivery together (as after a Redis outage, when the relay and the
// reconciler both publish it): the delivery is sent once, and every entry
// is acknowledged.
func TestWorker_DuplicateEntriesInFlightAreSentOnce(t *testing.T) {
	t.Parallel()
	h, rc, wh := newHookedHarness(t)
	id := h.createDelivery(wh.ID, 5)
	h.publish(id, id, id)
	h.startWorker(h.batchedConfig())

	h.waitStreamEmpty(10 * time.Second)
	d := h.state(id)
	if sent := len(rc.Requests()); d.Status != "delivered" || d.Attempts != 1 || sent != 1 {
		t.Fatalf("delivery %+v after %d requests, want delivered after one", d, sent)
	}
}

func TestWorker_StopRecordsLingeringBatchAtOnce(t *testing.T) {
	t.Parallel()
	h, rc, wh := newHookedHarness(t)
	cfg := h.config()
	cfg.RecordLinger = time.Hour // only Stop can end this batch's wait
	w := h.startWorker(cfg)
	id := h.delivery(wh.ID, 3)
	testwait.Until(t, 10*time.Second, func() bool { return len(rc.Requests()) == 1 },
		func() string { return "the worker never sent the delivery" })
	if d := h.state(id); d.Status != "pending" {
		t.Fatalf("delivery %s before its batch was recorded, want pending", d.Status)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if d := h.state(id); d.Status != "delivered" || d.Attempts != 1 {
		t.Fatalf("after Stop the delivery is %+v, want delivered on attempt 1", d)
	}
	if n, _ := h.rdb.XLen(t.Context(), h.keys.Stream).Result(); n != 0 {
		t.Fatalf("stream holds %d entries after Stop, want 0 (acked and deleted)", n)
	}
}

// newHookedHarness is a harness with a receiver answering 200 and a webhook
// that delivers to it.
func newHookedHarness(t *testing.T) (*harness, *receiver.Receiver, hook) {
	h := newHarness(t)
	rc := newReceiver(t, nil)
	return h, rc, h.webhook(rc.URL)
}

// createDeliveries creates n pending deliveries of a webhook, not yet published.
func (h *harness) createDeliveries(webhookID uuid.UUID, n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = h.createDelivery(webhookID, 3)
	}
	return ids
}

// waitStreamEmpty waits until every entry was acknowledged and deleted.
func (h *harness) waitStreamEmpty(within time.Duration) {
	h.t.Helper()
	testwait.Until(h.t, within, func() bool {
		l, err := h.rdb.XLen(context.Background(), h.keys.Stream).Result()
		return err == nil && l == 0
	}, func() string { return "entries not acknowledged and deleted" })
}
