package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/relay"
)

// fillChunk bounds the rows one backlog INSERT writes.
const fillChunk = 100_000

// runDrain fills the outbox with DrainEvents events, each matching one
// webhook, and times one relay publishing them all to the stream.
func (e *env) runDrain(ctx context.Context) error {
	s := e.cfg.Sizes
	h, err := e.webhook(ctx, "http://127.0.0.1:9/unused")
	if err != nil {
		return err
	}
	if err := e.fillOutbox(ctx, h.Project, s.DrainEvents); err != nil {
		return err
	}
	key, _ := e.stream()
	pool, err := e.newPool(ctx, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	r := relay.New(pool, e.rdb, relay.Config{Stream: key, BatchSize: s.RelayBatch}, nil, e.log.With("service", "relay"))

	start := time.Now()
	n, err := r.Drain(ctx)
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	xlen, err := e.rdb.XLen(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("read stream length: %w", err)
	}
	if n != s.DrainEvents || xlen != int64(s.DrainEvents) {
		return fmt.Errorf("relay published %d events, stream holds %d entries; want %d", n, xlen, s.DrainEvents)
	}
	rate := float64(n) / elapsed.Seconds()
	e.report.add(Figure{Key: "drain.throughput", Scenario: ScenarioDrain, Name: "relay drain, events/s", Value: rate,
		Unit: "events/s", Goal: "≥ 50,000/s", Ratio: rate / 50_000, RatioOf: "goal", Verdict: verdict(rate >= 50_000),
		Note: fmt.Sprintf("%d events in %s, batch %d, one relay", n, elapsed.Round(time.Millisecond), s.RelayBatch)})
	return nil
}

// fillOutbox writes n committed events of project, in chunks, with the relay
// marked busy (no NOTIFY), and analyses the table.
func (e *env) fillOutbox(ctx context.Context, project uuid.UUID, n int) error {
	data, err := json.Marshal(newDeployment(project, 1))
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if _, err := e.pool.Exec(ctx, `SELECT setval('hookrelay.relay_idle', 0)`); err != nil {
		return fmt.Errorf("mark relay busy: %w", err)
	}
	for done := 0; done < n; done += fillChunk {
		_, err := e.pool.Exec(ctx, `INSERT INTO hookrelay.outbox (event_type, project_id, data)
SELECT $1, $2, $3::jsonb FROM generate_series(1, $4)`, eventType, project, data, min(fillChunk, n-done))
		if err != nil {
			return fmt.Errorf("fill outbox: %w", err)
		}
	}
	if _, err := e.pool.Exec(ctx, `VACUUM ANALYZE hookrelay.outbox`); err != nil {
		return fmt.Errorf("analyse outbox: %w", err)
	}
	return nil
}
