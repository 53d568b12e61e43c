package testpg_test

import (
	"context"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testkit/testpg"
)

// TestCluster_KeepsCommittedRowsAcrossRestartCrashAndOutage checks that the
// private cluster comes back from each way of stopping it with its data.
func TestCluster_KeepsCommittedRowsAcrossRestartCrashAndOutage(t *testing.T) {
	t.Parallel()
	c := testpg.Start(t)
	db := c.MigratedDB()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE t (n int)"); err != nil {
		t.Fatal(err)
	}
	for i, fault := range []struct {
		name string
		do   func()
	}{
		{"restart -m fast", func() { c.Restart("fast") }},
		{"crash", c.Crash},
		{"outage", func() { c.Stop("fast"); c.Start() }},
	} {
		if _, err := db.Pool.Exec(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
			t.Fatalf("before %s: %v", fault.name, err)
		}
		fault.do()
		db.Pool.Reset() // its connections were cut
		var n int
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("after %s: %v", fault.name, err)
		}
		if n != i+1 {
			t.Fatalf("after %s: %d rows, want %d", fault.name, n, i+1)
		}
	}
	var schema string
	if err := db.Pool.QueryRow(ctx, "SELECT to_regclass('hookrelay.outbox')::text").Scan(&schema); err != nil || schema == "" {
		t.Fatalf("the database is not migrated: %q, %v", schema, err)
	}
}
