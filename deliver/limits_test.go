package deliver_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/receiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// sendLimited sends n deliveries to a webhook of rc whose limit column is
// set to limit, through two workers as two processes would run them
// (separate consumers, one Redis and one Postgres), and waits until each is
// delivered on its first attempt.
func (h *harness) sendLimited(rc *receiver.Receiver, column string, limit, n int) {
	h.t.Helper()
	wh := h.webhook(rc.URL)
	h.exec(`UPDATE hookrelay.webhooks SET `+column+` = $2 WHERE id = $1`, wh.ID, limit)
	cfg := h.config()
	cfg.Concurrency = 16
	for _, name := range []string{"worker-a", "worker-b"} {
		c := cfg
		c.Consumer = name
		h.startWorker(c)
	}
	h.waitDelivered(h.deliveries(wh.ID, n), 20*time.Second)
}

// deliveries creates and publishes n deliveries for webhook.
func (h *harness) deliveries(webhook uuid.UUID, n int) []uuid.UUID {
	h.t.Helper()
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = h.createDelivery(webhook, 3)
	}
	h.publish(ids...)
	return ids
}

// waitDelivered waits until every delivery is delivered, each with one attempt.
func (h *harness) waitDelivered(ids []uuid.UUID, within time.Duration) {
	h.t.Helper()
	for _, id := range ids {
		if d := h.waitStatus(id, "delivered", within); d.Attempts != 1 {
			h.t.Fatalf("delivery %s made %d attempts, want 1: flow control must use no attempt", id, d.Attempts)
		}
	}
}

// TestLimits_MaxInFlightHoldsAcrossTwoWorkers: with max_in_flight 3, the
// receiver never sees more than 3 requests at once from two workers, and
// every delivery gets through on its first attempt.
func TestLimits_MaxInFlightHoldsAcrossTwoWorkers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var now, peak atomic.Int32
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(50 * time.Millisecond) // the receiver is slow: requests overlap
		now.Add(-1)
		w.WriteHeader(http.StatusOK)
	})
	h.sendLimited(rc, "max_in_flight", 3, 40)
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("receiver saw %d requests at once, want at most max_in_flight (3), and overlap (≥ 2)", p)
	}
}

// TestLimits_RateLimitHoldsAcrossTwoWorkers: with rate_limit 20, two
// workers send 40 deliveries no faster than 20 a second.
func TestLimits_RateLimitHoldsAcrossTwoWorkers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	h.sendLimited(rc, "rate_limit", 20, 40)
	reqs := rc.Requests()
	at := make([]time.Time, len(reqs))
	for i, r := range reqs {
		at[i] = r.At
	}
	slices.SortFunc(at, time.Time.Compare)
	// Slots are 50 ms apart and no request starts before its slot, so the
	// last starts 1.95 s after the first slot (allow the first to have been
	// 150 ms late). A request that starts late (a busy machine) lands in
	// the next second with that second's own: allow three such per window.
	if span := at[len(at)-1].Sub(at[0]); span < 1800*time.Millisecond {
		t.Fatalf("40 requests within %s, want at least 1.8s at 20/s", span)
	}
	for i := range at {
		j := i
		for j < len(at) && at[j].Sub(at[i]) < time.Second {
			j++
		}
		if n := j - i; n > 23 {
			t.Fatalf("%d requests within one second from %s, want at most 20 and three late ones at 20/s", n, at[i].Format(time.StampMilli))
		}
	}
}

// TestLimits_RetryAfterPausesTheWholeEndpoint: a 429 with Retry-After: 1
// holds back every delivery of that endpoint, not only the one answered.
func TestLimits_RetryAfterPausesTheWholeEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, _ *http.Request) {
		if i == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	wh := h.webhook(rc.URL)
	h.startWorker(h.config())
	first := h.delivery(wh.ID, 3)
	testwait.Until(t, 5*time.Second, func() bool {
		return h.count(`SELECT count(*) FROM hookrelay.webhook_health WHERE webhook_id = $1 AND paused_until > now()`, wh.ID) == 1
	}, func() string { return "the 429's pause is not recorded on the endpoint" })
	refused := rc.Requests()[0].At
	others := h.deliveries(wh.ID, 5)
	h.waitDelivered(others, 10*time.Second)
	h.waitStatus(first, "delivered", 10*time.Second)
	for _, r := range rc.Requests()[1:] {
		if r.At.Before(refused.Add(time.Second)) {
			t.Fatalf("a request came %s after the 429 asked for 1 s", r.At.Sub(refused))
		}
	}
}

