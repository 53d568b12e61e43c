package deliver_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// BenchmarkWorker_DeliverToLoopback measures end-to-end deliveries per second
// (read, load, sign, POST, record, ack) against a loopback receiver.
func BenchmarkWorker_DeliverToLoopback(b *testing.B) {
	h := newHarness(b)
	rc := newReceiver(b, nil)
	wh := h.webhook(rc.URL)
	cfg := h.config()
	cfg.Concurrency = 32
	h.startWorker(cfg)
	ids := make([]uuid.UUID, b.N)
	for i := range ids {
		ids[i] = h.createDelivery(wh.ID, 3)
	}
	b.ResetTimer()
	h.publish(ids...)
	testwait.Until(b, time.Minute, func() bool {
		var n int
		_ = h.db.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM hookrelay.deliveries WHERE status = 'delivered'`).Scan(&n)
		return n == b.N
	}, func() string { return "not every delivery was delivered" })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
