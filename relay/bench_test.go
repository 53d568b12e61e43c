package relay_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// benchWriters is the writer count of the emission benchmark (as in the
// design's measurements).
const benchWriters = 8

// BenchmarkEmission measures what waking the relay costs writers: 8
// concurrent writers, each transaction one business-row insert plus
// outbox.Emit. "idle" forces the relay idle flag on, so every commit NOTIFYs
// (a LISTEN connection consumes them, as the relay's would); "busy" forces
// false, as while a relay drains under load, so no commit does; "relay"
// runs a real relay with the idle protocol alongside the writers (it shares
// the CPU with them).
func BenchmarkEmission(b *testing.B) {
	for _, mode := range []string{"idle", "busy", "relay"} {
		b.Run("mode="+mode, func(b *testing.B) {
			e := newEnv(b, benchWriters+6)
			ctx := context.Background()
			if _, err := e.pool.Exec(ctx, `CREATE TABLE bench_items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				project_id uuid NOT NULL, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				b.Fatal(err)
			}
			e.addWebhook(webhook{eventTypes: []string{"*"}})
			if mode == "relay" {
				e.relay(time.Second, 500, true)
			} else if _, err := e.pool.Exec(ctx, `SELECT setval('hookrelay.relay_idle', $1::boolean::int)`, mode == "idle"); err != nil {
				b.Fatal(err)
			}
			notified := e.drainNotifications(b)
			defer func() {
				b.ReportMetric(float64(notified.Load())/float64(b.N), "notifies/tx")
			}()

			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, benchWriters)
			b.ResetTimer()
			start := time.Now()
			for range benchWriters {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if err := e.emitWithBusinessRow(ctx); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tx/s")
		})
	}
}

// emitWithBusinessRow is one application transaction: a business insert and
// its event.
func (e *env) emitWithBusinessRow(ctx context.Context) error {
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO bench_items (project_id, name) VALUES ($1, 'item')`, e.project); err != nil {
			return err
		}
		_, err := outbox.Emit(ctx, tx, outbox.Event{Type: "config.deployed", ProjectID: e.project,
			Data: map[string]any{"environment": map[string]any{"name": "production"}}})
		return err
	})
}

// drainNotifications LISTENs on the relay's channel on its own connection
// until the benchmark ends, counting notifications.
func (e *env) drainNotifications(b *testing.B) *atomic.Int64 {
	b.Helper()
	conn, err := pgx.ConnectConfig(context.Background(), e.pool.Config().ConnConfig.Copy())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "LISTEN "+relay.Channel); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
	})
	return &n
}

// BenchmarkIsolatedEventLatency measures how long an isolated event takes
// from its commit to its entry on the stream, with an idle relay (poll an
// hour away, so the NOTIFY is what wakes it).
func BenchmarkIsolatedEventLatency(b *testing.B) {
	e := newEnv(b, 6)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	r, _ := e.relay(time.Hour, 100, false)
	waiting := make(chan struct{}, 1)
	relay.SetOnWait(r, func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	})
	if err := r.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Stop(context.Background()) })

	last := "$"
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		<-waiting // the relay has gone idle and waits
		b.StartTimer()
		start := time.Now()
		e.emit("config.deployed", map[string]any{"isolated": true})
		res, err := e.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{e.stream, last}, Count: 1, Block: 10 * time.Second}).Result()
		if err != nil {
			b.Fatalf("wait for the entry: %v", err)
		}
		lat = append(lat, time.Since(start))
		last = res[0].Messages[0].ID
	}
	b.StopTimer()
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum)/float64(len(lat)), "ms/event")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
}

// BenchmarkDrain measures the relay's throughput on a backlog: b.N events
// already in the outbox, one subscribed webhook, Drain with the default
// batch size (claim, fan-out, pipelined XADD, mark published per batch).
func BenchmarkDrain(b *testing.B) {
	e := newEnv(b, 6)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `INSERT INTO hookrelay.outbox (event_type, project_id, data)
		SELECT 'config.deployed', $1, jsonb_build_object('n', n, 'environment', jsonb_build_object('name', 'production'))
		FROM generate_series(1, $2) n`, e.project, b.N); err != nil {
		b.Fatal(err)
	}
	r, _ := e.relay(time.Hour, relay.DefaultBatchSize, false)
	b.ResetTimer()
	start := time.Now()
	n, err := r.Drain(ctx)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil || n != b.N {
		b.Fatalf("Drain: %d events, %v; want %d", n, err, b.N)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
}
