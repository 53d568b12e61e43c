// Package api serves hookrelay's JSON management API: webhooks of a project,
// their delivery history, replays and bulk recoveries, the example config-deploy endpoint that
// emits config.deployed in the deploying transaction, and the health and
// metrics endpoints.
//
// Every project-scoped route lives under /api/projects/{project_id}; a project
// only ever sees its own rows, and another project's webhook is a 404. API
// keys (/api/keys, admin only) are bound to one project or are admin keys; a
// project key reaches only its project's routes. Every
// error is a JSON object {"error": {"code": ..., "message": ...}} whose
// message names the field at fault, and a refused request changes nothing.
package api

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/jobs"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/ui"
)

// Defaults of the API's settings, as cmd/hookrelay's configuration applies
// them. The API applies none itself, because the zero values mean something
// else: a zero Config.SecretGrace ends a replaced secret at once and an empty
// Config.EventTypes allows only "*"; the address is the server's business.
const (
	// DefaultAddr is the default of HOOKRELAY_API_ADDR.
	DefaultAddr = ":8080"
	// DefaultSecretGrace is the default of HOOKRELAY_SECRET_GRACE.
	DefaultSecretGrace = 24 * time.Hour
)

// MaxHeaderBytes is the largest request line and header block the API
// accepts; a larger one is a JSON 431. The server must read more than this
// (httpserver's limit is 1 MiB), or net/http refuses first in plain text.
const MaxHeaderBytes = 64 << 10

// DefaultEventTypes returns the default of HOOKRELAY_EVENT_TYPES: the events
// of the example config domain and the test send. Each call returns a new
// slice.
func DefaultEventTypes() []string {
	return []string{"config.deployed", "config.committed", "config.archived", testEventType}
}

// Config is the API's configuration; cmd/hookrelay fills it from config.Config.
type Config struct {
	// Token, when set, is required as "Authorization: Bearer <token>" on every
	// route but /healthz, /readyz and /openapi.json (HOOKRELAY_API_TOKEN),
	// unless the request carries a valid API key instead. The token is the
	// admin key; when it is empty the API is open and keys are not checked.
	Token string
	// AllowPrivate lets webhook URLs and test sends point at loopback and
	// private addresses (HOOKRELAY_ALLOW_PRIVATE_NETWORKS). It overrides
	// Send.AllowPrivate.
	AllowPrivate bool
	// SecretGrace is how long the previous secret keeps signing after
	// regenerate-secret (HOOKRELAY_SECRET_GRACE).
	SecretGrace time.Duration
	// EventTypes are the event types a webhook may subscribe to besides "*"
	// (HOOKRELAY_EVENT_TYPES).
	EventTypes []string
	// Stream is the base of the Redis stream keys replays are put on
	// (HOOKRELAY_STREAM), Shards how many there are (HOOKRELAY_STREAM_SHARDS;
	// 0 means 1): a replay goes on its webhook's shard.
	Stream string
	Shards int
	// Group is the stream's consumer group (HOOKRELAY_GROUP), whose pending
	// entries the stats report; empty reports none.
	Group string
	// Send configures the sender of POST /webhooks/{id}/test, which signs and
	// sends exactly as the worker does.
	Send deliver.SendConfig
}

// app holds the API's dependencies; its methods are the route handlers.
type app struct {
	cfg      Config
	pool     *pgxpool.Pool
	rdb      redis.UniversalClient
	metrics  *metrics.Metrics
	log      *slog.Logger
	sender   *httpsend.Sender
	validate validator
	auth     authenticator
	jobs     deliver.JobInserter // inserts recovery jobs in the API's transactions
}

// projectPath is the prefix of every project-scoped route.
const projectPath = "/api/projects/{project_id}"

// New returns the API's handler: the routes under /api/projects/{project_id}
// (webhooks, their deliveries, /configs/deploy), /api/projects, /api/keys,
// the dashboard under /ui/ (package ui), /healthz,
// /readyz, /openapi.json (the API's OpenAPI 3.1 document) and /metrics (reg,
// when it can also be gathered, as a *prometheus.Registry can), behind the
// bearer-token and API-key check when cfg.Token is set. Requests are counted
// by route pattern and status. A nil reg means metrics off (no /metrics
// route) and a nil log logs nothing.
func New(cfg Config, pool *pgxpool.Pool, rdb redis.UniversalClient, reg prometheus.Registerer, log *slog.Logger) http.Handler {
	m := metrics.New(reg)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	send := cfg.Send
	send.AllowPrivate = cfg.AllowPrivate
	a := &app{
		cfg:      cfg,
		pool:     pool,
		rdb:      rdb,
		metrics:  m,
		log:      log,
		sender:   httpsend.New(send),
		validate: newValidator(cfg.AllowPrivate, cfg.EventTypes, send.HeaderPrefix),
		auth:     authenticator{token: sha256.Sum256([]byte(cfg.Token)), db: pool},
		jobs:     jobs.MustInserter(pool),
	}

	mux := http.NewServeMux()
	for pattern, h := range a.routes(reg) {
		mux.Handle(pattern, h)
	}
	h := a.middleware(mux)
	mux.Handle(uiPattern, ui.New(h, ui.Config{
		Protected: cfg.Token != "", HeaderPrefix: send.HeaderPrefix, UserAgent: send.UserAgent,
		StandardWebhooks: send.StandardWebhooks,
	}, log))
	return h
}

