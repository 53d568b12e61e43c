package ui

import (
	"net/http"
	"net/url"
	"strings"
)

// cookieName is the session cookie: the credential itself (the API token or
// an API key), which the API checks on every call, so that signing out, a
// revoked key or a changed token ends the session at the next request.
const cookieName = "hookrelay_session"

// handler is a dashboard handler; cred is the signed-in credential, empty
// when the API is unprotected.
type handler func(w http.ResponseWriter, r *http.Request, cred string)

// signedIn runs h with the session's credential, or sends the browser to
// the sign-in page (a JSON 401 on the proxy) when the API is protected and
// there is none.
func (s *server) signedIn(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.Protected {
			h(w, r, "")
			return
		}
		c, err := r.Cookie(cookieName)
		if err != nil || c.Value == "" {
			s.signInAgain(w, r)
			return
		}
		h(w, r, c.Value)
	})
}

// signInAgain forgets the session and asks for a credential: a redirect to
// the sign-in page, or a JSON 401 for the page's scripts.
func (s *server) signInAgain(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, sessionCookie(r, "", -1))
	if strings.HasPrefix(r.URL.Path, "/ui/api/") {
		writeProblem(w, http.StatusUnauthorized, "unauthorized", "sign in again: the session is missing or no longer valid")
		return
	}
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// sessionCookie is the session cookie holding value; maxAge -1 deletes it.
// It lives as long as the browser session, is never readable by scripts,
// never sent cross-site, and only over TLS when the page came over TLS.
func sessionCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: cookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	}
}

type loginView struct {
	Protected bool
	Error     string
}

func (s *server) loginPage(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Protected {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login", loginView{Protected: true})
}

// login checks the credential against the API (GET /api/projects: an admin
// credential lists the projects, a project key is refused with a 403 but is
// valid) and keeps it in the session cookie.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Protected {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	cred := strings.TrimSpace(r.PostFormValue("token"))
	status := http.StatusUnauthorized
	if cred != "" {
		status = s.call(r, cred, http.MethodGet, "/api/projects", nil).status
	}
	if status != http.StatusOK && status != http.StatusForbidden {
		s.render(w, http.StatusUnauthorized, "login", loginView{Protected: true,
			Error: "This token or API key is not valid."})
		return
	}
	http.SetCookie(w, sessionCookie(r, cred, 0))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, sessionCookie(r, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// sameOrigin refuses (403) every request that may change something (any
// method but GET and HEAD) unless the browser says it comes from the
// dashboard's own origin: Sec-Fetch-Site "same-origin", or, from a browser
// that does not send it, an Origin whose host is the request's. A request
// with neither is refused too: every browser sends one of them on a POST.
func sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || fromSameOrigin(r) {
			next.ServeHTTP(w, r)
			return
		}
		writeProblem(w, http.StatusForbidden, "cross_origin",
			"this request does not come from the dashboard's own page (Sec-Fetch-Site or Origin), so it is refused")
	})
}

func fromSameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
