package deliver_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// recorder is a worker that is never started: the tests call Record.
func (h *harness) recorder(cfg deliver.Config) *deliver.Worker {
	h.t.Helper()
	w, err := deliver.NewWorker(h.db.Pool, h.rdb, h.jobs.River(), cfg, h.reg, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

func (h *harness) retryJobs(id uuid.UUID) []time.Time {
	h.t.Helper()
	rows, err := h.db.Pool.Query(h.t.Context(), `SELECT scheduled_at FROM hookrelay.river_job
		WHERE kind = $1 AND args->>'delivery_id' = $2`, deliver.RetryKind, id.String())
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, at)
	}
	return out
}

// TestRecord_RetryAfterALostCommitAnswerRecordsTheAttemptOnce is a COMMIT
// that reached the server while the connection broke: the recorder tries
// again, and the HTTP attempt must still be one audit row.
func TestRecord_RetryAfterALostCommitAnswerRecordsTheAttemptOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wh := h.webhook("http://127.0.0.1:1/")
	id := h.createDelivery(wh.ID, 5)
	w := h.recorder(h.config())
	res := httpsend.Result{StatusCode: 500, Started: time.Now()}
	if err := w.Record(t.Context(), wh.ID, []uuid.UUID{id}, res, false); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(t.Context(), wh.ID, []uuid.UUID{id}, res, true); err != nil {
		t.Fatal(err)
	}
	if att, d := h.attempts(id), h.state(id); len(att) != 1 || d.Attempts != 1 {
		t.Fatalf("%d attempt rows, attempts %d after recording one HTTP attempt twice; want 1 and 1", len(att), d.Attempts)
	}
	if jobs := h.retryJobs(id); len(jobs) != 1 {
		t.Fatalf("%d retry jobs, want 1", len(jobs))
	}
}

func TestRecord_TwoFailuresOfOneDeliveryInABatchScheduleOneRetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wh := h.webhook("http://127.0.0.1:1/")
	id := h.createDelivery(wh.ID, 5)
	w := h.recorder(h.config())
	res := httpsend.Result{StatusCode: 503, Started: time.Now()}
	if err := w.Record(t.Context(), wh.ID, []uuid.UUID{id, id}, res, false); err != nil {
		t.Fatal(err)
	}
	if att := h.attempts(id); len(att) != 2 || att[0].Attempt != 1 || att[1].Attempt != 2 || h.state(id).Attempts != 2 {
		t.Fatalf("attempt rows %+v, want two numbered 1 and 2 in batch order", att)
	}
	if jobs := h.retryJobs(id); len(jobs) != 1 {
		t.Fatalf("%d retry jobs for one delivery, want 1", len(jobs))
	}
}

// TestRecord_DueTimesFollowTheDatabaseClock records a failed attempt whose
// start the worker stamped ten minutes in the past (its clock is behind):
// the retry is due one schedule step after the database's now, in the
// delivery row and in its River job alike, which are judged against it.
func TestRecord_DueTimesFollowTheDatabaseClock(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wh := h.webhook("http://127.0.0.1:1/")
	id := h.createDelivery(wh.ID, 5)
	cfg := h.config()
	cfg.RetrySchedule = []time.Duration{time.Minute}
	w := h.recorder(cfg)
	res := httpsend.Result{StatusCode: 500, Started: time.Now().Add(-10 * time.Minute)}
	if err := w.Record(t.Context(), wh.ID, []uuid.UUID{id}, res, false); err != nil {
		t.Fatal(err)
	}
	var gap time.Duration
	if err := h.db.Pool.QueryRow(t.Context(), `SELECT (extract(epoch FROM next_attempt_at - now()) * 1e9)::bigint
		FROM hookrelay.deliveries WHERE id = $1`, id).Scan(&gap); err != nil {
		t.Fatal(err)
	}
	if gap < 50*time.Second || gap > 66*time.Second {
		t.Fatalf("retry due %s after the database's now, want 1m ±10%%", gap)
	}
	d := h.state(id)
	if jobs := h.retryJobs(id); len(jobs) != 1 || jobs[0].Sub(*d.NextAt).Abs() > time.Millisecond {
		t.Fatalf("retry job scheduled at %v, want the delivery's next attempt %v", jobs, d.NextAt)
	}
}

// TestWorker_RowHeldElsewhereDoesNotBlockItsBatch holds one delivery's row
// lock in another transaction (a frozen worker, a webhook DELETE's mass
// update): the other deliveries of its batch are recorded meanwhile, and
// the held one as soon as the lock goes, once.
func TestWorker_RowHeldElsewhereDoesNotBlockItsBatch(t *testing.T) {
	t.Parallel()
	h, rc, wh := newHookedHarness(t)
	const n = 10
	ids := h.createDeliveries(wh.ID, n)
	holder, err := h.db.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(t.Context()) //nolint:errcheck // no-op after commit
	if _, err := holder.Exec(t.Context(), `SELECT 1 FROM hookrelay.deliveries WHERE id = $1 FOR UPDATE`, ids[0]); err != nil {
		t.Fatal(err)
	}
	h.startWorker(h.batchedConfig())
	h.publish(ids...)
	testwait.Until(t, 10*time.Second, func() bool {
		return h.count(`SELECT count(*) FROM hookrelay.deliveries WHERE status = 'delivered'`) == n-1
	}, func() string { return "the deliveries whose rows are free were not recorded while one row was held" })
	if err := holder.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(ids[0], "delivered", 10*time.Second)
	if got := h.count(`SELECT count(*) FROM hookrelay.delivery_attempts`); got != n || len(rc.Requests()) != n {
		t.Fatalf("%d attempt rows, %d requests; want %d of each", got, len(rc.Requests()), n)
	}
}

// TestWorker_SlowDeliveryIsNotReclaimedFromALiveWorker has a receiver take
// far longer than the claim idle time: a second worker must not take the
// entry from the first, which is alive and waiting, and send it again.
func TestWorker_SlowDeliveryIsNotReclaimedFromALiveWorker(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			time.Sleep(1500 * time.Millisecond) // the slow receiver under test
		}
		w.WriteHeader(http.StatusOK)
	})
	wh := h.webhook(rc.URL)
	cfg := h.config()
	cfg.ClaimIdle = 300 * time.Millisecond
	cfg.Consumer = "first"
	h.startWorker(cfg)
	id := h.delivery(wh.ID, 3)
	testwait.Until(t, 5*time.Second, func() bool { return len(rc.Requests()) == 1 }, func() string { return "no request" })
	cfg.Consumer = "second"
	h.startWorker(cfg)
	h.waitStatus(id, "delivered", 10*time.Second)
	h.waitStreamEmpty(5 * time.Second)
	if n := len(rc.Requests()); n != 1 {
		t.Fatalf("%d requests for one delivery, want 1: the live worker's entry was reclaimed", n)
	}
}

func TestWorker_NoGroupAsksForAReconcile(t *testing.T) {
	t.Parallel()
	h, _, _ := newHookedHarness(t)
	var asked atomic.Int32
	cfg := h.config()
	cfg.OnGroupMissing = func() { asked.Add(1) }
	h.startWorker(cfg)
	if err := h.rdb.Del(t.Context(), h.keys.Stream).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, func() bool { return asked.Load() > 0 },
		func() string { return "the worker met NOGROUP without asking for a reconcile run" })
}
