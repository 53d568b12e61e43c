package deliver

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/httpsend"
)

// Kill stops the worker abruptly, as a crash would: in-flight deliveries are
// cancelled and neither recorded nor acknowledged, so their entries stay
// pending in the consumer group. It returns once the read and claim loops
// have ended.
func (w *Worker) Kill() {
	w.kill()
	w.loops.Wait()
}

// AfterRecord makes f run between recording a batch and acknowledging its
// entries; set it before Start.
func (w *Worker) AfterRecord(f func()) { w.afterRecord = f }

// RecordTransactions is how many recording transactions the worker committed.
func (w *Worker) RecordTransactions() int64 { return w.recordTxs.Load() }

// Record records one finished attempt per id, with result res (its Started
// made distinct per attempt), as one batch of the recorder would. recheck is
// what the recorder sets after a COMMIT whose answer was lost.
func (w *Worker) Record(ctx context.Context, webhook uuid.UUID, ids []uuid.UUID, res httpsend.Result, recheck bool) error {
	batch := make([]attempted, len(ids))
	for i, id := range ids {
		r := res
		r.Started = res.Started.Add(time.Duration(i) * time.Millisecond)
		batch[i] = attempted{t: &target{ID: id, WebhookID: webhook}, res: r}
	}
	return w.recordBatch(ctx, batch, recheck)
}
