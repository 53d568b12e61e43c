// Package ui serves hookrelay's delivery dashboard under /ui/: server-rendered
// HTML pages (html/template) and a little JavaScript, all embedded in the
// binary, that show a project's webhooks and their health, every delivery
// with its attempts, and replay, recover, test and edit them.
//
// The dashboard holds no data access of its own: every page and action is a
// call of the JSON API's own handler, in-process, with the signed-in
// credential as its bearer token. So it sees exactly what the API shows: a
// project key reaches only its project, a secret only in the answer that
// creates it, a custom header value never.
//
// When the API is protected (HOOKRELAY_API_TOKEN), the dashboard asks for the
// token or an API key once and keeps it in an HttpOnly, SameSite=Strict
// cookie (Secure over TLS). Every request that may change something (any
// method but GET and HEAD) must come from the dashboard's own origin, as the
// browser's Sec-Fetch-Site or Origin header says; a GET never changes
// anything.
package ui

import (
	"cmp"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/hookrelay/hookrelay/internal/httpsend"
)

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

//go:embed templates static
var assets embed.FS

// Config is the dashboard's configuration.
type Config struct {
	// Protected says that the API requires a token (HOOKRELAY_API_TOKEN is
	// set): the dashboard then asks for a credential before anything else.
	// Unprotected, it says on every page that anyone can use it.
	Protected bool
	// HeaderPrefix, UserAgent and StandardWebhooks are the sender's, to show
	// the headers a delivery was sent with (httpsend's defaults apply).
	HeaderPrefix     string
	UserAgent        string
	StandardWebhooks bool
}

// server holds the dashboard's dependencies; its methods are the handlers.
type server struct {
	cfg   Config
	api   http.Handler
	log   *slog.Logger
	pages pages
}

// New returns the dashboard's handler, to be mounted at Prefix on the same
// server as api, the JSON API's handler, which it calls for every page and
// action. A nil log logs nothing.
func New(api http.Handler, cfg Config, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.HeaderPrefix = cmp.Or(cfg.HeaderPrefix, httpsend.DefaultHeaderPrefix)
	cfg.UserAgent = cmp.Or(cfg.UserAgent, httpsend.DefaultUserAgent)
	s := &server{cfg: cfg, api: api, log: log, pages: mustParsePages()}

	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/login", s.loginPage)
	mux.HandleFunc("POST /ui/login", s.login)
	mux.HandleFunc("POST /ui/logout", s.logout)
	mux.Handle("GET /ui/{$}", s.signedIn(s.projectsPage))
	mux.Handle("GET /ui/project", s.signedIn(s.pickProject))
	mux.Handle("GET /ui/p/{project}/{$}", s.signedIn(s.webhooksPage))
	mux.Handle("GET /ui/p/{project}/overview", s.signedIn(s.overviewPage))
	mux.Handle("GET /ui/p/{project}/deliveries", s.signedIn(s.projectDeliveriesPage))
	mux.Handle("GET /ui/p/{project}/webhooks/{id}", s.signedIn(s.webhookPage))
	mux.Handle("GET /ui/p/{project}/webhooks/{id}/deliveries/{delivery}", s.signedIn(s.deliveryPage))
	mux.Handle("/ui/api/", s.signedIn(s.proxy))
	return secure(sameOrigin(mux))
}

// secure sets the headers every answer carries: no framing, no sniffing, no
// referrer, no cache, and a content security policy that runs only the
// dashboard's own script.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
