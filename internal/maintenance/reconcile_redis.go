package maintenance

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/stream"
)

// Reasons for which Redis is considered to have lost data.
const (
	// ResetMarkerGone: the marker group that only the reconciler creates on
	// the stream, and remembers in Postgres, is gone. That covers FLUSHDB,
	// FLUSHALL, DEL or eviction of the stream key and a restart without
	// persistence, whoever recreated the stream or the group since.
	ResetMarkerGone = "marker_missing"
	// ResetRunIDChanged: the server's run id changed (a restart, or a
	// failover) while the marker survived, e.g. a restart from an
	// append-only file that may have lost its last second.
	ResetRunIDChanged = "run_id_changed"
)

// markerPrefix names the reconciler's marker groups: the marker is a
// consumer group of the stream, so it lives in the stream key itself (on the
// stream's own node in a Cluster) and goes wherever the stream's data goes.
// It never reads.
const markerPrefix = "hookrelay-marker-"

// detectLoss reports whether Redis lost the data of any shard's stream since
// the last run ("" if not; the first reason found otherwise) and leaves a
// marker on each for the next run to find. Each shard has its marker and
// its run id remembered in Postgres; a loss of any one shard re-publishes
// every pending delivery that is not queued on some shard (carryOnReset).
// After the shard count changed, the markers remembered for it are not
// checked once: a shard key drained and deleted, then used again, lost
// nothing.
func (w *Reconciler) detectLoss(ctx context.Context, now time.Time) (string, error) {
	count := strconv.Itoa(w.streams.Count())
	was, err := w.loadState(ctx, keyShards)
	if err != nil {
		return "", err
	}
	fresh := cmp.Or(was, "1") != count
	reason := ""
	var errs []error
	for _, key := range w.streams.Keys() {
		r, err := w.detectLossOn(ctx, key, now, fresh)
		reason = cmp.Or(reason, r)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return reason, err
	}
	if fresh {
		return reason, w.storeState(ctx, keyShards, count)
	}
	return reason, nil
}

// stateKey is the name under which the reconciler remembers name (a
// marker, a run id) for the stream key: the name itself for the base key
// (one shard), as before shards existed.
func (w *Reconciler) stateKey(name, key string) string {
	if key == w.streams.Base {
		return name
	}
	return name + ":" + key
}

