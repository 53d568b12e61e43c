package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/signature"
)

// webhook is a webhook as the API shows it. Secret is set only in the
// responses of create and regenerate-secret; custom header values are never
// shown (Headers holds their names with maskedValue), like the secret.
type webhook struct {
	ID              uuid.UUID         `json:"id"`
	Name            string            `json:"name"`
	URL             string            `json:"url"`
	EventTypes      []string          `json:"event_types"`
	ApplicationID   *uuid.UUID        `json:"application_id"`
	EnvironmentName *string           `json:"environment_name"`
	Headers         map[string]string `json:"headers"`
	IsActive        bool              `json:"is_active"`
	DisabledReason  *string           `json:"disabled_reason"`
	DisabledAt      *time.Time        `json:"disabled_at"`
	RateLimit       *int              `json:"rate_limit"`
	MaxInFlight     *int              `json:"max_in_flight"`
	Health          endpointHealth    `json:"health"`
	Description     string            `json:"description"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	Secret          string            `json:"secret,omitempty"`

	stored json.RawMessage // the custom headers as stored, values included
}

// endpointHealth is what the worker knows of a webhook's endpoint
// (hookrelay.webhook_health; an endpoint that never failed has no row and
// shows a closed circuit and no failures).
type endpointHealth struct {
	Circuit             string     `json:"circuit"` // closed, open, half_open
	ConsecutiveFailures int        `json:"consecutive_failures"`
	FailingSince        *time.Time `json:"failing_since"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	LastFailureAt       *time.Time `json:"last_failure_at"`
	OpenedAt            *time.Time `json:"opened_at"`
	RetryAt             *time.Time `json:"retry_at"`
	PausedUntil         *time.Time `json:"paused_until"`
}

// maskedValue stands in the API's answers for every custom header value: the
// values are write-only, as they often are credentials. Sending it back in a
// PATCH keeps the stored value of that header.
const maskedValue = "********"

// webhookColumns are the columns scanWebhook reads, in order. The secret is
// not among them: only create and regenerate return it, from Go.
const webhookColumns = `id, name, url, event_types, application_id, environment_name,
	headers, is_active, disabled_reason, disabled_at, rate_limit, max_in_flight,
	(SELECT jsonb_build_object('circuit', h.circuit, 'consecutive_failures', h.consecutive_failures,
		'failing_since', h.failing_since, 'last_success_at', h.last_success_at,
		'last_failure_at', h.last_failure_at, 'opened_at', h.opened_at, 'retry_at', h.retry_at,
		'paused_until', h.paused_until)
	 FROM hookrelay.webhook_health h WHERE h.webhook_id = webhooks.id),
	description, created_at, updated_at`

func scanWebhook(row pgx.Row) (webhook, error) {
	var w webhook
	var health []byte
	err := row.Scan(&w.ID, &w.Name, &w.URL, &w.EventTypes, &w.ApplicationID, &w.EnvironmentName,
		&w.stored, &w.IsActive, &w.DisabledReason, &w.DisabledAt, &w.RateLimit, &w.MaxInFlight, &health,
		&w.Description, &w.CreatedAt, &w.UpdatedAt)
	if err != nil {
		return w, err
	}
	w.Health = endpointHealth{Circuit: "closed"}
	if health != nil {
		if err := json.Unmarshal(health, &w.Health); err != nil {
			return w, fmt.Errorf("decode health of webhook %s: %w", w.ID, err)
		}
	}
	var h map[string]string
	if err := json.Unmarshal(w.stored, &h); err != nil {
		return w, fmt.Errorf("decode stored headers of webhook %s: %w", w.ID, err)
	}
	w.Headers = make(map[string]string, len(h))
	for name := range h {
		w.Headers[name] = maskedValue
	}
	return w, nil
}

// fields returns the user-settable part of w, for PATCH.
func (w webhook) fields() (webhookFields, error) {
	f := webhookFields{
		Name: w.Name, URL: w.URL, EventTypes: w.EventTypes, ApplicationID: w.ApplicationID,
		EnvironmentName: w.EnvironmentName, IsActive: w.IsActive, Description: w.Description,
		RateLimit: w.RateLimit, MaxInFlight: w.MaxInFlight,
	}
	if err := json.Unmarshal(w.stored, &f.Headers); err != nil {
		return f, fmt.Errorf("decode stored headers of webhook %s: %w", w.ID, err)
	}
	return f, nil
}

// headersJSON encodes custom headers for the jsonb column, never as null.
func headersJSON(h map[string]string) ([]byte, error) {
	if h == nil {
		h = map[string]string{}
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode headers: %w", err)
	}
	return b, nil
}

