package deliver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/dberr"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/outage"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// Delivery statuses (hookrelay.deliveries.status).
const (
	statusPending   = "pending"
	statusDelivered = "delivered"
	statusFailed    = "failed"
	statusSkipped   = "skipped"
)

// errAbandoned marks work dropped because the worker was killed.
var errAbandoned = errors.New("worker killed; delivery abandoned")

// target is what one stream entry needs: the delivery and its webhook.
type target struct {
	ID          uuid.UUID
	WebhookID   uuid.UUID
	Status      string
	Attempts    int
	MaxAttempts int
	EventID     uuid.UUID
	EventType   string
	EventAt     time.Time
	ProjectID   uuid.UUID
	Payload     []byte
	Due         bool

	WebhookFound   bool
	Active         bool
	DisabledReason *string
	URL            *string
	Secret         *string
	PrevSecrets    []string // still within their grace periods, most recent first
	Headers        []byte

	Circuit   string // the breaker: closed, open, half_open
	ProbeDue  bool   // open past its cool-down (or half_open past its probe's lease)
	Unhealthy bool   // failing, or the breaker not closed: a success must be recorded in its health

	PausedUntil *time.Time // a 429 or 503 with Retry-After paused the endpoint until then
	RateLimit   *int32     // deliveries per second, across workers
	MaxInFlight *int32     // concurrent requests, across workers
	SlotHeld    *time.Time // the rate-limit slot it was deferred to, due now and not stale

	startAt time.Time // the rate-limit slot reserved for it in this process
	holding bool      // it holds an in-flight place, released after the attempt
	counted bool      // it holds one of its endpoint's share of the worker's slots
	outcome outcome   // its attempt's answer, for its endpoint's window
}

// outcome is what an attempt's answer says of its endpoint's health.
type outcome int8

const (
	outcomeNone    outcome = iota // no attempt, or an answer that says nothing (429, 410)
	outcomeSuccess                // a 2xx
	outcomeFailure                // a failure that counts for the breaker
)

func outcomeOf(res httpsend.Result) outcome {
	switch {
	case res.Success():
		return outcomeSuccess
	case breakerFailure(res):
		return outcomeFailure
	}
	return outcomeNone
}

// sendable reports whether t would get an HTTP attempt now.
func (t *target) sendable() bool {
	return t.Status == statusPending && t.Due && t.WebhookFound && t.Active
}

// job is one stream entry to process.
type job struct {
	msg redis.XMessage
	key string // the stream (shard) it was read from
	id  uuid.UUID
}

// entry is the job's stream entry.
func (j job) entry() entry { return entry{j.key, j.msg.ID} }

// dispatch starts processing msgs, which hold n slots. It loads every
// delivery of the batch in one query; slots not used are released. An entry
// for a delivery already in flight here (a second entry published by the
// relay and the reconciler, or a retry job, after a Redis outage) is not
// sent again: it is held beside the attempt in flight (and heartbeated with
// it), acknowledged with it once its outcome is recorded, and otherwise left
// pending for reclaim, so that no delivery ever depends on an entry that was
// acknowledged before its outcome was in Postgres.
//
// A read (async) holds a token of w.loads, which dispatch returns once the
// batch is loaded; the load then runs in its own goroutine. The claim loop's
// batches are loaded in the claim loop.
func (w *Worker) dispatch(ctx context.Context, key string, msgs []redis.XMessage, n int, async bool) {
	jobs := make([]job, 0, len(msgs))
	w.mu.Lock()
	for _, m := range msgs {
		e := entry{key, m.ID}
		if _, busy := w.inflight[e]; busy {
			continue // reclaimed from ourselves while still being processed
		}
		id, err := stream.DeliveryID(m)
		if err != nil {
			w.mu.Unlock()
			w.moveToDead(ctx, key, m, "malformed entry: "+err.Error())
			w.mu.Lock()
			continue
		}
		w.inflight[e] = id
		if dups, busy := w.held[id]; busy {
			w.held[id] = append(dups, e)
			continue
		}
		w.held[id] = nil
		jobs = append(jobs, job{msg: m, key: key, id: id})
	}
	w.mu.Unlock()
	w.release(n - len(jobs))
	if len(jobs) == 0 {
		if async {
			w.loads <- struct{}{}
		}
		return
	}
	w.work.Add(len(jobs))
	if !async {
		w.start(ctx, jobs)
		return
	}
	go func() {
		defer func() { w.loads <- struct{}{} }()
		w.start(ctx, jobs)
	}()
}