// uiPattern is where the dashboard (package ui) is mounted. It checks its
// own session cookie and calls the API's routes with it, so the API's token
// check does not run on it.
const uiPattern = "/ui/"

// routes are every route the API serves, by pattern: those under
// projectPath, the health checks, the OpenAPI document and, when reg can be
// gathered, /metrics. api/openapi.json describes each of them, as a test
// checks.
func (a *app) routes(reg prometheus.Registerer) map[string]http.Handler {
	project := map[string]handlerFunc{
		"GET /webhooks":                                      a.listWebhooks,
		"POST /webhooks":                                     a.createWebhook,
		"GET /webhooks/{id}":                                 a.getWebhook,
		"PATCH /webhooks/{id}":                               a.patchWebhook,
		"DELETE /webhooks/{id}":                              a.deleteWebhook,
		"POST /webhooks/{id}/regenerate-secret":              a.regenerateSecret,
		"POST /webhooks/{id}/test":                           a.testWebhook,
		"GET /webhooks/{id}/deliveries":                      a.listDeliveries,
		"GET /webhooks/{id}/deliveries/{delivery_id}":        a.getDelivery,
		"POST /webhooks/{id}/deliveries/{delivery_id}/retry": a.retryDelivery,
		"POST /webhooks/{id}/recover":                        a.recoverWebhook,
		"GET /webhooks/{id}/recoveries":                      a.listRecoveries,
		"GET /webhooks/{id}/recoveries/{recovery_id}":        a.getRecovery,
		"POST /configs/deploy":                               a.deployConfig,
		"GET /deliveries":                                    a.listProjectDeliveries,
		"GET /stats":                                         a.projectStats,
	}
	routes := map[string]http.Handler{
		"GET /healthz":      a.wrap(a.healthz),
		"GET /readyz":       a.wrap(a.readyz),
		"GET /openapi.json": a.wrap(a.openapi),
		"GET /api/projects": a.wrap(a.listProjects),
	}
	for route, h := range project {
		method, path, _ := strings.Cut(route, " ")
		routes[method+" "+projectPath+path] = a.wrap(h)
	}
	for route, h := range a.keyRoutes() {
		routes[route] = a.wrap(h)
	}
	if g, ok := metrics.Gatherer(reg); ok {
		routes["GET /metrics"] = promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	}
	return routes
}

// openRoutes need no token: orchestrators probe the health checks, and the
// API's contract is no secret.
var openRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/openapi.json": true}

// middleware counts requests by route and status, recovers panics as 500s,
// refuses header blocks over MaxHeaderBytes (a JSON 431), checks the token
// or key (checkAuth) and turns the mux's own 404 and 405 into JSON errors. A
// path that is not clean (empty, ".", ".." or doubled "/" segments) is an
// unknown route, a JSON 404: the mux would answer it with a 307 redirect to
// the clean path, which is no JSON error and would invite clients to send
// their request, body and token, twice.
func (a *app) middleware(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h, pattern := mux.Handler(r)
		clean := isCleanPath(r.URL.EscapedPath())
		if !clean {
			pattern = ""
		}
		route := pattern
		if route == "" {
			route = "unmatched"
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.ErrorContext(r.Context(), "api handler panicked", "route", route, "panic", p)
				if sw.status == 0 {
					writeError(sw, &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"})
				}
			}
			a.metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(sw.code())).Inc()
		}()
		if headerBytes(r) > MaxHeaderBytes {
			writeError(sw, &apiError{Status: http.StatusRequestHeaderFieldsTooLarge, Code: codeHeadersTooLarge,
				Message: fmt.Sprintf("headers: the request line and headers are larger than %d bytes", MaxHeaderBytes)})
			return
		}
		if pattern != uiPattern && !a.checkAuth(sw, r) {
			return
		}
		if !clean {
			writeError(sw, noRoute(r))
			return
		}
		if pattern == "" {
			unmatched(sw, r, h)
			return
		}
		mux.ServeHTTP(sw, r)
	})
}

// headerBytes is the size of r's request line and header block as sent
// (HTTP/1.1 framing: "Name: value\r\n" per field, Host included), the
// quantity http.Server.MaxHeaderBytes bounds.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// isCleanPath reports whether ServeMux serves the escaped path p as it is,
// without redirecting to a cleaned form: p is absolute and path.Clean leaves
// it alone but for one trailing slash.
func isCleanPath(p string) bool {
	c := path.Clean(p)
	return strings.HasPrefix(p, "/") && (p == c || c != "/" && p == c+"/")
}

// noRoute is the 404 of a request that no route matches.
func noRoute(r *http.Request) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "no route " + r.Method + " " + r.URL.Path}
}

// unmatched runs the mux's handler for a request no route matched (404 or
// 405) and rewrites its error as JSON; anything else the mux might answer
// (a redirect) is a 404 too.
func unmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: codeMethodNotAllowed,
			Message: r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	writeError(w, noRoute(r))
}

// headerRecorder keeps a handler's status and headers and drops its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return len(b), nil
}
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