// keepMasked gives every header of next whose value is maskedValue (a client
// sending back what it read) the value stored under the same name in prev.
func keepMasked(next, prev map[string]string) error {
	for name, v := range next {
		if v != maskedValue {
			continue
		}
		stored, ok := lookupFold(prev, name)
		if !ok {
			return invalid("headers", "value of %s is the mask %q, and no value is stored for it: send the value", name, maskedValue)
		}
		next[name] = stored
	}
	return nil
}

// lookupFold finds name in h, ignoring case, as HTTP header names are.
func lookupFold(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// projectWebhook parses the project_id and id path values.
func projectWebhook(r *http.Request) (project, id uuid.UUID, err error) {
	if project, err = pathUUID(r, "project_id"); err != nil {
		return
	}
	id, err = pathUUID(r, "id")
	return
}

func (a *app) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	project, err := pathUUID(r, "project_id")
	if err != nil {
		return err
	}
	rows, err := a.pool.Query(r.Context(), `SELECT `+webhookColumns+` FROM hookrelay.webhooks
		WHERE project_id = $1 ORDER BY created_at, id`, project)
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (webhook, error) { return scanWebhook(row) })
	if err != nil {
		return fmt.Errorf("list webhooks: %w", err)
	}
	if list == nil {
		list = []webhook{}
	}
	writeJSON(w, http.StatusOK, map[string][]webhook{"webhooks": list})
	return nil
}

