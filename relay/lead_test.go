package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/relay"
)

// TestRelay_OneLeadsAndAStandbyTakesOver runs two relays: only one reads the
// outbox (each event is relayed once, by one of them), and when it stops the
// other takes over within a few polls.
func TestRelay_OneLeadsAndAStandbyTakesOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 12)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	r1, m1 := e.relay(50*time.Millisecond, 20, true)
	r2, m2 := e.relay(50*time.Millisecond, 20, true)

	for i := range 30 {
		e.emit("config.deployed", map[string]any{"i": i})
	}
	testwait.For(t, 10*time.Second, "the events published", func() bool { return e.unpublished() == 0 })
	n1, n2 := testutil.ToFloat64(m1.EventsRelayed), testutil.ToFloat64(m2.EventsRelayed)
	if n1+n2 != 30 || (n1 != 0 && n2 != 0) {
		t.Fatalf("relayed %v and %v events, want all 30 by the leader alone", n1, n2)
	}
	leader, standby := r1, m2
	if n1 == 0 {
		leader, standby = r2, m1
	}

	if err := leader.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	later := e.emit("config.deployed", map[string]any{"after": "stop"})
	testwait.For(t, 5*time.Second, "the standby to take over and publish", func() bool { return e.eventsOnStream()[later] })
	if got := testutil.ToFloat64(standby.EventsRelayed); got != 1 {
		t.Fatalf("the standby relayed %v events, want the one emitted after the leader stopped", got)
	}
}

// TestRelay_FencedOutLeaderRollsBackAndReadsAgain moves the stored cursor
// behind a leader's back, as a successor would after its lock connection was
// cut: the leader's next fan-out fails the version fence and is rolled back
// (no delivery row), and the relay leads again from the stored cursor.
func TestRelay_FencedOutLeaderRollsBackAndReadsAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8)
	e.addWebhook(webhook{eventTypes: []string{"*"}})
	ctx := context.Background()
	r, _ := e.relay(time.Hour, 1, false) // one event per batch
	a := e.emit("config.deployed", map[string]any{"i": 1})
	b := e.emit("config.deployed", map[string]any{"i": 2})
	bumped := false
	relay.SetAfterPublish(r, func(ctx context.Context) error {
		if !bumped { // a successor moves the stored cursor after the first batch
			bumped = true
			_, err := e.pool.Exec(ctx, `UPDATE hookrelay.relay_cursor SET version = version + 1`)
			return err
		}
		return nil
	})
	if n, err := r.Drain(ctx); n != 1 || err != nil {
		t.Fatalf("drain: %d, %v; want the first event, then the fence to stop the second batch", n, err)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.deliveries WHERE event_id = $1`, b); n != 0 {
		t.Fatalf("%d deliveries of the fenced-out fan-out survived", n)
	}
	if n, err := r.Drain(ctx); n != 2 || err != nil {
		t.Fatalf("drain after leading again: %d, %v; want both events (the first again: its position was never stored)", n, err)
	}
	if on := e.eventsOnStream(); !on[a] || !on[b] {
		t.Fatalf("on the stream: %t, %t; want both", on[a], on[b])
	}
}
