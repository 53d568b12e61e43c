package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
)

// testEventType is the type of the event POST /webhooks/{id}/test sends.
const testEventType = "webhook.test"

// testResult is the response of POST /webhooks/{id}/test.
type testResult struct {
	Success    bool    `json:"success"`
	StatusCode *int    `json:"status_code"` // null when no response came back
	DurationMS float64 `json:"duration_ms"`
	Error      *string `json:"error"` // null on a 2xx response
}

// testWebhook signs and sends a webhook.test event to the webhook now, with a
// fresh event and delivery id, exactly as the worker would (same headers,
// envelope and signatures, including previous secrets still in their grace
// periods). It writes nothing: no outbox row, no delivery, no attempt. An
// unreachable or failing receiver is a 200 with success false.
func (a *app) testWebhook(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	var secrets []string
	var url string
	var headers map[string]string
	err = a.pool.QueryRow(r.Context(), `SELECT url, headers,
		secret || hookrelay.valid_previous_secrets(previous_secrets)
		FROM hookrelay.webhooks WHERE project_id = $1 AND id = $2`, project, id).Scan(&url, &headers, &secrets)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("webhook")
	}
	if err != nil {
		return fmt.Errorf("load webhook %s for test: %w", id, err)
	}
	data, err := json.Marshal(map[string]string{
		"webhook_id": id.String(),
		"message":    "This is a test event sent by hookrelay.",
	})
	if err != nil {
		return fmt.Errorf("encode test event data: %w", err)
	}
	body, err := deliver.Envelope{
		ID:         uuid.New(),
		Type:       testEventType,
		Timestamp:  time.Now(),
		APIVersion: deliver.APIVersion,
		ProjectID:  project,
		Data:       data,
	}.Encode()
	if err != nil {
		return fmt.Errorf("test webhook %s: %w", id, err)
	}
	res := a.sender.Send(r.Context(), httpsend.Request{
		URL:        url,
		DeliveryID: uuid.New(),
		EventType:  testEventType,
		Body:       body,
		Secrets:    secrets,
		Headers:    headers,
	})
	out := testResult{Success: res.Err == nil && res.Success(), DurationMS: float64(res.Duration.Microseconds()) / 1000}
	if res.StatusCode != 0 {
		out.StatusCode = &res.StatusCode
	}
	switch {
	case res.Err != nil:
		msg := res.ErrorClass + ": " + res.Err.Error()
		out.Error = &msg
	case !out.Success:
		msg := fmt.Sprintf("receiver answered %d", res.StatusCode)
		out.Error = &msg
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
