package reconcile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Reasons for which Redis is considered to have lost data.
const (
	ResetRunIDChanged = "run_id_changed"
	ResetStreamGone   = "stream_missing"
	ResetGroupGone    = "group_missing"
)

// redisState is what checkRedis found.
type redisState struct {
	runID  string // the server's run id now
	stored string // the run id remembered in Postgres ("" the first time)
	reset  string // one of the Reset* reasons, or ""
}

// checkRedis compares Redis's run id with the one remembered in Postgres and
// checks that the stream and its consumer group exist. The first run id ever
// seen is only remembered: nothing says the data was lost then, and a
// missing stream or group still counts.
func (w *Worker) checkRedis(ctx context.Context) (redisState, error) {
	var st redisState
	info, err := w.serverInfo(ctx)
	if err != nil {
		return st, fmt.Errorf("reconcile: redis INFO server: %w", err)
	}
	st.runID = runID(info)
	err = w.pool.QueryRow(ctx, sqlLoadState, keyRedisRunID).Scan(&st.stored)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("reconcile: load redis run id: %w", err)
	}
	if st.stored != "" && st.runID != "" && st.stored != st.runID {
		st.reset = ResetRunIDChanged
		return st, nil
	}
	groups, err := w.rdb.XInfoGroups(ctx, w.cfg.Stream).Result()
	switch {
	case err != nil && strings.Contains(err.Error(), "no such key"):
		st.reset = ResetStreamGone
		return st, nil
	case err != nil:
		return st, fmt.Errorf("reconcile: XINFO GROUPS %s: %w", w.cfg.Stream, err)
	}
	for _, g := range groups {
		if g.Name == w.cfg.Group {
			return st, nil
		}
	}
	st.reset = ResetGroupGone
	return st, nil
}

// serverInfo reads INFO server from the server that holds the stream: in a
// Redis Cluster, the master of the stream's slot, whose run id is the one
// that matters (another node's would differ on every call).
func (w *Worker) serverInfo(ctx context.Context) (string, error) {
	if c, ok := w.rdb.(*redis.ClusterClient); ok {
		master, err := c.MasterForKey(ctx, w.cfg.Stream)
		if err != nil {
			return "", err
		}
		return master.Info(ctx, "server").Result()
	}
	return w.rdb.Info(ctx, "server").Result()
}

// ensureGroup creates the consumer group (and the stream) if they are
// missing, reading from the start of the stream so that no entry published
// before a worker recreates it is skipped.
func (w *Worker) ensureGroup(ctx context.Context) error {
	err := w.rdb.XGroupCreateMkStream(ctx, w.cfg.Stream, w.cfg.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("reconcile: create consumer group %s on %s: %w", w.cfg.Group, w.cfg.Stream, err)
	}
	return nil
}

// streamGauges reads and reports the stream's length and the number of
// entries read but not acknowledged by the group.
func (w *Worker) streamGauges(ctx context.Context) (length, pending int64, err error) {
	length, err = w.rdb.XLen(ctx, w.cfg.Stream).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("reconcile: XLEN %s: %w", w.cfg.Stream, err)
	}
	p, err := w.rdb.XPending(ctx, w.cfg.Stream, w.cfg.Group).Result()
	switch {
	case err != nil && (strings.HasPrefix(err.Error(), "NOGROUP") || errors.Is(err, redis.Nil)):
		pending = 0
	case err != nil:
		return 0, 0, fmt.Errorf("reconcile: XPENDING %s %s: %w", w.cfg.Stream, w.cfg.Group, err)
	default:
		pending = p.Count
	}
	if w.m != nil {
		w.m.StreamLength.Set(float64(length))
		w.m.StreamPending.Set(float64(pending))
	}
	return length, pending, nil
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
