package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/google/uuid"
)

// Error codes of the JSON error object {"error": {"code": ..., "message": ...}}.
const (
	codeInvalidJSON      = "invalid_json"
	codeInvalidField     = "invalid_field"
	codeUnknownField     = "unknown_field"
	codeBodyTooLarge     = "body_too_large"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeUnauthorized     = "unauthorized"
	codeConflict         = "conflict"
	codeNotReplayable    = "not_replayable"
	codeUnavailable      = "unavailable"
	codeInternal         = "internal"
)

// maxBody is the largest request body accepted, in bytes.
const maxBody = 64 << 10

// apiError is an error that reaches the client as it is: an HTTP status, a
// stable code and a message that names the field at fault.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// invalid reports a bad value of field, which the message names first.
func invalid(field, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidField, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// notFound reports that what, in the caller's project, does not exist.
func notFound(what string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: what + " not found"}
}

// writeJSON writes v as the JSON response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails
}

// writeError writes e as {"error": e}.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

// handlerFunc is a handler that may fail. An *apiError goes to the client as
// it is; any other error is logged and becomes a 500 that says nothing more.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap turns h into an http.Handler that reports its errors as JSON.
func (a *app) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var ae *apiError
		if errors.As(err, &ae) {
			writeError(w, ae)
			return
		}
		a.log.ErrorContext(r.Context(), "api request failed", "method", r.Method, "route", r.Pattern, "err", err)
		writeError(w, &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"})
	})
}

// pathUUID parses the path value name as a UUID.
func pathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return uuid.Nil, invalid(name, "must be a UUID")
	}
	return id, nil
}

// decodeJSON reads the request body, at most maxBody bytes, into dst, which
// must be a pointer to a struct: unknown fields (names are case-sensitive),
// keys given twice, invalid UTF-8, trailing data and values of the wrong type
// are refused with an *apiError naming the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return decodeError(err)
	}
	if e := strictJSON(raw, dst); e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err)
		}
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Message: "body: must hold a single JSON object"}
	}
	return nil
}

// decodeError translates an encoding/json error into an *apiError.
func decodeError(err error) *apiError {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
		ae       *apiError
	)
	bad := func(format string, args ...any) *apiError {
		return &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case errors.As(err, &tooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
			Message: fmt.Sprintf("body: larger than %d bytes", maxBody)}
	case errors.Is(err, io.EOF):
		return bad("body: must not be empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("body: malformed JSON (unexpected end)")
	case errors.As(err, &syntax):
		return bad("body: malformed JSON at offset %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("body", "must be a JSON object")
		}
		return invalid(typ.Field, "must be %s", jsonKind(typ.Type))
	case errors.As(err, &ae):
		return ae
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &apiError{Status: http.StatusBadRequest, Code: codeUnknownField, Message: strings.Trim(name, `"`) + ": unknown field"}
	}
	return bad("body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names, for an error message, the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[uuid.UUID]() {
		return "a UUID string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number in range"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	}
	return "an object"
}

// codeHeadersTooLarge is the code of a 431: the request line and headers are
// larger than MaxHeaderBytes.
const codeHeadersTooLarge = "headers_too_large"
