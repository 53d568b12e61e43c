package relay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/relay"
)

// TestRelay_SteadyFlowMakesWritersSendNoNotify sends events one after the
// other, each once the previous one is on the stream: a relay that went idle
// between them would have every writer NOTIFY (the cluster-wide commit lock
// the idle protocol exists to avoid). A relay that has just found events
// lingers instead, and goes idle only after its linger time without any.
func TestRelay_SteadyFlowMakesWritersSendNoNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	r, _ := e.relay(time.Hour, 100, false)
	relay.SetLingerFor(r, 2*time.Second) // far longer than a gap between two events, even on a loaded machine
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	listener, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+relay.Channel); err != nil {
		t.Fatal(err)
	}
	first := e.emit("config.deployed", map[string]any{"i": 0})
	testwait.For(t, 5*time.Second, "the first event on the stream", func() bool { return e.eventsOnStream()[first] })
	before := notifications(t, listener.Conn())

	for i := 1; i <= 20; i++ {
		id := e.emit("config.deployed", map[string]any{"i": i})
		testwait.For(t, 5*time.Second, "the event on the stream", func() bool { return e.eventsOnStream()[id] })
	}
	if n := notifications(t, listener.Conn()); n != 0 {
		t.Fatalf("writers sent %d NOTIFYs for 20 events in a steady flow (and %d before it), want none", n, before)
	}
	testwait.For(t, 10*time.Second, "the relay to go idle once the flow stops", e.idle)
}

// notifications counts the notifications waiting on conn.
func notifications(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := conn.WaitForNotification(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) || (err != nil && ctx.Err() != nil) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}
