package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/stream"
)

// statsWindows are the windows of GET /stats and the width of their buckets:
// a minute over the last hour, a quarter of an hour over the last day.
var statsWindows = map[string]struct{ span, bucket time.Duration }{
	"1h":  {time.Hour, time.Minute},
	"24h": {24 * time.Hour, 15 * time.Minute},
}

// outcomes counts deliveries by their status.
type outcomes struct {
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	Pending   int `json:"pending"`
	Skipped   int `json:"skipped"`
}

func (o *outcomes) add(status string, n int) {
	switch status {
	case "delivered":
		o.Delivered += n
	case "failed":
		o.Failed += n
	case "pending":
		o.Pending += n
	case "skipped":
		o.Skipped += n
	}
}

// successRatio is delivered over delivered and failed; nil when neither.
func (o outcomes) successRatio() *float64 {
	if o.Delivered+o.Failed == 0 {
		return nil
	}
	r := float64(o.Delivered) / float64(o.Delivered+o.Failed)
	return &r
}

// bucket is one bucket of the stats' series: deliveries created in
// [start, start + bucket_seconds), by their status now.
type bucket struct {
	Start time.Time `json:"start"`
	outcomes
}

// webhookStats is one webhook's outcomes in the window.
type webhookStats struct {
	ID           uuid.UUID `json:"id"`
	SuccessRatio *float64  `json:"success_ratio"`
	outcomes
}

// projectStats is the answer of GET /stats.
type projectStats struct {
	Window        string         `json:"window"`
	Since         time.Time      `json:"since"`
	Until         time.Time      `json:"until"`
	BucketSeconds int            `json:"bucket_seconds"`
	Series        []bucket       `json:"series"`
	Totals        outcomes       `json:"totals"`
	SuccessRatio  *float64       `json:"success_ratio"`
	LatencyMS     latency        `json:"latency_ms"`
	Backlog       backlog        `json:"backlog"`
	Stream        *streamStats   `json:"stream"`
	Webhooks      []webhookStats `json:"webhooks"`
}

type latency struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
}

type backlog struct {
	Pending         int        `json:"pending"`
	OldestPendingAt *time.Time `json:"oldest_pending_at"`
}

// streamStats is the shared stream's length and its group's pending
// entries, over every shard: every project's deliveries flow through the
// same keys.
type streamStats struct {
	Length  int64 `json:"length"`
	Pending int64 `json:"pending"`
}

// projectWebhooks selects the deliveries of the project's live webhooks
// ($1 the project), by the index on (webhook_id, created_at).
const projectWebhooks = `project_id = $1 AND webhook_id IN (SELECT id FROM hookrelay.webhooks WHERE project_id = $1)`

// projectStats answers the dashboard's overview: the project's deliveries
// created in the window (1h or 24h) by bucket, status and webhook, the
// success ratio (delivered over delivered and failed), the commit-to-
// delivery latency of those delivered, the pending backlog (all of it, not
// just the window's), and the shared stream's length and pending entries
// (null when Redis does not answer).
func (a *app) projectStats(w http.ResponseWriter, r *http.Request) error {
	project, err := pathUUID(r, "project_id")
	if err != nil {
		return err
	}
	name := r.URL.Query().Get("window")
	if name == "" {
		name = "1h"
	}
	win, ok := statsWindows[name]
	if !ok {
		return invalid("window", "must be 1h or 24h")
	}
	until := time.Now().UTC().Truncate(win.bucket).Add(win.bucket)
	since := until.Add(-win.span)
	s := projectStats{Window: name, Since: since, Until: until, BucketSeconds: int(win.bucket.Seconds()), Webhooks: []webhookStats{}}
	if err := a.loadStats(r.Context(), project, win.bucket, &s); err != nil {
		return err
	}
	s.Stream = a.streamStats(r.Context())
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (a *app) loadStats(ctx context.Context, project uuid.UUID, width time.Duration, s *projectStats) error {
	s.Series = make([]bucket, int(s.Until.Sub(s.Since)/width))
	for i := range s.Series {
		s.Series[i].Start = s.Since.Add(time.Duration(i) * width)
	}
	byHook := map[uuid.UUID]*webhookStats{}
	rows, err := a.pool.Query(ctx, `SELECT date_bin($3::interval, created_at, $2), webhook_id, status, count(*)
		FROM hookrelay.deliveries WHERE `+projectWebhooks+` AND created_at >= $2
		GROUP BY 1, 2, 3`, project, s.Since, width)
	if err != nil {
		return fmt.Errorf("stats of project %s: %w", project, err)
	}
	var start time.Time
	var hook uuid.UUID
	var status string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&start, &hook, &status, &n}, func() error {
		if i := int(start.Sub(s.Since) / width); i >= 0 && i < len(s.Series) {
			s.Series[i].add(status, n)
		}
		s.Totals.add(status, n)
		if byHook[hook] == nil {
			byHook[hook] = &webhookStats{ID: hook}
		}
		byHook[hook].add(status, n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("stats of project %s: %w", project, err)
	}
	s.SuccessRatio = s.Totals.successRatio()
	for _, h := range byHook {
		h.SuccessRatio = h.successRatio()
		s.Webhooks = append(s.Webhooks, *h)
	}
	err = a.pool.QueryRow(ctx, `WITH l AS (
			SELECT extract(epoch FROM delivered_at - event_created_at) * 1000 AS ms
			FROM hookrelay.deliveries WHERE `+projectWebhooks+` AND created_at >= $2 AND status = 'delivered')
		SELECT (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM l),
		       (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FROM l),
		       (SELECT count(*) FROM hookrelay.deliveries WHERE `+projectWebhooks+` AND status = 'pending'),
		       (SELECT min(created_at) FROM hookrelay.deliveries WHERE `+projectWebhooks+` AND status = 'pending')`,
		project, s.Since).Scan(&s.LatencyMS.P50, &s.LatencyMS.P99, &s.Backlog.Pending, &s.Backlog.OldestPendingAt)
	if err != nil {
		return fmt.Errorf("latency and backlog of project %s: %w", project, err)
	}
	return nil
}

// streamStats sums the length of every stream shard and its group's pending
// entries; nil when Redis fails (the overview still shows what Postgres
// knows).
func (a *app) streamStats(ctx context.Context) *streamStats {
	if a.cfg.Stream == "" {
		return nil
	}
	st := &streamStats{}
	for _, key := range (stream.Shards{Base: a.cfg.Stream, N: a.cfg.Shards}).Keys() {
		n, err := a.rdb.XLen(ctx, key).Result()
		if err != nil {
			return nil
		}
		st.Length += n
		if a.cfg.Group == "" {
			continue
		}
		p, err := a.rdb.XPending(ctx, key, a.cfg.Group).Result()
		switch {
		case err == nil:
			st.Pending += p.Count
		case errors.Is(err, redis.Nil) || stream.IsNoGroup(err):
		default:
			return nil
		}
	}
	return st
}