// start loads the deliveries of a batch of jobs in one query and processes
// each job in its own goroutine. While Postgres is unavailable it retries the
// load with backoff, holding the entries (and its load token: once every
// token is held, an outage stops the reading); it gives up only when the
// worker is killed, leaving the entries pending for reclaim.
func (w *Worker) start(ctx context.Context, jobs []job) {
	var targets map[uuid.UUID]*target
	err := w.retry(ctx, w.loadTrack, func() (err error) {
		targets, err = w.load(ctx, jobs)
		return err
	})
	if err != nil {
		if !w.isKilled() {
			w.log.Error("load deliveries; entries left pending for reclaim", "entries", len(jobs), "err", err)
		}
		for _, j := range jobs {
			w.finish(j)
		}
		w.release(len(jobs))
		return
	}
	// The batch's requests start before its open circuits' deliveries are
	// parked: parking is a transaction they need not wait for.
	send, park := w.triage(ctx, jobs, targets)
	for _, j := range w.regulate(ctx, send, targets) {
		w.launch(ctx, j, targets[j.id])
	}
	if len(park) > 0 {
		for _, j := range w.regulate(ctx, w.parkHeld(ctx, park, targets), targets) {
			w.launch(ctx, j, targets[j.id])
		}
	}
}

// retry runs op until it succeeds, fails with an error that is not
// transient, or ctx ends (the worker was killed); tr logs the outage once
// and paces the retries.
func (w *Worker) retry(ctx context.Context, tr *outage.Tracker, op func() error) error {
	for {
		err := op()
		if err == nil {
			tr.OK()
			return nil
		}
		if !dberr.Transient(err) || w.isKilled() || ctx.Err() != nil {
			return err
		}
		tr.Fail(err)
		if !tr.Wait(ctx) {
			return err
		}
	}
}

// withHeld is j's entry and the duplicate entries held with it, taken: the
// caller acknowledges them all, now that the delivery's outcome is recorded.
func (w *Worker) withHeld(j job) []entry {
	w.mu.Lock()
	defer w.mu.Unlock()
	entries := append([]entry{j.entry()}, w.held[j.id]...)
	for _, dup := range w.held[j.id] {
		delete(w.inflight, dup)
	}
	w.held[j.id] = nil
	return entries
}

// leaveHeld stops holding the duplicate entries held with j, without
// acknowledging them: they stay pending in the group, for reclaim.
func (w *Worker) leaveHeld(j job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, dup := range w.held[j.id] {
		delete(w.inflight, dup)
	}
	w.held[j.id] = nil
}

// forget drops a job from the entries being processed here.
func (w *Worker) forget(j job) {
	w.mu.Lock()
	delete(w.inflight, j.entry())
	for _, dup := range w.held[j.id] {
		delete(w.inflight, dup) // not acknowledged: pending, for reclaim
	}
	delete(w.held, j.id)
	w.mu.Unlock()
}

// finish ends a job that dispatch started: its entry is acknowledged or left
// pending, and it no longer counts as in flight.
func (w *Worker) finish(j job) {
	w.forget(j)
	w.work.Done()
}

