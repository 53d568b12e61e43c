package stream

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// DefaultShards is the default of HOOKRELAY_STREAM_SHARDS: one stream key,
// the base name itself.
const DefaultShards = 1

// MaxShards bounds HOOKRELAY_STREAM_SHARDS.
const MaxShards = 256

// Shards is the one place that maps a delivery to its stream key. With N <=
// 1 there is one key, Base itself (queues:webhooks); with N > 1 there are N
// keys "<Base>:{<i>.<salt>}" (queues:webhooks:{0.5}, …). The hash tag puts
// shard i in the middle of the i-th N-th of the Cluster's 16384 slots (salt
// is the smallest number that does), so that a Cluster whose masters split
// the slots evenly, as `redis-cli --cluster create` does, holds the same
// number of shards on each master when N is a multiple of the masters
// (plain tags {0} {1} {2} put two of three shards on one master). A shard's
// dead stream, "<key>:dead", shares its slot. A delivery goes on the shard
// of its webhook, so that one endpoint's deliveries stay on one shard.
//
// Base must not carry a hash tag of its own ("{…}"): Redis hashes the first
// tag of a key, and every shard would then share one slot.
type Shards struct {
	Base string // HOOKRELAY_STREAM
	N    int    // HOOKRELAY_STREAM_SHARDS; 0 means 1
}

// Entry is what a publisher hands Shards.Publish: a delivery and the webhook
// that decides its shard.
type Entry struct {
	ID        uuid.UUID // the delivery
	WebhookID uuid.UUID
}

// Single reports whether there is one shard, the base key.
func (s Shards) Single() bool { return s.N <= 1 }

// Count is the number of shards, at least 1.
func (s Shards) Count() int { return max(s.N, 1) }

// Key is the stream key of shard i.
func (s Shards) Key(i int) string {
	if s.Single() {
		return s.Base
	}
	return s.Base + ":{" + tags(s.N)[i] + "}"
}

// Keys lists the stream keys of every shard, shard 0 first.
func (s Shards) Keys() []string {
	keys := make([]string, s.Count())
	for i := range keys {
		keys[i] = s.Key(i)
	}
	return keys
}

// Index is the shard of webhook: FNV-1a of its 16 bytes, modulo N.
func (s Shards) Index(webhook uuid.UUID) int {
	if s.Single() {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write(webhook[:])
	return int(h.Sum32() % uint32(s.N))
}

// KeyFor is the stream key of webhook's deliveries.
func (s Shards) KeyFor(webhook uuid.UUID) string { return s.Key(s.Index(webhook)) }

// Registry is the Redis set of every shard key that workers have consumed
// with N > 1. A worker drains the keys it holds that are not among its own
// Keys: the shards left behind when N was lowered, and the base key when N
// was raised from 1 (see Retired).
func (s Shards) Registry() string { return s.Base + ":shards" }

// Label names key's shard in metrics: its index, or the key itself for one
// that is not a shard of s (a retired one).
func (s Shards) Label(key string) string {
	if key == s.Base && s.Single() {
		return "0"
	}
	if tag, ok := strings.CutPrefix(key, s.Base+":{"); ok {
		if i, _, ok := strings.Cut(tag, "."); ok {
			return i
		}
	}
	return key
}

// Publish XADDs one entry per delivery to its shard, in a single pipelined
// round trip (go-redis splits it by node on a Cluster). It returns nil only
// if Redis accepted every entry.
func (s Shards) Publish(ctx context.Context, rdb redis.Cmdable, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.KeyFor(e.WebhookID), Values: []string{Field, e.ID.String()}})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publish %d deliveries to %s: %w", len(entries), s.describe(), err)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return fmt.Errorf("publish to %s: %w", s.describe(), err)
		}
	}
	return nil
}

// PublishWebhook publishes deliveries that all belong to webhook.
func (s Shards) PublishWebhook(ctx context.Context, rdb redis.Cmdable, webhook uuid.UUID, ids ...uuid.UUID) error {
	entries := make([]Entry, len(ids))
	for i, id := range ids {
		entries[i] = Entry{ID: id, WebhookID: webhook}
	}
	return s.Publish(ctx, rdb, entries)
}

