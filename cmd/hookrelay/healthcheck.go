package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/api"
)

// defaultHealthURL is the API's health endpoint at its default address.
const defaultHealthURL = "http://127.0.0.1" + api.DefaultAddr + "/healthz"

// runHealthcheck GETs a URL and succeeds only on 200: the container image
// has no shell or curl, so its health checks call the binary itself.
func runHealthcheck(ctx context.Context, args []string) error {
	url := defaultHealthURL
	if len(args) > 0 {
		url = args[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	return nil
}