// TestLimits_LimitedBacklogDoesNotDelayOtherEndpoints: one endpoint
// limited to 10/s with a 2,000-delivery backlog ahead of it on the stream;
// another, unlimited endpoint's deliveries still arrive promptly, and the
// limited one gets no more than its rate.
func TestLimits_LimitedBacklogDoesNotDelayOtherEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	limitedRC := newReceiver(t, nil)
	limited := h.webhook(limitedRC.URL)
	h.exec(`UPDATE hookrelay.webhooks SET rate_limit = 10 WHERE id = $1`, limited.ID)
	freeRC := newReceiver(t, nil)
	free := h.webhook(freeRC.URL)
	cfg := h.config()
	cfg.Concurrency = 64
	backlog := h.deliveries(limited.ID, 2000)
	start := time.Now()
	h.startWorker(cfg)
	var worst time.Duration
	for range 20 {
		sent := time.Now()
		id := h.delivery(free.ID, 3)
		h.waitStatus(id, "delivered", 10*time.Second)
		worst = max(worst, time.Since(sent))
	}
	if worst > 2*time.Second {
		t.Fatalf("the unlimited endpoint's slowest delivery took %s behind the limited backlog, want < 2s", worst)
	}
	elapsed := time.Since(start)
	if n, most := limitedRC.Count(), int(elapsed.Seconds()*10)+2; n > most {
		t.Fatalf("limited endpoint got %d requests in %s, want at most %d at 10/s", n, elapsed, most)
	}
	deferred := h.count(`SELECT count(*) FROM hookrelay.deliveries WHERE id = ANY($1) AND status = 'pending' AND next_attempt_at > now()`, backlog)
	if deferred < 1500 {
		t.Fatalf("%d of the backlog deferred to their slots, want nearly all", deferred)
	}
}

// TestShares_HangingEndpointDoesNotStarveAHealthyOne: an endpoint that
// never answers takes at most its share of the worker's slots, so a healthy
// endpoint's deliveries behind it on the stream go through long before the
// hanging requests time out (and long before its breaker can open).
func TestShares_HangingEndpointDoesNotStarveAHealthyOne(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	deadRC := newHangingReceiver(t)
	dead := h.webhook(deadRC.URL)
	healthy := h.webhook(newReceiver(t, nil).URL)
	cfg := h.config()
	cfg.Concurrency = 16
	cfg.Send.Timeout = 5 * time.Second
	h.startWorker(cfg)

	h.deliveries(dead.ID, 200)
	testwait.Until(t, 5*time.Second, func() bool { return deadRC.Count() >= 8 },
		func() string { return "the hanging endpoint got no requests" })
	sent := time.Now()
	ok := h.deliveries(healthy.ID, 50)
	h.waitDelivered(ok, 10*time.Second)
	if took := time.Since(sent); took > 2500*time.Millisecond {
		t.Fatalf("the healthy endpoint's 50 deliveries took %s behind a hanging endpoint, want well under its 5s timeout", took)
	}
	if n := deadRC.Count(); n > cfg.Concurrency {
		t.Fatalf("the hanging endpoint holds %d requests, more than the worker's %d slots", n, cfg.Concurrency)
	}
}

// newHangingReceiver never answers: each request waits until the client
// gives up or the test ends.
func newHangingReceiver(t *testing.T) *receiver.Receiver {
	hang := make(chan struct{})
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	})
	t.Cleanup(func() { close(hang) })
	return rc
}

// TestShares_HangingEndpointGetsItsBreakersFailuresNotItsShare: at the
// default concurrency (256 slots, so a share of 128), an endpoint that never
// answers gets about the breaker's threshold of requests (its slow-start
// window), not its share; when its breaker opens, the deliveries waiting in
// its line are parked at once, not when its last request times out.
func TestShares_HangingEndpointGetsItsBreakersFailuresNotItsShare(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	deadRC := newHangingReceiver(t)
	dead := h.webhook(deadRC.URL)
	cfg := h.config()
	cfg.Concurrency = deliver.DefaultConcurrency
	cfg.Breaker = deliver.BreakerConfig{Failures: 20, Cooldown: time.Hour}
	cfg.Send.Timeout = 4 * time.Second
	h.startWorker(cfg)

	ids := h.deliveries(dead.ID, 1000)
	published := time.Now()
	// The breaker opens one timeout after publication; the request started
	// as the last of the first 20 failed ends one timeout later still, and
	// its delivery is the only one not parked before then.
	parked := func() int {
		return h.count(`SELECT count(*) FROM hookrelay.deliveries WHERE id = ANY($1) AND parked_at IS NOT NULL`, ids)
	}
	testwait.Until(t, cfg.Send.Timeout+cfg.Send.Timeout/2, func() bool { return parked() >= len(ids)-1 }, func() string {
		return fmt.Sprintf("%s after publication, %d requests reached the hanging endpoint and %d of its 1,000 deliveries are parked",
			time.Since(published).Round(time.Millisecond), deadRC.Count(), parked())
	})
	if n := deadRC.Count(); n > cfg.Breaker.Failures+1 {
		t.Fatalf("%d requests reached the hanging endpoint before its breaker opened, want at most %d (its threshold, plus one)",
			n, cfg.Breaker.Failures+1)
	}
}