func (s Shards) describe() string {
	if s.Single() {
		return s.Base
	}
	return fmt.Sprintf("%s (%d shards)", s.Base, s.N)
}

// Retired lists the keys of registered (every key in the registry, and the
// base key when there are shards) that are not shards of s: what a worker
// must drain after N changed.
func (s Shards) Retired(registered []string) []string {
	own := make(map[string]bool, s.Count())
	for _, k := range s.Keys() {
		own[k] = true
	}
	var out []string
	seen := map[string]bool{}
	cands := registered
	if !s.Single() {
		cands = append([]string{s.Base}, registered...)
	}
	for _, k := range cands {
		if !own[k] && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Register adds the shard keys of s to the registry, so that a worker
// started later with fewer shards drains them. One shard (the base key) is
// not registered: a worker with shards drains the base key anyway, and with
// one shard nothing is written that was not written before shards existed.
func (s Shards) Register(ctx context.Context, rdb redis.Cmdable) error {
	if s.Single() {
		return nil
	}
	members := make([]any, 0, s.N)
	for _, k := range s.Keys() {
		members = append(members, k)
	}
	if err := rdb.SAdd(ctx, s.Registry(), members...).Err(); err != nil {
		return fmt.Errorf("register shards in %s: %w", s.Registry(), err)
	}
	return nil
}

// Registered reads the registry (empty when it does not exist).
func (s Shards) Registered(ctx context.Context, rdb redis.Cmdable) ([]string, error) {
	keys, err := rdb.SMembers(ctx, s.Registry()).Result()
	if err != nil {
		return nil, fmt.Errorf("read shard registry %s: %w", s.Registry(), err)
	}
	return keys, nil
}

// dropIfEmpty deletes a stream key (with its groups) if it holds no entry,
// atomically: an entry added meanwhile keeps it.
var dropIfEmpty = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1`)

// Retire deletes a retired shard key once it holds no entry (every entry of
// a stream is deleted once acknowledged, so an empty stream has nothing
// unread or pending) and then forgets it in the registry. It reports
// whether the key is gone. An entry a process still running with the old
// shard count adds later recreates the key outside the registry; the
// reconciler's stale sweep puts that delivery back on its shard.
func (s Shards) Retire(ctx context.Context, rdb redis.Cmdable, key string) (bool, error) {
	gone, err := dropIfEmpty.Run(ctx, rdb, []string{key}).Int()
	if err != nil {
		return false, fmt.Errorf("retire stream %s: %w", key, err)
	}
	if gone == 0 {
		return false, nil
	}
	if err := rdb.SRem(ctx, s.Registry(), key).Err(); err != nil {
		return true, fmt.Errorf("forget retired stream %s: %w", key, err)
	}
	return true, nil
}

// slots is the number of Redis Cluster hash slots.
const slots = 16384

// tagMemo holds the hash tags of each shard count, computed once.
var tagMemo sync.Map // int → []string

// tags returns the hash tags of the n shards: tag i is "<i>.<salt>", salt
// the smallest that puts its slot in the middle half of [i, i+1) × 16384/n,
// so that an unevenly split slot range still keeps it on the i-th master.
func tags(n int) []string {
	if t, ok := tagMemo.Load(n); ok {
		return t.([]string)
	}
	t := make([]string, n)
	for i := range t {
		lo, hi := i*slots/n, (i+1)*slots/n
		lo, hi = lo+(hi-lo)/4, hi-(hi-lo)/4
		for salt := 0; ; salt++ {
			tag := strconv.Itoa(i) + "." + strconv.Itoa(salt)
			if slot := int(Slot(tag)); slot >= lo && slot < hi {
				t[i] = tag
				break
			}
		}
	}
	tagMemo.Store(n, t)
	return t
}

// Slot is the Redis Cluster hash slot of a key (or of a hash tag's text):
// CRC16-XMODEM of its hash tag, if it has one, modulo 16384.
func Slot(key string) uint16 {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % slots
}
