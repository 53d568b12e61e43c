// Package stream is the one place that knows the shape of a hookrelay stream
// entry: a delivery id, nothing more (no secrets, no payload). The relay, the
// retry jobs, the reconciler and replays publish through it; workers parse
// entries with it.
package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// EnsureGroup creates the consumer group on key (and the stream, if it is
// missing), reading from the start of the stream so that no entry published
// before the group was (re)created is skipped. A group that exists already
// is left as it is.
func EnsureGroup(ctx context.Context, rdb redis.Cmdable, key, group string) error {
	err := rdb.XGroupCreateMkStream(ctx, key, group, "0").Err()
	if err != nil && !IsBusyGroup(err) {
		return fmt.Errorf("create consumer group %s on %s: %w", group, key, err)
	}
	return nil
}

// IsNoGroup reports whether Redis answered that the stream or the consumer
// group does not exist (NOGROUP): Redis lost data, or never had it.
func IsNoGroup(err error) bool { return hasPrefix(err, "NOGROUP") }

// IsBusyGroup reports whether Redis answered that the group exists already.
func IsBusyGroup(err error) bool { return hasPrefix(err, "BUSYGROUP") }

// IsNoSuchKey reports whether Redis answered that the key does not exist
// (XINFO on a missing stream).
func IsNoSuchKey(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such key")
}

func hasPrefix(err error, code string) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), code)
}