func (a *app) createWebhook(w http.ResponseWriter, r *http.Request) error {
	project, err := pathUUID(r, "project_id")
	if err != nil {
		return err
	}
	var in webhookInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	patch, err := a.validate.check(r.Context(), in, true)
	if err != nil {
		return err
	}
	f := webhookFields{IsActive: true}
	patch.applyTo(&f)
	if err := keepMasked(f.Headers, nil); err != nil {
		return err
	}
	headers, err := headersJSON(f.Headers)
	if err != nil {
		return err
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	hook, err := scanWebhook(a.pool.QueryRow(r.Context(), `INSERT INTO hookrelay.webhooks
		(project_id, name, url, secret, event_types, application_id, environment_name, headers, is_active, description,
		 rate_limit, max_in_flight)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		RETURNING `+webhookColumns,
		project, f.Name, f.URL, secret, f.EventTypes, f.ApplicationID, f.EnvironmentName, headers, f.IsActive, f.Description,
		f.RateLimit, f.MaxInFlight))
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	hook.Secret = secret
	a.log.InfoContext(r.Context(), "webhook created", "project_id", project, "webhook_id", hook.ID)
	writeJSON(w, http.StatusCreated, hook)
	return nil
}

// queryRower is what pgxpool.Pool and pgx.Tx have in common that loadWebhook needs.
type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// loadWebhook reads a webhook of project; another project's is not found.
// With lock, the row is locked FOR UPDATE (db must then be a transaction).
func loadWebhook(ctx context.Context, db queryRower, project, id uuid.UUID, lock bool) (webhook, error) {
	q := `SELECT ` + webhookColumns + ` FROM hookrelay.webhooks WHERE project_id = $1 AND id = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	hook, err := scanWebhook(db.QueryRow(ctx, q, project, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return webhook{}, notFound("webhook")
	}
	if err != nil {
		return webhook{}, fmt.Errorf("load webhook %s: %w", id, err)
	}
	return hook, nil
}

func (a *app) getWebhook(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	hook, err := loadWebhook(r.Context(), a.pool, project, id, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, hook)
	return nil
}

func (a *app) patchWebhook(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	var in webhookInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	// Validate before touching the database: a bad field changes nothing.
	patch, err := a.validate.check(r.Context(), in, false)
	if err != nil {
		return err
	}
	var hook webhook
	err = pgx.BeginFunc(r.Context(), a.pool, func(tx pgx.Tx) error {
		if in.IsActive.V {
			// Re-enabling starts the endpoint's health afresh. The health
			// row is locked before the webhook, in the worker's order.
			if _, err := tx.Exec(r.Context(), resetHealthSQL, project, id); err != nil {
				return fmt.Errorf("reset health of webhook %s: %w", id, err)
			}
		}
		cur, err := loadWebhook(r.Context(), tx, project, id, true)
		if err != nil {
			return err
		}
		before, err := cur.fields()
		if err != nil {
			return err
		}
		f := before
		patch.applyTo(&f)
		if err := keepMasked(f.Headers, before.Headers); err != nil {
			return err
		}
		if reflect.DeepEqual(f, before) {
			hook = cur // nothing changes, updated_at included
			return nil
		}
		headers, err := headersJSON(f.Headers)
		if err != nil {
			return err
		}
		hook, err = scanWebhook(tx.QueryRow(r.Context(), `UPDATE hookrelay.webhooks SET
			name = $3, url = $4, event_types = $5, application_id = $6, environment_name = $7,
			headers = $8, is_active = $9, description = $10, rate_limit = $11, max_in_flight = $12,
			updated_at = now(),
			disabled_reason = CASE WHEN $9 THEN NULL ELSE disabled_reason END,
			disabled_at = CASE WHEN $9 THEN NULL ELSE disabled_at END
			WHERE project_id = $1 AND id = $2
			RETURNING `+webhookColumns,
			project, id, f.Name, f.URL, f.EventTypes, f.ApplicationID, f.EnvironmentName, headers, f.IsActive, f.Description,
			f.RateLimit, f.MaxInFlight))
		if err != nil {
			return fmt.Errorf("update webhook %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, hook)
	return nil
}

// resetHealthSQL forgets the health of a disabled webhook of a project, which
// is being re-enabled: its breaker starts closed, with no failures.
const resetHealthSQL = `DELETE FROM hookrelay.webhook_health h USING hookrelay.webhooks w
	WHERE h.webhook_id = w.id AND w.project_id = $1 AND w.id = $2 AND NOT w.is_active`

// deleteWebhook deletes the webhook and, in the same transaction, marks its
// pending deliveries skipped, so that none is left waiting forever.
//
// It takes its locks in the worker's order: deliveries first (by id, as
// deliver locks a recording batch), then the webhook. The worker's recording
// transaction locks its deliveries and then deactivates their webhook after a
// 410; deleting the webhook first would deadlock with it.
func (a *app) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	var skipped int64
	err = pgx.BeginFunc(r.Context(), a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(r.Context(), `SELECT id FROM hookrelay.deliveries
			WHERE webhook_id = $1 AND project_id = $2 AND status = 'pending'
			ORDER BY id FOR UPDATE`, id, project); err != nil {
			return fmt.Errorf("lock pending deliveries of webhook %s: %w", id, err)
		}
		if _, err := tx.Exec(r.Context(), `DELETE FROM hookrelay.webhook_health h USING hookrelay.webhooks w
			WHERE h.webhook_id = w.id AND w.id = $1 AND w.project_id = $2`, id, project); err != nil {
			return fmt.Errorf("delete health of webhook %s: %w", id, err)
		}
		tag, err := tx.Exec(r.Context(), `DELETE FROM hookrelay.webhooks WHERE project_id = $1 AND id = $2`, project, id)
		if err != nil {
			return fmt.Errorf("delete webhook %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("webhook")
		}
		tag, err = tx.Exec(r.Context(), `UPDATE hookrelay.deliveries
			SET status = 'skipped', last_error = 'webhook deleted', next_attempt_at = NULL, parked_at = NULL,
				updated_at = now()
			WHERE webhook_id = $1 AND project_id = $2 AND status = 'pending'`, id, project)
		if err != nil {
			return fmt.Errorf("skip deliveries of deleted webhook %s: %w", id, err)
		}
		skipped = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return err
	}
	a.log.InfoContext(r.Context(), "webhook deleted", "project_id", project, "webhook_id", id, "skipped_deliveries", skipped)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// maxPreviousSecrets is how many retired secrets keep signing at most: after
// more regenerations within one grace period, the oldest stop early.
const maxPreviousSecrets = 5

// regenerateSecretSQL retires the current secret into previous_secrets
// (most recent first, expiring after the grace period, $4 microseconds),
// prunes entries whose grace period ended, keeps the $5 most recent, and
// sets the new secret $3.
const regenerateSecretSQL = `UPDATE hookrelay.webhooks SET
	previous_secrets = (
		SELECT coalesce(jsonb_agg(kept.e ORDER BY kept.ord), '[]')
		FROM (
			SELECT e, ord FROM (
				SELECT jsonb_build_object('secret', secret,
					'expires_at', now() + $4 * interval '1 microsecond') AS e, 0::bigint AS ord
				UNION ALL
				SELECT p.e, p.ord FROM jsonb_array_elements(previous_secrets) WITH ORDINALITY AS p(e, ord)
				WHERE (p.e ->> 'expires_at')::timestamptz > now()
			) candidates
			ORDER BY ord LIMIT $5
		) kept),
	secret = $3, updated_at = now()
	WHERE project_id = $1 AND id = $2
	RETURNING ` + webhookColumns

// regenerateSecret gives the webhook a new secret; the old one joins
// previous_secrets and keeps signing for cfg.SecretGrace, as do the ones
// retired before it until their own grace periods end.
func (a *app) regenerateSecret(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return fmt.Errorf("regenerate secret: %w", err)
	}
	hook, err := scanWebhook(a.pool.QueryRow(r.Context(), regenerateSecretSQL,
		project, id, secret, a.cfg.SecretGrace.Microseconds(), maxPreviousSecrets))
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("webhook")
	}
	if err != nil {
		return fmt.Errorf("regenerate secret of webhook %s: %w", id, err)
	}
	hook.Secret = secret
	a.log.InfoContext(r.Context(), "webhook secret regenerated", "project_id", project, "webhook_id", id)
	writeJSON(w, http.StatusOK, hook)
	return nil
}