// load reads the deliveries and webhooks of a batch in one round trip:
// BEGIN, loadPlanSQL, loadTargetsSQL and COMMIT, pipelined. The query is a
// prepared statement, so Postgres does not parse and plan it for every read
// (about 60 us of its CPU each time); the transaction around it exists for
// loadPlanSQL, which keeps its cached generic plan on the primary keys: a
// generic plan made while the deliveries table was nearly empty seq-scans
// it, and the loads then slow down as it grows (commit → receipt p99 went
// from 31 ms after 10 s to 5 s after 30 s at 1k/s when the query was a plain
// prepared statement).
func (w *Worker) load(ctx context.Context, jobs []job) (map[uuid.UUID]*target, error) {
	ids := make([]pgtype.UUID, len(jobs))
	for i, j := range jobs {
		ids[i] = pgUUID(j.id)
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(loadPlanSQL)
	q := b.Queue(loadTargetsSQL, ids)
	b.Queue("COMMIT")
	out := make(map[uuid.UUID]*target, len(ids))
	q.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			t := &target{}
			if err := rows.Scan(&t.ID, &t.WebhookID, &t.Status, &t.Attempts, &t.MaxAttempts,
				&t.EventID, &t.EventType, &t.EventAt, &t.ProjectID, &t.Payload, &t.Due,
				&t.WebhookFound, &t.Active, &t.DisabledReason, &t.URL, &t.Secret, &t.PrevSecrets, &t.Headers,
				&t.Circuit, &t.ProbeDue, &t.Unhealthy, &t.PausedUntil, &t.RateLimit, &t.MaxInFlight, &t.SlotHeld); err != nil {
				return fmt.Errorf("scan delivery: %w", err)
			}
			out[t.ID] = t
		}
		return rows.Err()
	})
	// A failed batch leaves its connection in a failed transaction, which
	// the pool closes rather than reuses.
	if err := w.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("load %d deliveries: %w", len(ids), err)
	}
	return out, nil
}

