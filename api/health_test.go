package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/httpserver"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

func TestAuth_TokenRequiredOnEveryRouteButHealthChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.Token = "s3cret-token" })
	for _, path := range []string{"/webhooks", "/metrics", "/api/projects/x/nowhere"} {
		e.do("GET", path, nil).wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")
		e.do("GET", path, nil, "Authorization", "Bearer wrong").wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")
		e.do("GET", path, nil, "Authorization", "s3cret-token").wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")
	}
	e.do("POST", "/webhooks", validWebhook("https://x.example", nil)).wantError(t, http.StatusUnauthorized, "unauthorized", "")
	if n := e.count(`SELECT count(*) FROM hookrelay.webhooks`); n != 0 {
		t.Fatalf("unauthorized create stored a webhook")
	}
	e.do("GET", "/webhooks", nil, "Authorization", "Bearer s3cret-token").want(t, http.StatusOK)
	e.do("GET", "/healthz", nil).want(t, http.StatusOK)
	e.do("GET", "/readyz", nil).want(t, http.StatusOK)
}

// RFC 9110 §11.1: the scheme name is case-insensitive; the token is not.
func TestAuth_BearerSchemeIsCaseInsensitiveAndTheTokenExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.Token = "s3cret-token" })
	for _, h := range []string{"Bearer s3cret-token", "bearer s3cret-token", "BEARER s3cret-token", "bEaReR   s3cret-token"} {
		e.do("GET", "/webhooks", nil, "Authorization", h).want(t, http.StatusOK)
	}
	for _, h := range []string{"Bearer S3CRET-TOKEN", "Bearer s3cret-token2", "Bearer s3cret-toke", "Bearers3cret-token",
		"Basic s3cret-token", "Bearer\ts3cret-token", "Bearer", "Bearer ", "bearer  s3cret token"} {
		e.do("GET", "/webhooks", nil, "Authorization", h).wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")
	}
}

func TestHealth_MetricsCountRequestsByRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.do("GET", "/webhooks", nil).want(t, http.StatusOK)
	e.do("GET", "/webhooks/nope", nil).want(t, http.StatusBadRequest)
	r := e.do("GET", "/metrics", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics answered %d", r.status)
	}
	for _, want := range []string{
		`hookrelay_api_requests_total{code="200",route="GET /api/projects/{project_id}/webhooks"} 1`,
		`hookrelay_api_requests_total{code="400",route="GET /api/projects/{project_id}/webhooks/{id}"} 1`,
		"hookrelay_events_emitted_total 0",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestHealth_UnknownRoutesAndMethodsAreJSONErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.do("GET", "/nothing-here", nil).wantError(t, http.StatusNotFound, "not_found", "no route")
	r := e.do("PUT", "/webhooks", "{}")
	r.wantError(t, http.StatusMethodNotAllowed, "method_not_allowed", "PUT")
	if !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Errorf("Allow header %q", r.header.Get("Allow"))
	}
}

// ServeMux redirects a path that needs cleaning (307, no JSON); the API
// answers it as an unknown route instead, and never redirects.
func TestHealth_UncleanPathsAreJSON404sNotRedirects(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.createWebhook("https://x.example/in", nil)
	noRedirect := *e.srv.Client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p := "/api/projects/" + e.project.String()
	for _, path := range []string{"/" + p + "/webhooks", p + "//webhooks", p + "/./webhooks", p + "/x/../webhooks",
		p + "/webhooks/", "//healthz", "/healthz/.", "/a/../healthz"} {
		for _, method := range []string{"GET", "POST", "DELETE"} {
			req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			response{status: resp.StatusCode, header: resp.Header, body: body}.wantError(t, http.StatusNotFound, "not_found", "no route")
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("%s %s: Location %q", method, path, loc)
			}
		}
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.webhooks`); n != 1 {
		t.Fatalf("%d webhooks after requests on unclean paths, want the 1 created", n)
	}
}

// A header block over the API's limit is a JSON 431 as the API is served
// (through httpserver), not net/http's plain-text one.
func TestHealth_OversizedHeadersAreAJSON431(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	rdb, _ := testredis.New(t)
	srv := httpserver.New("api", "127.0.0.1:0", api.New(api.Config{EventTypes: eventTypes}, db.Pool, rdb, nil, nil), nil)
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	get := func(path string, header http.Header) response {
		req, err := http.NewRequest("GET", "http://"+srv.Addr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		res := response{status: resp.StatusCode, header: resp.Header, body: body}
		checkContract(t, req.Method, req.URL.String(), req.Header, nil, res)
		return res
	}
	project := "/api/projects/" + uuid.NewString() + "/webhooks"
	big := http.Header{"X-Big": {strings.Repeat("a", 70<<10)}}
	get(project, big).wantError(t, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "headers:")
	get("/healthz", big).wantError(t, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "headers:")
	many := http.Header{}
	for i := range 2000 {
		many.Set(fmt.Sprintf("X-H%d", i), strings.Repeat("b", 30))
	}
	get(project, many).wantError(t, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "headers:")
	get(project, http.Header{"X-Fits": {strings.Repeat("a", 60<<10)}}).want(t, http.StatusOK)
	if api.MaxHeaderBytes >= httpserver.MaxHeaderBytes {
		t.Fatalf("api.MaxHeaderBytes %d must stay below httpserver.MaxHeaderBytes %d, or net/http answers first",
			api.MaxHeaderBytes, httpserver.MaxHeaderBytes)
	}
}

func TestHealth_ReadyzNamesRedisWhenItIsDown(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	redisSrv := testredis.StartServer(t)
	rdb := redisSrv.Client()
	srv := httpserver.New("api", "127.0.0.1:0", api.New(api.Config{EventTypes: eventTypes}, db.Pool, rdb, nil, nil), nil)
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		url := "http://" + srv.Addr() + path
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		checkContract(t, "GET", url, http.Header{}, nil, response{status: resp.StatusCode, header: resp.Header, body: b})
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz with everything up: %d %s", code, body)
	}
	redisSrv.Kill()
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "redis") || strings.Contains(body, "postgres") {
		t.Fatalf("readyz with Redis down: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz with Redis down: %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Fatalf("server still answers after Stop")
	}
}

// GET /openapi.json answers the embedded document, without a token.
func TestHealth_OpenAPIDocumentIsServedWithoutAToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.Token = "s3cret-token" })
	r := e.do("GET", "/openapi.json", nil)
	r.want(t, http.StatusOK)
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.body, want) {
		t.Errorf("GET /openapi.json is not api/openapi.json (%d bytes, want %d)", len(r.body), len(want))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}
