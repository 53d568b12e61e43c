package deliver

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Errors returned by Replay. Compare with errors.Is.
var (
	// ErrNotFound: no such delivery for that project's webhook.
	ErrNotFound = errors.New("delivery not found")
	// ErrWebhookNotFound: the project has no such webhook (it was deleted,
	// or never existed), whatever its deliveries. It is also ErrNotFound.
	ErrWebhookNotFound = fmt.Errorf("webhook not found: %w", ErrNotFound)
	// ErrNotReplayable: the delivery is still pending (its attempts are not
	// over), so there is nothing to replay.
	ErrNotReplayable = errors.New("delivery is still pending")
)

// Replay gives a finished delivery (delivered, failed or skipped) one more
// attempt: it becomes pending with max_attempts = attempts + 1 and is put on
// the stream at once. If publishing fails, the delivery stays pending in
// Postgres (the reconciler puts it back on the stream) and the error says so.
// A deleted webhook's deliveries are kept for the audit but never replayed
// (ErrWebhookNotFound), and a refused replay changes nothing.
func Replay(ctx context.Context, pool *pgxpool.Pool, rdb redis.UniversalClient, streams Streams, projectID, webhookID, deliveryID uuid.UUID) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, lockForReplaySQL, deliveryID, projectID, webhookID).Scan(&status)
		found := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("lock delivery: %w", err)
		}
		// The webhook is locked after its delivery (the order of the design
		// notes), against a concurrent DELETE: that one either ran first and
		// is seen here, or waits and then skips the delivery made pending.
		var one int
		err = tx.QueryRow(ctx, lockWebhookForReplaySQL, webhookID, projectID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrWebhookNotFound
		}
		if err != nil {
			return fmt.Errorf("lock webhook: %w", err)
		}
		if !found {
			return ErrNotFound
		}
		if status == statusPending {
			return ErrNotReplayable
		}
		if _, err := tx.Exec(ctx, rearmSQL, deliveryID); err != nil {
			return fmt.Errorf("rearm delivery: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay delivery %s: %w", deliveryID, err)
	}
	if err := streams.PublishWebhook(ctx, rdb, webhookID, deliveryID); err != nil {
		return fmt.Errorf("replay delivery %s: pending in Postgres, not yet on the stream: %w", deliveryID, err)
	}
	return nil
}
