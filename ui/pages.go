package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"time"
)

// The API's resources, as far as the pages show them (see api/openapi.json).
type (
	webhook struct {
		ID              string            `json:"id"`
		Name            string            `json:"name"`
		URL             string            `json:"url"`
		EventTypes      []string          `json:"event_types"`
		ApplicationID   *string           `json:"application_id"`
		EnvironmentName *string           `json:"environment_name"`
		Headers         map[string]string `json:"headers"` // values are the API's mask
		IsActive        bool              `json:"is_active"`
		DisabledReason  *string           `json:"disabled_reason"`
		DisabledAt      *time.Time        `json:"disabled_at"`
		RateLimit       *int              `json:"rate_limit"`
		MaxInFlight     *int              `json:"max_in_flight"`
		Health          health            `json:"health"`
		Description     string            `json:"description"`
		CreatedAt       time.Time         `json:"created_at"`
	}
	health struct {
		Circuit             string     `json:"circuit"`
		ConsecutiveFailures int        `json:"consecutive_failures"`
		FailingSince        *time.Time `json:"failing_since"`
		LastSuccessAt       *time.Time `json:"last_success_at"`
		LastFailureAt       *time.Time `json:"last_failure_at"`
		RetryAt             *time.Time `json:"retry_at"`
		PausedUntil         *time.Time `json:"paused_until"`
	}
	delivery struct {
		ID                 string          `json:"id"`
		WebhookID          string          `json:"webhook_id"`
		EventID            string          `json:"event_id"`
		EventType          string          `json:"event_type"`
		Status             string          `json:"status"`
		Attempts           int             `json:"attempts"`
		MaxAttempts        int             `json:"max_attempts"`
		CreatedAt          time.Time       `json:"created_at"`
		DeliveredAt        *time.Time      `json:"delivered_at"`
		NextAttemptAt      *time.Time      `json:"next_attempt_at"`
		LastResponseStatus *int            `json:"last_response_status"`
		LastError          *string         `json:"last_error"`
		Payload            json.RawMessage `json:"payload"`
		AttemptLog         []attempt       `json:"attempt_log"`
	}
	attempt struct {
		Attempt      int       `json:"attempt"`
		StartedAt    time.Time `json:"started_at"`
		DurationMS   float64   `json:"duration_ms"`
		StatusCode   *int      `json:"status_code"`
		Error        *string   `json:"error"`
		ResponseBody *string   `json:"response_body"`
	}
	deliveryPage struct {
		Deliveries []delivery `json:"deliveries"`
		NextCursor *string    `json:"next_cursor"`
	}
)

// projectPath is the API path of a project's route.
func projectPath(project string, parts ...string) string {
	p := "/api/projects/" + url.PathEscape(project)
	for _, part := range parts {
		p += "/" + url.PathEscape(part)
	}
	return p
}

type projectsView struct {
	Projects []struct {
		ID       string `json:"id"`
		Webhooks int    `json:"webhooks"`
	} `json:"projects"`
	Scoped bool // the credential is a project key: it cannot list projects
}

// projectsPage is the project picker: the projects that have webhooks, or,
// for a project key that cannot list them, a field for its project id.
func (s *server) projectsPage(w http.ResponseWriter, r *http.Request, cred string) {
	var v projectsView
	err := s.get(r, cred, "/api/projects", &v)
	var e *apiError
	if errors.As(err, &e) && e.Status == http.StatusForbidden {
		v.Scoped, err = true, nil
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "projects", v)
}

// pickProject sends the browser to the project typed in the picker.
func (s *server) pickProject(w http.ResponseWriter, r *http.Request, _ string) {
	http.Redirect(w, r, "/ui/p/"+url.PathEscape(r.URL.Query().Get("project"))+"/", http.StatusSeeOther)
}

// webhookRow is a webhook with its newest delivery, for the health list.
type webhookRow struct {
	webhook
	Last *delivery
}

func (s *server) webhooksPage(w http.ResponseWriter, r *http.Request, cred string) {
	project := r.PathValue("project")
	var list struct {
		Webhooks []webhook `json:"webhooks"`
	}
	if err := s.get(r, cred, projectPath(project, "webhooks"), &list); err != nil {
		s.fail(w, r, err)
		return
	}
	rows := make([]webhookRow, len(list.Webhooks))
	for i, wh := range list.Webhooks {
		rows[i].webhook = wh
		var page deliveryPage
		if err := s.get(r, cred, projectPath(project, "webhooks", wh.ID, "deliveries")+"?limit=1", &page); err != nil {
			s.fail(w, r, err)
			return
		}
		if len(page.Deliveries) > 0 {
			rows[i].Last = &page.Deliveries[0]
		}
	}
	var day stats
	if err := s.get(r, cred, projectPath(project, "stats")+"?window=24h", &day); err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderIn(w, http.StatusOK, "webhooks", project, struct {
		Project  string
		Webhooks []webhookRow
		Ratios   map[string]*float64 // success over 24 h, by webhook
		Create   formView
	}{project, rows, day.ratios(), formView{Method: http.MethodPost, URL: "/ui" + projectPath(project, "webhooks"),
		Then: "created", Label: "Create webhook"}})
}

