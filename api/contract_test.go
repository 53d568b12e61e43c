package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// contract is api/openapi.json, loaded and validated once, with a router
// that finds the operation of a request.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate openapi.json: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi.json: %w", err)
	}
	return &contract{doc: doc, router: router}, nil
})

// checkContract fails the test unless api/openapi.json describes the
// exchange: the answer always (its status must be listed for the operation,
// and its headers and body must match), and the request whenever the API
// accepted it (a 2xx), since the document must then accept it too. A
// request the API refused is not checked: tests send bad input on purpose,
// and the document cannot express every rule (known event types, SSRF).
//
// A request the document has no operation for must be answered with one of
// the errors of unknown routes: a 404 "no route", a 405 when the document
// has the path but not the method, or a 401 before either. Anything else,
// a route the API serves but the document lacks, fails.
func checkContract(t *testing.T, method, url string, header http.Header, body []byte, res response) {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	route, pathParams, err := c.router.FindRoute(req)
	if err != nil {
		c.checkUnrouted(t, req, err, res)
		return
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{
			// The server checks the token; tests of 401s check it works.
			AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
			RejectWhenRequestBodyNotSpecified: true,
			MultiError:                        true,
		},
	}
	if res.status/100 == 2 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("contract: %s %s was answered %d, but openapi.json refuses the request: %v", method, req.URL.Path, res.status, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.status,
		Header:                 res.header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(res.body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("contract: the answer %d to %s %s does not match openapi.json: %v\nbody: %s", res.status, method, req.URL.Path, err, res.body)
	}
}

// checkUnrouted checks the answer to a request the document has no
// operation for (findErr says whether it lacks the path or the method).
func (c *contract) checkUnrouted(t *testing.T, req *http.Request, findErr error, res response) {
	t.Helper()
	var code string
	switch {
	case res.status == http.StatusUnauthorized:
		code = "unauthorized"
	case errors.Is(findErr, routers.ErrMethodNotAllowed) && res.status == http.StatusMethodNotAllowed:
		code = "method_not_allowed"
	case errors.Is(findErr, routers.ErrPathNotFound) && res.status == http.StatusNotFound:
		code = "not_found"
	default:
		t.Errorf("contract: openapi.json has no operation %s %s (%v), but the API answered %d: %s",
			req.Method, req.URL.Path, findErr, res.status, res.body)
		return
	}
	var v any
	if err := json.Unmarshal(res.body, &v); err != nil {
		t.Errorf("contract: the answer to %s %s is not JSON: %v", req.Method, req.URL.Path, err)
		return
	}
	if err := c.doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("contract: the answer to %s %s is not an Error of openapi.json: %v", req.Method, req.URL.Path, err)
		return
	}
	e := v.(map[string]any)["error"].(map[string]any)
	if e["code"] != code || code == "not_found" && !strings.HasPrefix(e["message"].(string), "no route ") {
		t.Errorf("contract: %s %s is no route of openapi.json, but the API answered %d %s", req.Method, req.URL.Path, res.status, res.body)
	}
}
