package deliver_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// TestWorker_LookupsByIDStayIndexedAfterTheTableGrows proves that the
// worker's per-delivery statements do not keep a plan made while the
// deliveries table was nearly empty: such a plan seq-scans the table, and the
// read loop then slows down with every delivery the table gains. The worker
// runs on one connection, which delivers a few batches while the table is
// small (long enough for Postgres to cache generic plans), then more
// after the table has grown by `filler` rows; the connection's table
// statistics must show no scan of the grown table.
func TestWorker_LookupsByIDStayIndexedAfterTheTableGrows(t *testing.T) {
	t.Parallel()
	const filler, batch = 30_000, 20
	h, _, wh := newHookedHarness(t)
	ctx := t.Context()
	cfg, err := pgxpool.ParseConfig(h.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	wcfg := h.config()
	wcfg.Concurrency = 32
	w, err := deliver.NewWorker(pool, h.rdb, h.jobs.River(), wcfg, h.reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deliverInBatches := func(n int) {
		t.Helper()
		for range n {
			h.publish(h.createDeliveries(wh.ID, batch)...)
			h.waitStreamEmpty(10 * time.Second)
		}
	}
	grow := func(n int) {
		h.exec(`
			INSERT INTO hookrelay.deliveries (event_id, webhook_id, project_id, event_type, payload, event_created_at, max_attempts, status)
			SELECT gen_random_uuid(), $1, $2, 'config.deployed', '{}', now(), 3, 'delivered' FROM generate_series(1, $3)`,
			wh.ID, h.project, n)
	}
	grow(300) // a few pages, as after the first second of a burst
	deliverInBatches(8)
	grow(filler)
	deliverInBatches(8)

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	pool.Close() // the backend reports its table statistics as it exits
	// Its recorded updates show up once its statistics are in.
	var updated, seqRead int
	testwait.Until(t, 15*time.Second, func() bool {
		err := h.db.Pool.QueryRow(context.Background(), `
			SELECT n_tup_upd, seq_tup_read FROM pg_stat_user_tables
			WHERE schemaname = 'hookrelay' AND relname = 'deliveries'`).Scan(&updated, &seqRead)
		return err == nil && updated >= 16*batch
	}, func() string { return "the worker connection's statistics never arrived" })
	if seqRead >= filler {
		t.Fatalf("deliveries rows read by sequential scans: %d; want fewer than the %d filler rows (a plan made for the empty table was reused)", seqRead, filler)
	}
}