// handle processes one entry in its own goroutine and passes its slot on
// when the HTTP attempt is over (see shares): recording it is the recorder's work, which
// finishes the job. A processing error leaves the entry pending for the claim
// loop.
func (w *Worker) handle(ctx context.Context, j job, t *target) {
	handedOff := false
	defer func() {
		if !handedOff {
			w.finish(j)
		}
		w.next(ctx, t) // its slot to the next in its endpoint's line, or free
	}()
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("processing a delivery panicked; entry left pending for reclaim",
				"delivery_id", j.id, "entry", j.msg.ID, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	var err error
	if handedOff, err = w.process(ctx, j, t); err != nil && !w.isKilled() {
		w.log.Error("process delivery; entry left pending for reclaim",
			"delivery_id", j.id, "entry", j.msg.ID, "err", err)
	}
}

// process delivers one entry. An entry that needs no HTTP attempt is settled
// and acknowledged here; after an attempt, process hands the result to the
// recorder (handedOff), which acknowledges the entry once Postgres holds the
// outcome.
func (w *Worker) process(ctx context.Context, j job, t *target) (handedOff bool, err error) {
	switch {
	case t == nil:
		w.m.UnknownDeliveries.Inc()
		w.log.Warn("stream entry names a delivery that does not exist; dropped (the reconciler owns recovery)",
			"delivery_id", j.id, "entry", j.msg.ID)
		return false, w.ack(ctx, j.entry())
	case t.Status != statusPending:
		// A duplicate entry of a finished delivery, as are those held with it.
		return false, w.ack(ctx, w.withHeld(j)...)
	case !t.Due:
		return false, w.ack(ctx, j.entry()) // its scheduled retry job will publish it when due
	case !t.WebhookFound || !t.Active:
		return false, w.finishUnsent(ctx, j, t, statusSkipped, skipReason(t))
	}
	maxAttempts := cmp.Or(max(t.MaxAttempts, 0), w.cfg.MaxAttempts)
	if t.Attempts >= maxAttempts {
		w.afterAttempt(ctx, t, httpsend.Result{}) // gives back an in-flight place it took
		return false, w.finishUnsent(ctx, j, t, statusFailed, "no attempts left")
	}

	body, err := Envelope{ID: t.EventID, Type: t.EventType, Timestamp: t.EventAt,
		ProjectID: t.ProjectID, Data: t.Payload}.Encode()
	if err != nil {
		return false, err
	}
	secrets := append([]string{deref(t.Secret)}, t.PrevSecrets...)
	if !waitForSlot(ctx, t) {
		return false, errAbandoned
	}
	res := w.sender.Send(ctx, httpsend.Request{
		URL:        deref(t.URL),
		DeliveryID: t.ID,
		EventType:  t.EventType,
		Body:       body,
		Secrets:    secrets,
		Headers:    headerMap(t.Headers),
	})
	t.outcome = outcomeOf(res)
	w.afterAttempt(ctx, t, res)
	if w.isKilled() || !w.submit(ctx, attempted{j: j, t: t, res: res}) {
		return false, errAbandoned
	}
	return true, nil
}

// finishUnsent ends a delivery without sending it, then acknowledges its entry.
func (w *Worker) finishUnsent(ctx context.Context, j job, t *target, status, reason string) error {
	var tag pgconn.CommandTag
	err := w.retry(ctx, w.finishTrack, func() (err error) {
		tag, err = w.pool.Exec(ctx, finishUnsentSQL, t.ID, status, reason)
		return err
	})
	if err != nil {
		return fmt.Errorf("mark delivery %s: %w", status, err)
	}
	if tag.RowsAffected() == 1 {
		w.m.Deliveries.WithLabelValues(status).Inc()
		if status == statusFailed {
			w.m.DeadLetters.Inc()
		}
	}
	return w.ack(ctx, j.entry())
}

func skipReason(t *target) string {
	if !t.WebhookFound {
		return "webhook deleted"
	}
	if t.DisabledReason != nil && *t.DisabledReason != "" {
		return "webhook inactive: " + *t.DisabledReason
	}
	return "webhook inactive"
}

// ack acknowledges and deletes entries in one round trip (on a Cluster, one
// per node), each on its own stream.
func (w *Worker) ack(ctx context.Context, entries ...entry) error {
	if w.isKilled() {
		return errAbandoned
	}
	if len(entries) == 0 {
		return nil
	}
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for key, ids := range byKey(entries) {
			p.XAck(ctx, key, w.cfg.Group, ids...)
			p.XDel(ctx, key, ids...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack %d entries (first %s of %s): %w", len(entries), entries[0].id, entries[0].key, err)
	}
	return nil
}

// setAsidePoison moves claimed entries that have failed processing
// PoisonAfter times to the dead stream and returns the others.
func (w *Worker) setAsidePoison(ctx context.Context, key string, msgs []redis.XMessage) ([]redis.XMessage, error) {
	if len(msgs) == 0 {
		return msgs, nil
	}
	cmds, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range msgs {
			p.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: key, Group: w.cfg.Group, Start: m.ID, End: m.ID, Count: 1,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read delivery counts: %w", err)
	}
	keep := msgs[:0]
	checked := false
	for i, m := range msgs {
		pend, _ := cmds[i].(*redis.XPendingExtCmd).Result()
		// The count includes the claim that just happened.
		if len(pend) == 1 && pend[0].RetryCount > int64(w.cfg.PoisonAfter) {
			if !checked {
				// Entries also pile up claims while Postgres is down: that
				// is an outage, not poison. Only with Postgres answering is
				// an entry that keeps failing the entry's own fault.
				if err := w.pool.Ping(ctx); err != nil {
					return msgs, nil // processed as usual: the load waits for Postgres
				}
				checked = true
			}
			w.moveToDead(ctx, key, m, fmt.Sprintf("processing failed %d times", pend[0].RetryCount-1))
			continue
		}
		keep = append(keep, m)
	}
	return keep, nil
}

// moveToDead copies an entry of key to key's dead stream with the reason, then
// acknowledges and deletes it. The copy comes first (a separate command, since
// in a cluster the two streams may live on different nodes): a failure in
// between leaves the entry pending, to be moved again.
func (w *Worker) moveToDead(ctx context.Context, key string, m redis.XMessage, reason string) {
	values := []any{"entry_id", m.ID, "reason", reason, "consumer", w.cfg.Consumer}
	if v, ok := m.Values[stream.Field].(string); ok {
		values = append(values, stream.Field, v)
	}
	err := w.rdb.XAdd(ctx, &redis.XAddArgs{Stream: DeadStream(key), Values: values}).Err()
	if err == nil {
		err = w.ack(ctx, entry{key, m.ID})
	}
	if err != nil {
		w.log.Error("move poison entry aside; it stays pending", "entry", m.ID, "err", err)
		return
	}
	w.m.PoisonEntries.Inc()
	w.log.Warn("poison entry moved to the dead stream", "entry", m.ID, "dead_stream", DeadStream(key), "reason", reason)
}

// headerMap decodes a webhook's custom headers; values that are not strings
// are sent as their JSON text.
func headerMap(raw []byte) map[string]string {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			s = string(v)
		}
		out[k] = s
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