// detectLossOn is detectLoss for one stream key; fresh ignores the marker
// remembered for it. Workers
// recreate the consumer group within milliseconds of a NOGROUP and relays
// recreate the stream on their next XADD, so neither says anything; the
// marker is written by nobody else. The server's run id (INFO) is only a
// second, best-effort signal: a Redis that refuses INFO (an ACL without
// @dangerous, a proxy) still has its losses detected.
//
// now is the database's clock: deliveries last published before it are
// re-published when a loss is found.
func (w *Reconciler) detectLossOn(ctx context.Context, key string, now time.Time, fresh bool) (string, error) {
	stored, err := w.loadState(ctx, w.stateKey(keyMarker, key))
	if err != nil {
		return "", err
	}
	if fresh {
		stored = ""
	}
	// The next marker is placed before the current one is checked, and
	// only on a stream that exists: a loss that strikes after the check
	// then takes the next marker with it, and is found by the next run. (A
	// marker placed after the check could land in a stream flushed in
	// between, and hide that loss.)
	next := newToken()
	placed := w.rdb.XGroupCreate(ctx, key, markerPrefix+next, "$").Err() == nil
	groups, err := w.rdb.XInfoGroups(ctx, key).Result()
	if w.afterCheck != nil {
		w.afterCheck()
	}
	if err != nil && !stream.IsNoSuchKey(err) {
		return "", fmt.Errorf("XINFO GROUPS %s: %w", key, err)
	}
	hasMarker, hasGroup := false, false
	var staleMarkers []string
	for _, g := range groups {
		switch {
		case g.Name == w.cfg.Group:
			hasGroup = true
		case stored != "" && g.Name == markerPrefix+stored:
			hasMarker = true
		case g.Name == markerPrefix+next:
		case strings.HasPrefix(g.Name, markerPrefix):
			staleMarkers = append(staleMarkers, g.Name)
		}
	}
	reason := ""
	if stored != "" && !hasMarker {
		reason = ResetMarkerGone
	}
	runID, changed, err := w.checkRunID(ctx, key)
	if err != nil {
		w.infoTrack.Fail(err)
	} else {
		w.infoTrack.OK()
		if reason == "" && changed {
			reason = ResetRunIDChanged
		}
	}
	if !hasGroup {
		if err := stream.EnsureGroup(ctx, w.rdb, key, w.cfg.Group); err != nil {
			return reason, err
		}
	}
	if reason != "" {
		// Remembered before the marker is replaced: a run that dies from here
		// on leaves the reset to the next run instead of forgetting it.
		if err := w.storeState(ctx, keyResetBefore, strconv.FormatInt(now.UnixMicro(), 10)); err != nil {
			return reason, err
		}
	}
	if runID != "" {
		if err := w.storeState(ctx, w.stateKey(keyRedisRunID, key), runID); err != nil {
			return reason, err
		}
	}
	// A new marker every run: a Redis restored from an older snapshot, or a
	// replica promoted while it lagged, holds an earlier marker, not the
	// one remembered, and so is caught too.
	switch {
	case !placed && hasMarker:
		return reason, nil // the stream appeared in between: keep the current marker
	case !placed:
		// The stream was gone, so this run has found the loss (or it is
		// the first): a marker placed now, creating the stream, hides nothing.
		if err := w.rdb.XGroupCreateMkStream(ctx, key, markerPrefix+next, "$").Err(); err != nil {
			return reason, fmt.Errorf("create marker group on %s: %w", key, err)
		}
	case hasMarker:
		staleMarkers = append(staleMarkers, markerPrefix+stored)
	}
	if err := w.storeState(ctx, w.stateKey(keyMarker, key), next); err != nil {
		return reason, err
	}
	for _, g := range staleMarkers {
		_ = w.rdb.XGroupDestroy(ctx, key, g).Err() // best effort: the next run tries again
	}
	return reason, nil
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkRunID reads the run id of the server holding key and reports whether
// it differs from the one remembered in Postgres; it returns "" when there
// is nothing new to remember. The first run id ever seen is only remembered.
func (w *Reconciler) checkRunID(ctx context.Context, key string) (id string, changed bool, err error) {
	info, err := w.serverInfo(ctx, key)
	if err != nil {
		return "", false, fmt.Errorf("redis INFO server (best effort; loss detection goes on through the marker): %w", err)
	}
	id = runID(info)
	stored, err := w.loadState(ctx, w.stateKey(keyRedisRunID, key))
	if err != nil || id == "" || id == stored {
		return "", false, err
	}
	return id, stored != "", nil
}

// serverInfo reads INFO server from the server that holds key: in a Redis
// Cluster, the master of the key's slot, whose run id is the one that
// matters (another node's would differ on every call).
func (w *Reconciler) serverInfo(ctx context.Context, key string) (string, error) {
	if c, ok := w.rdb.(*redis.ClusterClient); ok {
		master, err := c.MasterForKey(ctx, key)
		if err != nil {
			return "", err
		}
		return master.Info(ctx, "server").Result()
	}
	return w.rdb.Info(ctx, "server").Result()
}

// keys lists every stream key that may hold entries: the shards, then the
// retired keys of a past shard count that workers are draining.
func (w *Reconciler) keys(ctx context.Context) ([]string, error) {
	registered, err := w.streams.Registered(ctx, w.rdb)
	if err != nil {
		return nil, err
	}
	return append(w.streams.Keys(), w.streams.Retired(registered)...), nil
}

// oldestEntry is the time of the oldest entry of all the stream keys (from
// its id), and false when they are empty or missing. Entries are deleted
// once acknowledged, so every entry left is unread or being processed.
func (w *Reconciler) oldestEntry(ctx context.Context) (time.Time, bool, error) {
	keys, err := w.keys(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	var oldest time.Time
	found := false
	for _, key := range keys {
		msgs, err := w.rdb.XRangeN(ctx, key, "-", "+", 1).Result()
		if err != nil {
			return time.Time{}, false, fmt.Errorf("XRANGE %s: %w", key, err)
		}
		if len(msgs) == 0 {
			continue
		}
		ms, _, _ := strings.Cut(msgs[0].ID, "-")
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("stream entry id %q: %w", msgs[0].ID, err)
		}
		if t := time.UnixMilli(n); !found || t.Before(oldest) {
			oldest, found = t, true
		}
	}
	return oldest, found, nil
}

// streamDeliveries reads the delivery id of every entry of every stream
// key, a page at a time (after a loss, a stream holds only what was
// published since Redis came back).
func (w *Reconciler) streamDeliveries(ctx context.Context) (map[uuid.UUID]bool, error) {
	keys, err := w.keys(ctx)
	if err != nil {
		return nil, err
	}
	ids := map[uuid.UUID]bool{}
	for _, key := range keys {
		start := "-"
		for {
			msgs, err := w.rdb.XRangeN(ctx, key, start, "+", 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("XRANGE %s: %w", key, err)
			}
			for _, m := range msgs {
				if id, err := stream.DeliveryID(m); err == nil {
					ids[id] = true
				}
			}
			if len(msgs) < 1000 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return ids, nil
}

// streamGauges reads and reports, per stream key, the length and the number
// of entries read but not acknowledged by the group, and returns their sums.
func (w *Reconciler) streamGauges(ctx context.Context) (length, pending int64, err error) {
	keys, err := w.keys(ctx)
	if err != nil {
		return 0, 0, err
	}
	if w.m != nil {
		// Series of shards that are gone go with them.
		w.m.StreamLength.Reset()
		w.m.StreamPending.Reset()
	}
	for _, key := range keys {
		l, p, err := w.streamGauge(ctx, key)
		if err != nil {
			return 0, 0, err
		}
		length, pending = length+l, pending+p
		if w.m != nil {
			w.m.StreamLength.WithLabelValues(w.streams.Label(key)).Set(float64(l))
			w.m.StreamPending.WithLabelValues(w.streams.Label(key)).Set(float64(p))
		}
	}
	return length, pending, nil
}

func (w *Reconciler) streamGauge(ctx context.Context, key string) (length, pending int64, err error) {
	length, err = w.rdb.XLen(ctx, key).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("XLEN %s: %w", key, err)
	}
	p, err := w.rdb.XPending(ctx, key, w.cfg.Group).Result()
	switch {
	case err != nil && (stream.IsNoGroup(err) || errors.Is(err, redis.Nil)):
		return length, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("XPENDING %s %s: %w", key, w.cfg.Group, err)
	}
	return length, p.Count, nil
}

// removeGoneConsumers deletes, on every shard, the group's consumers that
// have nothing pending and have been idle for ConsumerIdle: consumers of
// killed or crashed processes, which never left the group. (A consumer with
// entries pending keeps them until the claim loops have taken them over.)
func (w *Reconciler) removeGoneConsumers(ctx context.Context) (int, error) {
	total := 0
	for _, key := range w.streams.Keys() {
		removed, err := stream.RemoveIdleConsumers(ctx, w.rdb, key, w.cfg.Group, w.cfg.ConsumerIdle)
		total += removed
		if err != nil {
			return total, err
		}
	}
	if total > 0 {
		w.log.Info("removed consumers of processes that are gone", "consumers", total, "idle_over", w.cfg.ConsumerIdle)
	}
	return total, nil
}

// loadState reads a value the reconciler keeps in Postgres ("" if none).
func (w *Reconciler) loadState(ctx context.Context, key string) (string, error) {
	var v string
	err := w.pool.QueryRow(ctx, loadStateSQL, key).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("load %s: %w", key, err)
	}
	return v, nil
}

// storeState remembers a value in Postgres.
func (w *Reconciler) storeState(ctx context.Context, key, value string) error {
	if _, err := w.pool.Exec(ctx, storeStateSQL, key, value); err != nil {
		return fmt.Errorf("remember %s: %w", key, err)
	}
	return nil
}

// runID extracts run_id from the text of INFO server.
func runID(info string) string {
	s := bufio.NewScanner(strings.NewReader(info))
	for s.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "run_id:"); ok {
			return v
		}
	}
	return ""
}
