package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/deliver"
)

// maxRecoveryList is how many recoveries the list shows, the newest.
const maxRecoveryList = 100

// recovery is a bulk recovery as the API shows it.
type recovery struct {
	ID         uuid.UUID  `json:"id"`
	WebhookID  uuid.UUID  `json:"webhook_id"`
	Since      time.Time  `json:"since"`
	Until      time.Time  `json:"until"`
	Statuses   []string   `json:"statuses"`
	State      string     `json:"state"`
	Total      int        `json:"total"`
	Done       int        `json:"done"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

func showRecovery(r deliver.Recovery) recovery {
	return recovery{ID: r.ID, WebhookID: r.WebhookID, Since: r.Since, Until: r.Until, Statuses: r.Statuses,
		State: r.State, Total: r.Total, Done: r.Done, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt}
}

// recoverInput is the body of POST /webhooks/{id}/recover. Times are
// strings so that a bad one is refused naming its field.
type recoverInput struct {
	Since  *string `json:"since"`
	Until  *string `json:"until"`
	Status *string `json:"status"`
	// Enable re-enables a disabled webhook (as PATCH is_active true does:
	// its reason cleared, its health reset) in the recovery's transaction.
	Enable *bool `json:"enable"`
}

// request validates in; every refusal names its field.
func (in recoverInput) request(project, webhookID uuid.UUID) (deliver.RecoveryRequest, error) {
	req := deliver.RecoveryRequest{ProjectID: project, WebhookID: webhookID}
	if in.Since == nil {
		return req, invalid("since", "is required: an RFC 3339 time, the start of the window")
	}
	var err error
	if req.Since, err = parseTime("since", *in.Since); err != nil {
		return req, err
	}
	if in.Until != nil {
		until, err := parseTime("until", *in.Until)
		if err != nil {
			return req, err
		}
		if !until.After(req.Since) {
			return req, invalid("until", "must be after since")
		}
		req.Until = &until
	}
	if in.Status != nil {
		s := *in.Status
		if s != "failed" && s != "skipped" {
			return req, invalid("status", "must be failed or skipped (omit it for both)")
		}
		req.Statuses = []string{s}
	}
	return req, nil
}

func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, invalid(field, "must be an RFC 3339 time, like 2026-01-02T15:04:05Z")
	}
	return t, nil
}

// recoverWebhook starts a bulk recovery: every failed or skipped delivery of
// the webhook created in [since, until) gets one more attempt, worked by a
// River job inserted in the same transaction. It answers 202 with the new
// recovery, 200 with the first one when the same request was made before
// (nothing is sent twice), 404 when the project has no such webhook, 409
// when the webhook is disabled, and 400 naming the field at fault.
func (a *app) recoverWebhook(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	var in recoverInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	req, err := in.request(project, id)
	if err != nil {
		return err
	}
	var rec deliver.Recovery
	var created bool
	err = pgx.BeginFunc(r.Context(), a.pool, func(tx pgx.Tx) error {
		if in.Enable != nil && *in.Enable {
			if err := enableWebhook(r.Context(), tx, project, id); err != nil {
				return err
			}
		}
		rec, created, err = deliver.StartRecovery(r.Context(), tx, a.jobs, req)
		return err
	})
	switch {
	case errors.Is(err, deliver.ErrWebhookNotFound):
		return notFound("webhook")
	case errors.Is(err, deliver.ErrWebhookInactive):
		return &apiError{Status: http.StatusConflict, Code: codeConflict,
			Message: "is_active: the webhook is disabled; enable it first (PATCH is_active true), or send enable: true"}
	case errors.Is(err, deliver.ErrEmptyWindow):
		return invalid("since", "must be before until and before the time of the request")
	case err != nil:
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
		a.log.InfoContext(r.Context(), "recovery started", "project_id", project, "webhook_id", id,
			"recovery_id", rec.ID, "total", rec.Total)
	}
	writeJSON(w, status, showRecovery(rec))
	return nil
}

// enableWebhook re-enables a disabled webhook of project in tx, locking its
// health row before the webhook (the worker's order); an active one is left
// as it is.
func enableWebhook(ctx context.Context, tx pgx.Tx, project, id uuid.UUID) error {
	if _, err := tx.Exec(ctx, resetHealthSQL, project, id); err != nil {
		return fmt.Errorf("reset health of webhook %s: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE hookrelay.webhooks
		SET is_active = true, disabled_reason = NULL, disabled_at = NULL, updated_at = now()
		WHERE project_id = $1 AND id = $2 AND NOT is_active`, project, id); err != nil {
		return fmt.Errorf("enable webhook %s: %w", id, err)
	}
	return nil
}

// listRecoveries returns the webhook's most recent recoveries, newest first.
func (a *app) listRecoveries(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	if _, err := loadWebhook(r.Context(), a.pool, project, id, false); err != nil {
		return err
	}
	list, err := deliver.ListRecoveries(r.Context(), a.pool, project, id, maxRecoveryList)
	if err != nil {
		return err
	}
	out := make([]recovery, len(list))
	for i, rec := range list {
		out[i] = showRecovery(rec)
	}
	writeJSON(w, http.StatusOK, map[string][]recovery{"recoveries": out})
	return nil
}

// getRecovery returns one recovery with its progress. A deleted webhook's
// recoveries are a 404, as its deliveries are.
func (a *app) getRecovery(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	recoveryID, err := pathUUID(r, "recovery_id")
	if err != nil {
		return err
	}
	if _, err := loadWebhook(r.Context(), a.pool, project, id, false); err != nil {
		return err
	}
	rec, err := deliver.LoadRecovery(r.Context(), a.pool, project, id, recoveryID)
	if errors.Is(err, deliver.ErrRecoveryNotFound) {
		return notFound("recovery")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, showRecovery(rec))
	return nil
}
