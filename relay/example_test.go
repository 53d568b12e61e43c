package relay_test

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// A relay publishes each committed event as one stream entry per subscribed
// webhook. A long-running process would Start it (and Stop it on SIGTERM);
// Drain publishes what is there now.
func Example() {
	ctx := context.Background()
	db, err := testdb.Create(ctx) // a private, migrated database
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Drop()
	rdb, err := testredis.Dial(ctx) // your Redis client
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rdb.Close()
	streamKey := "example:" + uuid.NewString()
	defer rdb.Del(ctx, streamKey)

	project := uuid.New()
	_, _ = db.Pool.Exec(ctx, `INSERT INTO hookrelay.webhooks (project_id, name, url, secret, event_types)
		VALUES ($1, 'ops', 'https://example.com/hook', 'whsec_example', '{config.deployed}')`, project)
	_, _ = outbox.Emit(ctx, db.Pool, outbox.Event{Type: "config.deployed", ProjectID: project, Data: map[string]any{"version": 3}})

	r := relay.New(db.Pool, rdb, relay.Config{Stream: streamKey}, nil, nil)
	events, err := r.Drain(ctx)
	fmt.Println("events published:", events, err)
	fmt.Println("stream entries:", rdb.XLen(ctx, streamKey).Val())
	// Output:
	// events published: 1 <nil>
	// stream entries: 1
}
