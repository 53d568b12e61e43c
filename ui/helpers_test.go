package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// Values the pages must never show.
const (
	token       = "ui-test-token-3f9a"
	headerValue = "Bearer receiver-credential-77c1"
)

// env is one test's API server (dashboard included) over a private database.
type env struct {
	t       *testing.T
	pool    *pgxpool.Pool
	url     string // the API server's base URL
	project uuid.UUID
	token   string
}

// newEnv starts the API with the token tok ("" for an open API).
func newEnv(t *testing.T, tok string) *env {
	t.Helper()
	db := testdb.New(t)
	rdb, keys := testredis.New(t)
	cfg := api.Config{
		Token: tok, AllowPrivate: true, SecretGrace: time.Hour,
		EventTypes: []string{"config.deployed", "webhook.test"}, Stream: keys.Stream,
	}
	srv := httptest.NewServer(api.New(cfg, db.Pool, rdb, nil, nil))
	t.Cleanup(srv.Close)
	return &env{t: t, pool: db.Pool, url: srv.URL, project: uuid.New(), token: tok}
}

// jsonAPI calls the JSON API with the bearer token and decodes a 2xx answer.
func (e *env) jsonAPI(method, path string, body any) map[string]any {
	e.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// createWebhook creates a webhook of project with a custom header and
// returns its id and secret.
func (e *env) createWebhook(project uuid.UUID, name string) (id, secret string) {
	e.t.Helper()
	return e.createWebhookTo(project, "http://127.0.0.1:9/hook", name)
}

// createWebhookTo creates a webhook of project to target.
func (e *env) createWebhookTo(project uuid.UUID, target, name string) (id, secret string) {
	e.t.Helper()
	m := e.jsonAPI("POST", "/api/projects/"+project.String()+"/webhooks", map[string]any{
		"name": name, "url": target, "event_types": []string{"*"},
		"headers": map[string]string{"Authorization": headerValue},
	})
	return m["id"].(string), m["secret"].(string)
}

// insertDelivery writes a failed delivery of webhook with one attempt, as the
// relay and worker would, and returns its id.
func (e *env) insertDelivery(project uuid.UUID, webhook string) string {
	e.t.Helper()
	id := uuid.New()
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `INSERT INTO hookrelay.deliveries
		(id, event_id, webhook_id, project_id, event_type, payload, event_created_at, status, attempts, max_attempts, created_at, last_response_status, last_error)
		VALUES ($1, $2, $3, $4, 'config.deployed', '{"id":"x","data":{"environment":"production"}}', now(), 'failed', 1, 1, now(), 503, 'http_status: 503')`,
		id, uuid.New(), webhook, project)
	if err == nil {
		_, err = e.pool.Exec(ctx, `INSERT INTO hookrelay.delivery_attempts
			(delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
			VALUES ($1, 1, now(), 12.5, 503, 'http_status: 503', 'receiver is down for maintenance')`, id)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return id.String()
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, to see them.
type browser struct {
	t    *testing.T
	e    *env
	http *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

// do sends a request with the headers given as name, value pairs.
func (b *browser) do(method, path string, body io.Reader, header ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(method, b.e.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

func (b *browser) get(path string) page { return b.do("GET", path, nil) }

// signIn posts the sign-in form as the dashboard's page would.
func (b *browser) signIn(cred string) page {
	b.t.Helper()
	return b.do("POST", "/ui/login", strings.NewReader(url.Values{"token": {cred}}.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", b.e.url, "Sec-Fetch-Site", "same-origin")
}

// want fails unless the page has status and contains every string of has.
func (p page) want(t *testing.T, status int, has ...string) page {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d: %.600s", p.status, status, p.body)
	}
	for _, s := range has {
		if !strings.Contains(p.body, s) {
			t.Errorf("page lacks %q: %.2000s", s, p.body)
		}
	}
	return p
}
