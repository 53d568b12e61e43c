package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// The worker's recording transaction, as package deliver runs it when an
// endpoint answers 410: lock the batch's deliveries (in id order), then
// deactivate their webhook.
const (
	workerLockDeliveries = `SELECT id FROM hookrelay.deliveries WHERE id = ANY($1) ORDER BY id FOR UPDATE`
	workerDeactivate     = `UPDATE hookrelay.webhooks SET is_active = false, disabled_reason = 'gone', updated_at = now()
		WHERE id = $1 AND is_active`
)

func TestWebhooks_DeleteDuringA410DeactivationDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	id := e.createWebhook("https://x.example/in", nil)["id"].(string)
	d1 := e.insertDelivery(id, time.Now(), "pending")
	d2 := e.insertDelivery(id, time.Now(), "pending")

	// The worker holds its delivery locks...
	worker, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Rollback(ctx) //nolint:errcheck // after Commit, a no-op
	if _, err := worker.Exec(ctx, workerLockDeliveries, []uuid.UUID{d1, d2}); err != nil {
		t.Fatal(err)
	}

	// ...when the DELETE arrives and waits for one of them...
	deleted := make(chan int, 1)
	go func() {
		req, err := http.NewRequest("DELETE", e.srv.URL+"/api/projects/"+e.project.String()+"/webhooks/"+id, nil)
		if err != nil {
			deleted <- 0
			return
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			deleted <- 0
			return
		}
		resp.Body.Close()
		deleted <- resp.StatusCode
	}()
	waiting := func() bool {
		return e.count(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	}
	testwait.Until(t, 10*time.Second, waiting, func() string { return "the DELETE never waited for the worker's locks" })

	// ...and then the worker deactivates the webhook and commits.
	if _, err := worker.Exec(ctx, workerDeactivate, id); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
			t.Fatalf("worker's deactivation deadlocked with the DELETE: %v", err)
		}
		t.Fatal(err)
	}
	if err := worker.Commit(ctx); err != nil {
		t.Fatalf("worker commit: %v", err)
	}

	select {
	case status := <-deleted:
		if status != http.StatusNoContent {
			t.Fatalf("DELETE answered %d, want 204 (a deadlock victim answers 500)", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DELETE did not finish after the worker committed")
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.deliveries WHERE id = ANY($1) AND status = 'skipped'`, []uuid.UUID{d1, d2}); n != 2 {
		t.Errorf("%d of 2 pending deliveries of the deleted webhook skipped", n)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.webhooks WHERE id = $1`, id); n != 0 {
		t.Errorf("webhook still exists after DELETE answered 204")
	}
}
