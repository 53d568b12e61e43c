// Package stream is the one place that knows the shape of a hookrelay stream
// entry: a delivery id, nothing more (no secrets, no payload), and of the
// stream keys: Shards maps each delivery to its key, by webhook. The relay,
// the retry jobs, the reconciler and replays publish through it; workers
// parse entries with it. It also owns the consumer group's housekeeping (create,
// leave, remove consumers of gone processes) and the classification of the
// Redis errors that stream commands answer (NOGROUP, BUSYGROUP, no such key).
package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Field is the entry field that carries the delivery id.
const Field = "delivery_id"

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

// LeaveGroup removes consumer from group, unless entries are still pending on
// it (deleting the consumer would drop them from the group).
func LeaveGroup(ctx context.Context, rdb redis.Cmdable, key, group, consumer string) error {
	pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: key, Group: group, Start: "-", End: "+", Count: 1, Consumer: consumer,
	}).Result()
	if err != nil {
		return fmt.Errorf("pending entries of consumer %s: %w", consumer, err)
	}
	if len(pending) > 0 {
		return nil
	}
	if err := rdb.XGroupDelConsumer(ctx, key, group, consumer).Err(); err != nil {
		return fmt.Errorf("remove consumer %s: %w", consumer, err)
	}
	return nil
}

// RemoveIdleConsumers deletes the consumers of group that have nothing
// pending and have not read for idle: consumers of processes that are gone.
// A missing stream or group has none. It returns how many it removed.
func RemoveIdleConsumers(ctx context.Context, rdb redis.Cmdable, key, group string, idle time.Duration) (int, error) {
	consumers, err := rdb.XInfoConsumers(ctx, key, group).Result()
	if err != nil {
		if IsNoGroup(err) || IsNoSuchKey(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("XINFO CONSUMERS %s %s: %w", key, group, err)
	}
	removed := 0
	for _, c := range consumers {
		if c.Pending > 0 || c.Idle < idle {
			continue
		}
		if err := rdb.XGroupDelConsumer(ctx, key, group, c.Name).Err(); err != nil {
			return removed, fmt.Errorf("remove consumer %s: %w", c.Name, err)
		}
		removed++
	}
	return removed, nil
}
