package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/migrations"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// A worker with a River client of your own: deliver contributes its retry
// worker with AddWorkers, the worker inserts retry jobs with the client, and
// the worker POSTs each delivery on the stream, signed, and records it.
func ExampleNewWorker() {
	ctx := context.Background()
	db, err := testdb.Create(ctx) // your migrated database
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
	stream, group := "example:"+uuid.NewString(), "example-workers"
	defer rdb.Del(ctx, stream)

	got := make(chan string, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var event struct {
			Type string `json:"type"`
			Data struct {
				Version int `json:"version"`
			} `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&event)
		select {
		case got <- fmt.Sprintf("%s v%d", event.Type, event.Data.Version):
		default:
		}
	}))
	defer receiver.Close()

	// A webhook, an event for it, and the relay putting its delivery on the stream.
	project := uuid.New()
	_, _ = db.Pool.Exec(ctx, `INSERT INTO hookrelay.webhooks (project_id, name, url, secret, event_types)
		VALUES ($1, 'ops', $2, 'whsec_example', '{config.deployed}')`, project, receiver.URL)
	_, _ = outbox.Emit(ctx, db.Pool, outbox.Event{Type: "config.deployed", ProjectID: project, Data: map[string]any{"version": 3}})
	_, _ = relay.New(db.Pool, rdb, relay.Config{Stream: stream}, nil, nil).Drain(ctx)

	workers := river.NewWorkers()
	if err := deliver.AddWorkers(workers, db.Pool, rdb, deliver.Streams{Base: stream}, nil, nil); err != nil {
		fmt.Println(err)
		return
	}
	jobs, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Schema:  migrations.Schema,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers: workers,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := deliver.NewWorker(db.Pool, rdb, jobs, deliver.Config{
		Stream: stream, Group: group,
		Send: deliver.SendConfig{AllowPrivate: true}, // the receiver is on loopback
	}, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case req := <-got:
		fmt.Println("receiver got", req)
	case <-time.After(10 * time.Second):
		fmt.Println("nothing received")
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fmt.Println("stopped:", w.Stop(stopCtx))

	var status string
	_ = db.Pool.QueryRow(ctx, `SELECT status FROM hookrelay.deliveries WHERE project_id = $1`, project).Scan(&status)
	fmt.Println("delivery", status)
	// Output:
	// receiver got config.deployed v3
	// stopped: <nil>
	// delivery delivered
}
