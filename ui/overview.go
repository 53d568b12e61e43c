package ui

import (
	"net/http"
	"time"
)

// stats is the API's GET /stats answer.
type stats struct {
	Window        string    `json:"window"`
	Since         time.Time `json:"since"`
	Until         time.Time `json:"until"`
	BucketSeconds int       `json:"bucket_seconds"`
	Series        []struct {
		Start time.Time `json:"start"`
		outcomes
	} `json:"series"`
	Totals       outcomes `json:"totals"`
	SuccessRatio *float64 `json:"success_ratio"`
	LatencyMS    struct {
		P50 *float64 `json:"p50"`
		P99 *float64 `json:"p99"`
	} `json:"latency_ms"`
	Backlog struct {
		Pending         int        `json:"pending"`
		OldestPendingAt *time.Time `json:"oldest_pending_at"`
	} `json:"backlog"`
	Stream *struct {
		Length  int64 `json:"length"`
		Pending int64 `json:"pending"`
	} `json:"stream"`
	Webhooks []struct {
		ID           string   `json:"id"`
		SuccessRatio *float64 `json:"success_ratio"`
		outcomes
	} `json:"webhooks"`
}

type outcomes struct {
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	Pending   int `json:"pending"`
	Skipped   int `json:"skipped"`
}

// ratios are the webhooks' success ratios in st, by webhook id.
func (st stats) ratios() map[string]*float64 {
	m := map[string]*float64{}
	for _, w := range st.Webhooks {
		m[w.ID] = w.SuccessRatio
	}
	return m
}

type overviewView struct {
	Project string
	Hour    stats
	Day     stats
	Now     time.Time
}

// overviewPage is the project's overview: the last hour and day of
// deliveries as charts, success ratio, latency, backlog, stream and dead
// letters. Its body refreshes itself with the page's live parts.
func (s *server) overviewPage(w http.ResponseWriter, r *http.Request, cred string) {
	project := r.PathValue("project")
	v := overviewView{Project: project, Now: time.Now()}
	for _, x := range []struct {
		window string
		dst    *stats
	}{{"1h", &v.Hour}, {"24h", &v.Day}} {
		if err := s.get(r, cred, projectPath(project, "stats")+"?window="+x.window, x.dst); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.renderIn(w, http.StatusOK, "overview", project, v)
}
