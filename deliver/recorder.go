package deliver

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/hookrelay/hookrelay/internal/httpsend"
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
	j     job
	t     *target
	res   httpsend.Result
	found bool     // the delivery still exists
	d     decision // what the attempt did to it
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
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-w.recBatches:
			w.flush(ctx, batch)
		}
	}
}

// flush records a batch in one transaction and then acknowledges its entries
// in one round trip. If the transaction fails, it records the batch's
// attempts one by one, so that one delivery that cannot be recorded does not
// hold up the others; the entries it could not record stay pending for the
// claim loop. Every job of the batch is finished when flush returns.
func (w *Worker) flush(ctx context.Context, batch []attempted) {
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
	if w.isKilled() {
		return
	}
	recorded := batch
	if err := w.recordBatch(ctx, batch); err != nil {
		if w.isKilled() {
			return
		}
		if len(batch) == 1 {
			w.log.Error("record delivery; entry left pending for reclaim",
				"delivery_id", batch[0].j.id, "entry", batch[0].j.msg.ID, "err", err)
			return
		}
		w.log.Warn("recording a batch failed; recording its deliveries one by one",
			"deliveries", len(batch), "err", err)
		recorded = nil
		for i := range batch {
			one := batch[i : i+1]
			if err := w.recordBatch(ctx, one); err != nil {
				if w.isKilled() {
					return
				}
				w.log.Error("record delivery; entry left pending for reclaim",
					"delivery_id", one[0].j.id, "entry", one[0].j.msg.ID, "err", err)
				continue
			}
			recorded = append(recorded, one[0])
		}
	}
	entries := make([]string, len(recorded))
	for i, a := range recorded {
		entries[i] = a.j.msg.ID
	}
	if err := w.ack(ctx, entries...); err != nil && !w.isKilled() {
		w.log.Error("acknowledge recorded deliveries; entries left pending for reclaim",
			"entries", len(entries), "err", err)
	}
}
