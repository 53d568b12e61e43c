package maintenance

import (
	"bufio"
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

// detectLoss reports whether Redis lost the stream's data since the last
// run ("" if not) and leaves a marker for the next run to find. Workers
// recreate the consumer group within milliseconds of a NOGROUP and relays
// recreate the stream on their next XADD, so neither says anything; the
// marker is written by nobody else. The server's run id (INFO) is only a
// second, best-effort signal: a Redis that refuses INFO (an ACL without
// @dangerous, a proxy) still has its losses detected.
//
// now is the database's clock: deliveries last published before it are
// re-published when a loss is found.
func (w *Reconciler) detectLoss(ctx context.Context, now time.Time) (string, error) {
	stored, err := w.loadState(ctx, keyMarker)
	if err != nil {
		return "", err
	}
	// The next marker is placed before the current one is checked, and
	// only on a stream that exists: a loss that strikes after the check
	// then takes the next marker with it, and is found by the next run. (A
	// marker placed after the check could land in a stream flushed in
	// between, and hide that loss.)
	next := newToken()
	placed := w.rdb.XGroupCreate(ctx, w.cfg.Stream, markerPrefix+next, "$").Err() == nil
	groups, err := w.rdb.XInfoGroups(ctx, w.cfg.Stream).Result()
	if w.afterCheck != nil {
		w.afterCheck()
	}
	if err != nil && !stream.IsNoSuchKey(err) {
		return "", fmt.Errorf("XINFO GROUPS %s: %w", w.cfg.Stream, err)
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
	runID, changed, err := w.checkRunID(ctx)
	if err != nil {
		w.infoTrack.Fail(err)
	} else {
		w.infoTrack.OK()
		if reason == "" && changed {
			reason = ResetRunIDChanged
		}
	}
	if !hasGroup {
		if err := stream.EnsureGroup(ctx, w.rdb, w.cfg.Stream, w.cfg.Group); err != nil {
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
		if err := w.storeState(ctx, keyRedisRunID, runID); err != nil {
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
		if err := w.rdb.XGroupCreateMkStream(ctx, w.cfg.Stream, markerPrefix+next, "$").Err(); err != nil {
			return reason, fmt.Errorf("create marker group on %s: %w", w.cfg.Stream, err)
		}
	case hasMarker:
		staleMarkers = append(staleMarkers, markerPrefix+stored)
	}
	if err := w.storeState(ctx, keyMarker, next); err != nil {
		return reason, err
	}
	for _, g := range staleMarkers {
		_ = w.rdb.XGroupDestroy(ctx, w.cfg.Stream, g).Err() // best effort: the next run tries again
	}
	return reason, nil
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkRunID reads the server's run id and reports whether it differs from
// the one remembered in Postgres; it returns "" when there is nothing new
// to remember. The first run id ever seen is only remembered.
func (w *Reconciler) checkRunID(ctx context.Context) (id string, changed bool, err error) {
	info, err := w.serverInfo(ctx)
	if err != nil {
		return "", false, fmt.Errorf("redis INFO server (best effort; loss detection goes on through the marker): %w", err)
	}
	id = runID(info)
	stored, err := w.loadState(ctx, keyRedisRunID)
	if err != nil || id == "" || id == stored {
		return "", false, err
	}
	return id, stored != "", nil
}

// serverInfo reads INFO server from the server that holds the stream: in a
// Redis Cluster, the master of the stream's slot, whose run id is the one
// that matters (another node's would differ on every call).
func (w *Reconciler) serverInfo(ctx context.Context) (string, error) {
	if c, ok := w.rdb.(*redis.ClusterClient); ok {
		master, err := c.MasterForKey(ctx, w.cfg.Stream)
		if err != nil {
			return "", err
		}
		return master.Info(ctx, "server").Result()
	}
	return w.rdb.Info(ctx, "server").Result()
}

// oldestEntry is the time of the oldest entry in the stream (from its id),
// and false when the stream is empty or missing. Entries are deleted once
// acknowledged, so every entry left is unread or being processed.
func (w *Reconciler) oldestEntry(ctx context.Context) (time.Time, bool, error) {
	msgs, err := w.rdb.XRangeN(ctx, w.cfg.Stream, "-", "+", 1).Result()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("XRANGE %s: %w", w.cfg.Stream, err)
	}
	if len(msgs) == 0 {
		return time.Time{}, false, nil
	}
	ms, _, _ := strings.Cut(msgs[0].ID, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("stream entry id %q: %w", msgs[0].ID, err)
	}
	return time.UnixMilli(n), true, nil
}

// streamDeliveries reads the delivery id of every entry in the stream, a
// page at a time (after a loss, the stream holds only what was published
// since Redis came back).
func (w *Reconciler) streamDeliveries(ctx context.Context) (map[uuid.UUID]bool, error) {
	ids := map[uuid.UUID]bool{}
	start := "-"
	for {
		msgs, err := w.rdb.XRangeN(ctx, w.cfg.Stream, start, "+", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("XRANGE %s: %w", w.cfg.Stream, err)
		}
		for _, m := range msgs {
			if id, err := stream.DeliveryID(m); err == nil {
				ids[id] = true
			}
		}
		if len(msgs) < 1000 {
			return ids, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// streamGauges reads and reports the stream's length and the number of
// entries read but not acknowledged by the group.
func (w *Reconciler) streamGauges(ctx context.Context) (length, pending int64, err error) {
	length, err = w.rdb.XLen(ctx, w.cfg.Stream).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("XLEN %s: %w", w.cfg.Stream, err)
	}
	p, err := w.rdb.XPending(ctx, w.cfg.Stream, w.cfg.Group).Result()
	switch {
	case err != nil && (stream.IsNoGroup(err) || errors.Is(err, redis.Nil)):
		pending = 0
	case err != nil:
		return 0, 0, fmt.Errorf("XPENDING %s %s: %w", w.cfg.Stream, w.cfg.Group, err)
	default:
		pending = p.Count
	}
	if w.m != nil {
		w.m.StreamLength.Set(float64(length))
		w.m.StreamPending.Set(float64(pending))
	}
	return length, pending, nil
}

// removeGoneConsumers deletes the group's consumers that have nothing
// pending and have been idle for ConsumerIdle: consumers of killed or
// crashed processes, which never left the group. (A consumer with entries
// pending keeps them until the claim loops have taken them over.)
func (w *Reconciler) removeGoneConsumers(ctx context.Context) (int, error) {
	removed, err := stream.RemoveIdleConsumers(ctx, w.rdb, w.cfg.Stream, w.cfg.Group, w.cfg.ConsumerIdle)
	if removed > 0 {
		w.log.Info("removed consumers of processes that are gone", "consumers", removed, "idle_over", w.cfg.ConsumerIdle)
	}
	return removed, err
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
