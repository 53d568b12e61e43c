// Package stream is the one place that knows the shape of a hookrelay stream
// entry: a delivery id, nothing more (no secrets, no payload). The relay, the
// retry jobs, the reconciler and replays publish through it; workers parse
// entries with it.
package stream

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Field is the entry field that carries the delivery id.
const Field = "delivery_id"

// Publish XADDs one entry per delivery id to key in a single pipelined round
// trip. It returns nil only if Redis accepted every entry.
func Publish(ctx context.Context, rdb redis.Cmdable, key string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{Field, id.String()}})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish %d deliveries to %s: %w", len(ids), key, err)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return fmt.Errorf("publish to %s: %w", key, err)
		}
	}
	return nil
}

// DeliveryID reads the delivery id of an entry.
func DeliveryID(m redis.XMessage) (uuid.UUID, error) {
	v, ok := m.Values[Field].(string)
	if !ok {
		return uuid.Nil, fmt.Errorf("stream entry %s has no %s field", m.ID, Field)
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return uuid.Nil, fmt.Errorf("stream entry %s: bad %s %q: %w", m.ID, Field, v, err)
	}
	return id, nil
}
