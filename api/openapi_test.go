package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"
)

// loadDocument loads the embedded document and checks that it is a valid
// OpenAPI document, its examples included.
func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapiDocument)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// The routes New registers and the operations of openapi.json are the same
// set: a route added without its description, or a description left behind
// by a removed route, fails here.
func TestOpenAPI_DocumentsEveryRouteNewRegistersAndNoOther(t *testing.T) {
	doc := loadDocument(t)
	var registered, documented []string
	for pattern := range (&app{}).routes(prometheus.NewRegistry()) {
		registered = append(registered, pattern)
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(registered)
	slices.Sort(documented)
	if !slices.Equal(registered, documented) {
		t.Errorf("routes registered by New:\n\t%s\noperations of openapi.json:\n\t%s",
			strings.Join(registered, "\n\t"), strings.Join(documented, "\n\t"))
	}
	if v := doc.OpenAPI; v != "3.1.0" {
		t.Errorf("openapi.json is OpenAPI %s, want 3.1.0", v)
	}
}

// Every operation that can fail names its errors: a refused token (unless
// the route is open), oversized headers and an internal error; every body
// its size limit.
func TestOpenAPI_EveryOperationDocumentsItsErrors(t *testing.T) {
	doc := loadDocument(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			want := []int{http.StatusRequestHeaderFieldsTooLarge, http.StatusInternalServerError}
			if !openRoutes[path] {
				want = append(want, http.StatusUnauthorized)
			}
			if op.RequestBody != nil {
				want = append(want, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
			}
			if strings.Contains(path, "{") {
				want = append(want, http.StatusBadRequest)
			}
			for _, status := range want {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s %s does not document its %d", method, path, status)
				}
			}
			if openRoutes[path] != (op.Security != nil && len(*op.Security) == 0) {
				t.Errorf("%s %s: its security in openapi.json disagrees with openRoutes", method, path)
			}
		}
	}
}
