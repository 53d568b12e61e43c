package api

import (
	_ "embed"
	"net/http"
)

// openapiDocument is the OpenAPI 3.1 description of every route, its
// parameters, bodies, limits and errors. The API tests validate each request
// they make and each answer they get against it, so it cannot drift from the
// handlers.
//
//go:embed openapi.json
var openapiDocument []byte

// openapi serves openapiDocument, the API's contract, as it is embedded.
func (a *app) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapiDocument) // the client is gone if this fails
	return nil
}
