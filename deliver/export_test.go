package deliver

// Kill stops the worker abruptly, as a crash would: in-flight deliveries are
// cancelled and neither recorded nor acknowledged, so their entries stay
// pending in the consumer group. It returns once the read and claim loops
// have ended.
func (w *Worker) Kill() {
	w.kill()
	w.loops.Wait()
}

// RecordTransactions is how many recording transactions the worker committed.
func (w *Worker) RecordTransactions() int64 { return w.recordTxs.Load() }
