package migrations_test

import (
	"context"
	"io/fs"
	"sync"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/migrations"
)

// testdb's databases are already migrated, so applying again must change nothing.
func TestApply_TwiceIsANoOp(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	res, err := migrations.Apply(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || len(res.RiverApplied) != 0 {
		t.Fatalf("second Apply applied %v and river %v, want nothing", res.Applied, res.RiverApplied)
	}
}

func TestApply_ConcurrentCallsOnAnEmptyDatabaseAllSucceed(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	// Start from nothing: drop what the template brought.
	if _, err := db.Pool.Exec(ctx, "DROP SCHEMA hookrelay CASCADE; DROP SCHEMA hookrelay_example CASCADE"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	applied := make([]int, 4)
	for i := range errs {
		wg.Go(func() {
			res, err := migrations.Apply(ctx, db.Pool)
			errs[i], applied[i] = err, len(res.Applied)
		})
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Apply #%d: %v", i, err)
		}
		total += applied[i]
	}
	files, err := fs.Glob(migrations.Files(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if total != len(files) {
		t.Fatalf("migrations applied %d times in all, want each of the %d exactly once", total, len(files))
	}
	var idle int64
	if err := db.Pool.QueryRow(ctx, "SELECT last_value FROM hookrelay.relay_idle").Scan(&idle); err != nil || idle != 1 {
		t.Fatalf("relay_idle = %d (%v), want 1 (idle until a relay says otherwise)", idle, err)
	}
}
