package deliver

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/hookrelay/hookrelay/internal/dberr"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/outage"
)

// Defaults of the group commit, applied by NewWorker to zero Config fields.
const (
	DefaultRecordBatch  = 128
	DefaultRecordLinger = 2 * time.Millisecond
)

// recordFlushers is how many batches are recorded at once, so that one batch
// fills (and its predecessor is acknowledged) while another commits.
const recordFlushers = 2

// attempted is a finished HTTP attempt on its way to Postgres. recordBatch
// fills in found and d.
type attempted struct {
	j        job
	t        *target
	res      httpsend.Result
	found    bool     // the delivery still exists
	recorded bool     // Postgres holds the attempt (set once committed)
	d        decision // what the attempt did to it
}

// submit hands a finished attempt to the recorder, which records it,
// acknowledges its entry and then finishes the job. It reports false when the
// worker is being abandoned: the entry then stays pending, unrecorded.
func (w *Worker) submit(ctx context.Context, a attempted) bool {
	select {
	case w.recIn <- a:
		return true
	case <-ctx.Done():
		return false
	}
}

// collect groups submitted attempts into batches: a batch is handed to a
// flusher once it holds RecordBatch attempts or its first attempt has waited
// RecordLinger. While every flusher is busy the batch keeps growing (up to
// RecordBatch), so batches are as large as the load makes them and a lone
// attempt waits no more than the linger. Once Stop has begun, nothing waits
// for the linger any more.
func (w *Worker) collect(ctx context.Context) {
	defer w.recs.Done()
	var batch []attempted
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	ready, stopping, draining := false, w.draining, false
	for {
		in, out := w.recIn, chan []attempted(nil)
		if len(batch) >= w.cfg.RecordBatch || (draining && len(batch) > 0) {
			ready = true
		}
		if len(batch) >= w.cfg.RecordBatch {
			in = nil
		}
		if ready {
			out = w.recBatches
		}
		select {
		case <-ctx.Done():
			for _, a := range batch {
				w.finish(a.j) // abandoned: neither recorded nor acknowledged
			}
			return
		case a := <-in:
			batch = append(batch, a)
			if len(batch) == 1 {
				linger.Reset(w.cfg.RecordLinger)
			}
		case <-linger.C:
			ready = true
		case <-stopping:
			stopping, draining = nil, true
		case out <- batch:
			batch, ready = nil, false
			linger.Stop()
		}
	}
}

// flushLoop records the batches collect hands it.
func (w *Worker) flushLoop(ctx context.Context) {
	defer w.recs.Done()
	track := w.tracker("postgres", "record attempts")
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-w.recBatches:
			w.flush(ctx, track, batch)
		}
	}
}

// flush records a batch and then acknowledges the entries recorded, in one
// round trip. Every job of the batch is finished when flush returns.
func (w *Worker) flush(ctx context.Context, track *outage.Tracker, batch []attempted) {
	defer func() {
		for _, a := range batch {
			w.finish(a.j)
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("recording deliveries panicked; entries left pending for reclaim",
				"entries", len(batch), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	recorded := w.persist(ctx, track, batch, false)
	if w.afterRecord != nil {
		w.afterRecord()
	}
	entries := make([]entry, 0, len(recorded))
	for _, a := range recorded {
		if a.d.status == statusPending {
			// A retry is scheduled, and its job may already have put the
			// delivery back on the stream, and this worker read that entry
			// and held it as a duplicate (with a short schedule, or a slow
			// flush): acknowledging it would drop the retry. The held
			// entries are left pending instead, for reclaim, where a fresh
			// load decides.
			entries = append(entries, a.j.entry())
			w.leaveHeld(a.j)
			continue
		}
		entries = append(entries, w.withHeld(a.j)...)
	}
	if err := w.ack(ctx, entries...); err != nil && !w.isKilled() {
		w.log.Warn("acknowledge recorded deliveries; entries left pending for reclaim (they are recorded: no second POST)",
			"entries", len(entries), "err", err)
	}
}

// persist records batch and returns the attempts Postgres now holds. An
// outcome is never thrown away because Postgres is unavailable: a transient
// failure (a restart, a lost connection) is retried with backoff for as long
// as it lasts, and meanwhile the worker's slots stay taken, so it stops
// reading new entries. When the batch fails for one of its rows (bad data,
// or a row held by another transaction past the lock timeout), its attempts
// are recorded one by one so that the others go through, and the ones that
// failed transiently are retried together; only an attempt that fails on
// its own with a permanent error is left unrecorded, its entry pending for
// reclaim. persist gives up only when the worker is killed.
//
// recheck says an earlier try may have committed unbeknownst to us.
func (w *Worker) persist(ctx context.Context, track *outage.Tracker, batch []attempted, recheck bool) []attempted {
	var done []attempted
	todo := batch
	for len(todo) > 0 && !w.isKilled() {
		err := w.recordBatch(ctx, todo, recheck)
		if err == nil {
			track.OK()
			return append(done, todo...)
		}
		if w.isKilled() || ctx.Err() != nil {
			break
		}
		if len(todo) > 1 && (!dberr.Transient(err) || dberr.Is(err, dberr.LockNotAvailable)) {
			w.log.Warn("recording a batch failed on one of its deliveries; recording them one by one",
				"deliveries", len(todo), "err", err)
			var again []attempted
			for i := range todo {
				one := todo[i : i+1]
				switch e := w.recordBatch(ctx, one, recheck); {
				case e == nil:
					done = append(done, one[0])
				case dberr.Transient(e):
					again, err = append(again, one[0]), e
				case w.isKilled() || ctx.Err() != nil:
					return done
				default:
					w.dropUnrecordable(one[0], e)
				}
			}
			if todo = again; len(todo) == 0 {
				track.OK()
				break
			}
		} else if !dberr.Transient(err) {
			w.dropUnrecordable(todo[0], err)
			break
		}
		// The COMMIT may have reached the server before the connection
		// broke: the next try looks for the attempts first.
		recheck = true
		track.Fail(err)
		if !track.Wait(ctx) {
			break
		}
	}
	return done
}

// dropUnrecordable gives up on an attempt that Postgres refuses on its own.
func (w *Worker) dropUnrecordable(a attempted, err error) {
	w.log.Error("record delivery; entry left pending for reclaim", "delivery_id", a.j.id, "entry", a.j.msg.ID, "err", err)
}