type webhookView struct {
	Project    string
	Webhook    webhook
	Headers    []string // custom header names; their values are never shown
	List       deliveryList
	Edit       formView
	Recoveries []recovery
}

// formView is the webhook form: create (an empty Webhook) or edit.
type formView struct {
	Method, URL, Then, Label string
	Webhook                  webhook
}

// recovery is a bulk recovery and its progress.
type recovery struct {
	ID        string     `json:"id"`
	Since     time.Time  `json:"since"`
	Until     time.Time  `json:"until"`
	State     string     `json:"state"`
	Total     int        `json:"total"`
	Done      int        `json:"done"`
	CreatedAt time.Time  `json:"created_at"`
	Finished  *time.Time `json:"finished_at"`
}

func (s *server) webhookPage(w http.ResponseWriter, r *http.Request, cred string) {
	project, id := r.PathValue("project"), r.PathValue("id")
	v := webhookView{Project: project, List: deliveryList{Project: project, Webhook: id, Filter: filterOf(r)}}
	if err := s.get(r, cred, projectPath(project, "webhooks", id), &v.Webhook); err != nil {
		s.fail(w, r, err)
		return
	}
	v.Headers = headerNames(v.Webhook.Headers)
	v.Edit = formView{Method: http.MethodPatch, URL: "/ui" + projectPath(project, "webhooks", id),
		Then: "reload", Label: "Save", Webhook: v.Webhook}
	if err := s.loadDeliveries(r, cred, projectPath(project, "webhooks", id, "deliveries"), &v.List); err != nil {
		s.fail(w, r, err)
		return
	}
	var recs struct {
		Recoveries []recovery `json:"recoveries"`
	}
	if err := s.get(r, cred, projectPath(project, "webhooks", id, "recoveries"), &recs); err != nil {
		s.fail(w, r, err)
		return
	}
	v.Recoveries = recs.Recoveries
	s.renderIn(w, http.StatusOK, "webhook", project, v)
}

// sentHeader is one header of a delivery as sent; Value is empty for a
// custom header, whose value is never shown.
type sentHeader struct{ Name, Value string }

type deliveryView struct {
	Project  string
	Webhook  webhook
	Delivery delivery
	Headers  []sentHeader
}

func (s *server) deliveryPage(w http.ResponseWriter, r *http.Request, cred string) {
	project, id, did := r.PathValue("project"), r.PathValue("id"), r.PathValue("delivery")
	v := deliveryView{Project: project}
	if err := s.get(r, cred, projectPath(project, "webhooks", id), &v.Webhook); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.get(r, cred, projectPath(project, "webhooks", id, "deliveries", did), &v.Delivery); err != nil {
		s.fail(w, r, err)
		return
	}
	v.Headers = s.sentHeaders(v.Webhook, v.Delivery)
	s.renderIn(w, http.StatusOK, "delivery", project, v)
}

// sentHeaders are the headers every attempt of d carried, as the sender sets
// them: the custom headers (names only) and hookrelay's own. The signature
// is described, not recomputed: that would take the secret.
func (s *server) sentHeaders(wh webhook, d delivery) []sentHeader {
	var h []sentHeader
	for _, name := range headerNames(wh.Headers) {
		h = append(h, sentHeader{Name: name})
	}
	p := s.cfg.HeaderPrefix
	h = append(h,
		sentHeader{"Content-Type", "application/json"},
		sentHeader{"User-Agent", s.cfg.UserAgent},
		sentHeader{p + "-Delivery", d.ID},
		sentHeader{p + "-Event", d.EventType},
		sentHeader{p + "-Signature", "t=<attempt time, unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" with each valid secret>"},
	)
	if s.cfg.StandardWebhooks {
		h = append(h,
			sentHeader{"Webhook-Id", d.ID},
			sentHeader{"Webhook-Timestamp", "<attempt time, unix seconds>"},
			sentHeader{"Webhook-Signature", "v1,<base64 HMAC-SHA256 of \"<id>.<t>.<body>\">"},
		)
	}
	return h
}

// headerNames are the names of h, sorted.
func headerNames(h map[string]string) []string {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
