package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// codeForbidden is the code of a 403: a project key on a route that is not
// under its project (the key routes, /metrics).
const codeForbidden = "forbidden"

// caller is who a request authenticated as: the global token or an admin key
// (admin), or a project key, which reaches only its own project's routes.
type caller struct {
	admin   bool
	project uuid.UUID
}

// authenticator checks a request's bearer credential: the global token,
// compared in constant time, or an unrevoked key, looked up by its SHA-256 in
// hookrelay.api_keys on every request (no cache: a revocation takes effect at
// the next request).
type authenticator struct {
	token [sha256.Size]byte // SHA-256 of the global token
	db    queryRower
}

// authenticate returns the caller of r, or ok false when r carries neither
// the global token nor a valid key. An error means the key could not be
// looked up.
func (au authenticator) authenticate(ctx context.Context, r *http.Request) (c caller, ok bool, err error) {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return caller{}, false, nil
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], au.token[:]) == 1 {
		return caller{admin: true}, true, nil
	}
	if !strings.HasPrefix(token, keyPrefix) {
		return caller{}, false, nil // not a key: no database round trip
	}
	var project *uuid.UUID
	err = au.db.QueryRow(ctx, `SELECT project_id FROM hookrelay.api_keys
		WHERE key_hash = $1 AND revoked_at IS NULL`, sum[:]).Scan(&project)
	if errors.Is(err, pgx.ErrNoRows) {
		return caller{}, false, nil
	}
	if err != nil {
		return caller{}, false, fmt.Errorf("look up api key: %w", err)
	}
	if project == nil {
		return caller{admin: true}, true, nil
	}
	return caller{project: *project}, true, nil
}

// authorize reports whether a project key may reach r: only a path under
// /api/projects/{its project}/ passes. Another project's path is a 404 like
// an unknown project's webhook, so a key learns nothing about other projects;
// any other path (the key routes, /metrics) is a 403.
func (c caller) authorize(r *http.Request) *apiError {
	if c.admin {
		return nil
	}
	// The segment as ServeMux reads it: split the escaped path, then unescape,
	// so that "%2F" inside a segment cannot shift what counts as the project.
	seg := strings.SplitN(r.URL.EscapedPath(), "/", 5)
	if len(seg) < 4 || seg[0] != "" || seg[1] != "api" || seg[2] != "projects" {
		return &apiError{Status: http.StatusForbidden, Code: codeForbidden,
			Message: "Authorization: this key is bound to project " + c.project.String() + " and reaches only its routes"}
	}
	if raw, err := url.PathUnescape(seg[3]); err == nil {
		if id, err := uuid.Parse(raw); err == nil && id == c.project {
			return nil
		}
	}
	return notFound("project")
}

// checkAuth answers r itself and returns false unless r may go on: when a
// token is configured, r must carry it or a valid key (else 401), and a
// project key must stay inside its project (see caller.authorize). Without a
// token the API is open and keys are not checked.
func (a *app) checkAuth(w http.ResponseWriter, r *http.Request) bool {
	if a.cfg.Token == "" || openRoutes[r.URL.Path] {
		return true
	}
	c, ok, err := a.auth.authenticate(r.Context(), r)
	if err != nil {
		a.log.ErrorContext(r.Context(), "api authentication failed", "err", err)
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "Authorization: the key could not be checked, try again"})
		return false
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay"`)
		writeError(w, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized,
			Message: "Authorization: a valid bearer token is required"})
		return false
	}
	if e := c.authorize(r); e != nil {
		writeError(w, e)
		return false
	}
	return true
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// value. The scheme name is matched case-insensitively and may be followed by
// several spaces (RFC 9110 §11.4); the token is returned as it is, for an
// exact comparison. ok is false for any other scheme or an empty token.
func bearerToken(header string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(rest, " ")
	return token, token != ""
}
