package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxProxyBody bounds the body the page's scripts send through the proxy;
// the API refuses anything over 64 KiB itself.
const maxProxyBody = 1 << 20

// answer is the JSON API's answer to one in-process call.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// decode decodes a 2xx answer into out, or returns the API's error.
func (a answer) decode(out any) error {
	if a.status < 200 || a.status > 299 {
		return a.err()
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		return fmt.Errorf("decode the API's answer: %w", err)
	}
	return nil
}

// apiError is a non-2xx answer of the API, with its own message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func (a answer) err() *apiError {
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &body)
	return &apiError{Status: a.status, Code: body.Error.Code, Message: body.Error.Message}
}

// call runs one request through the JSON API's handler, in-process, as cred
// (the bearer token; none when empty), on behalf of r (its context and
// host). path is the API's path, with its query.
func (s *server) call(r *http.Request, cred, method, path string, body io.Reader) answer {
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return answer{status: http.StatusBadRequest, body: problem("bad_request", err.Error())}
	}
	req.Host = r.Host
	req.RemoteAddr = r.RemoteAddr
	req.RequestURI = req.URL.RequestURI()
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	rec := &recorder{header: http.Header{}}
	s.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return answer{status: rec.status, header: rec.header, body: rec.body.Bytes()}
}

// get decodes the API's answer to GET path into out.
func (s *server) get(r *http.Request, cred, path string, out any) error {
	return s.call(r, cred, http.MethodGet, path, nil).decode(out)
}

// proxy passes /ui/api/... to the API's /api/projects... routes as the
// signed-in caller: the page's scripts act through it, since they cannot
// read the HttpOnly session cookie. Other API routes (keys, metrics) are not
// reachable from the dashboard.
func (s *server) proxy(w http.ResponseWriter, r *http.Request, cred string) {
	path := strings.TrimPrefix(r.URL.Path, "/ui")
	if path != "/api/projects" && !strings.HasPrefix(path, "/api/projects/") {
		writeProblem(w, http.StatusNotFound, "not_found", "the dashboard reaches only /api/projects routes")
		return
	}
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	a := s.call(r, cred, r.Method, path, http.MaxBytesReader(w, r.Body, maxProxyBody))
	if a.status == http.StatusUnauthorized && s.cfg.Protected {
		s.signInAgain(w, r)
		return
	}
	if ct := a.header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// recorder keeps an in-process answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// problem is a JSON error body shaped like the API's.
func problem(code, message string) []byte {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": message}})
	return b
}

func writeProblem(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(problem(code, message))
}
