package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// eventTypes is the subscription list the tests configure.
var eventTypes = []string{"config.deployed", "config.committed", "webhook.test"}

// env is one test's API: a real server on loopback over a private database
// and private stream keys.
type env struct {
	t       *testing.T
	pool    *pgxpool.Pool
	rdb     *redis.Client
	keys    testredis.Keys
	metrics *metrics.Metrics
	srv     *httptest.Server
	cfg     api.Config
	project uuid.UUID
}

// newEnv starts the API; mod may change the configuration first.
func newEnv(t *testing.T, mod func(*api.Config)) *env {
	t.Helper()
	db := testdb.New(t)
	rdb, keys := testredis.New(t)
	cfg := api.Config{
		AllowPrivate: true,
		SecretGrace:  time.Hour,
		EventTypes:   eventTypes,
		Stream:       keys.Stream,
	}
	cfg.Send.Timeout = 5 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	srv := httptest.NewServer(api.New(cfg, db.Pool, rdb, reg, nil))
	t.Cleanup(srv.Close)
	return &env{t: t, pool: db.Pool, rdb: rdb, keys: keys, metrics: m, srv: srv, cfg: cfg, project: uuid.New()}
}

// response is an API answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; path is absolute when it starts with "/api" or is a
// health route, else relative to this test's project. body may be a string
// (sent as is) or a value (sent as JSON). The request and its answer must
// match api/openapi.json, as checkContract says.
func (e *env) do(method, path string, body any, header ...string) response {
	e.t.Helper()
	route, _, _ := strings.Cut(path, "?") // a query (a cursor) may end in "z" too
	if !strings.HasPrefix(route, "/api") && !strings.HasSuffix(route, "z") && route != "/metrics" && route != "/openapi.json" {
		path = "/api/projects/" + e.project.String() + path
	}
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	res := response{status: resp.StatusCode, header: resp.Header, body: got}
	checkContract(e.t, method, e.srv.URL+path, req.Header, raw, res)
	return res
}

// want fails the test unless the status is status; it returns the body decoded.
func (r response) want(t *testing.T, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var m map[string]any
	if len(r.body) > 0 {
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
		}
	}
	return m
}

// wantError checks a JSON error response: status, code and that the message
// starts with prefix (the field name).
func (r response) wantError(t *testing.T, status int, code, prefix string) {
	t.Helper()
	m := r.want(t, status)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	if e["code"] != code {
		t.Errorf("code %v, want %s (%s)", e["code"], code, r.body)
	}
	if msg, _ := e["message"].(string); !strings.HasPrefix(msg, prefix) {
		t.Errorf("message %q does not start with %q", msg, prefix)
	}
}

// validWebhook is a create body that passes validation; mod may change it.
func validWebhook(url string, mod func(map[string]any)) map[string]any {
	b := map[string]any{
		"name":        "Deploy notifications",
		"url":         url,
		"event_types": []string{"config.deployed"},
		"headers":     map[string]string{"Authorization": "Bearer receiver-token"},
		"description": "tells the receiver about deploys",
	}
	if mod != nil {
		mod(b)
	}
	return b
}

// createWebhook creates a webhook through the API and returns the response body.
func (e *env) createWebhook(url string, mod func(map[string]any)) map[string]any {
	e.t.Helper()
	return e.do("POST", "/webhooks", validWebhook(url, mod)).want(e.t, http.StatusCreated)
}

// count returns the number of rows a query counts.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// exec runs a statement.
func (e *env) exec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

// insertDelivery writes a delivery row directly, as the relay would.
func (e *env) insertDelivery(webhookID string, createdAt time.Time, status string) uuid.UUID {
	e.t.Helper()
	id := uuid.New()
	e.exec(`INSERT INTO hookrelay.deliveries
		(id, event_id, webhook_id, project_id, event_type, payload, event_created_at, status, attempts, max_attempts, created_at)
		VALUES ($1, $2, $3, $4, 'config.deployed', '{"id": "x", "data": {}}', $5, $6, 1, 6, $5)`,
		id, uuid.New(), webhookID, e.project, createdAt, status)
	return id
}
