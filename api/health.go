package api

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = 2 * time.Second

// healthz reports that the process is up; it checks nothing else.
func (a *app) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz reports whether Postgres and Redis answer: 200 when both do, else
// 503 with a message naming those that do not.
func (a *app) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var down []string
	if err := a.pool.Ping(ctx); err != nil {
		a.log.WarnContext(ctx, "readiness: postgres unreachable", "err", err)
		down = append(down, "postgres")
	}
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		a.log.WarnContext(ctx, "readiness: redis unreachable", "err", err)
		down = append(down, "redis")
	}
	if len(down) > 0 {
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "not ready: " + strings.Join(down, " and ") + " unreachable"}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
