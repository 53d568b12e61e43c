package outbox_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/outbox"
)

var examplePool *pgxpool.Pool

func TestMain(m *testing.M) {
	db, err := testdb.Create(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	examplePool = db.Pool
	code := m.Run()
	if err := db.Drop(); err != nil {
		log.Print(err)
	}
	os.Exit(code)
}

// Emit records an event in the same transaction as the change that causes it:
// both commit, or neither does.
func ExampleEmit() {
	ctx := context.Background()
	pool := examplePool // your application's *pgxpool.Pool, migrated with `hookrelay migrate`
	project := uuid.MustParse("9a1c6a52-6f7e-4d8e-8d3f-3c9f1f0e2b11")

	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... the application's own writes go here, on tx ...
		_, err := outbox.Emit(ctx, tx, outbox.Event{
			Type:      "config.deployed",
			ProjectID: project,
			Data: map[string]any{
				"environment":    map[string]string{"name": "production"},
				"commit_message": "lower temperature",
			},
		})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	var typ, env string
	err = pool.QueryRow(ctx, `SELECT event_type, data->'environment'->>'name'
		FROM hookrelay.outbox WHERE project_id = $1`, project).Scan(&typ, &env)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(typ, env)
	// Output: config.deployed production
}
