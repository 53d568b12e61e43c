package dbpool_test

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/dbpool"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

func TestOpen_SessionsCarryTheTimeoutsAndKeepalives(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	pool, err := dbpool.Open(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != dbpool.DefaultMaxConns {
		t.Errorf("MaxConns %d, want %d", got, dbpool.DefaultMaxConns)
	}
	for name, want := range map[string]string{
		"idle_in_transaction_session_timeout": "1min",
		"tcp_keepalives_idle":                 "30",
		"tcp_keepalives_interval":             "10",
		"tcp_keepalives_count":                "3",
		"tcp_user_timeout":                    "60000",
	} {
		var got string
		if err := pool.QueryRow(context.Background(), "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
}

// TestOpen_FrozenTransactionIsEndedAndItsLocksFreed leaves a transaction
// idle with a row locked, as a frozen process would: the server ends it
// (here after the 300 ms the URL asks for, which wins over the default) and
// another session gets the row.
func TestOpen_FrozenTransactionIsEndedAndItsLocksFreed(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	pool, err := dbpool.Open(ctx, db.URL+"&idle_in_transaction_session_timeout=300")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var stuckPID int
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the server ended it
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&stuckPID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE hookrelay.maintenance_state"); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, func() bool {
		var n int
		_ = db.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", stuckPID).Scan(&n)
		return n == 0
	}, func() string { return "the idle transaction's session is still there" })
	if _, err := db.Pool.Exec(ctx, "BEGIN; LOCK TABLE hookrelay.maintenance_state NOWAIT; COMMIT"); err != nil {
		t.Fatalf("the frozen transaction's lock is still held: %v", err)
	}
}
