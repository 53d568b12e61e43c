package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookrelay/hookrelay/outbox"
)

// Limits on the fields of POST /configs/deploy.
const (
	maxSlugLength    = 200
	maxCommitMessage = 2000
	maxDeployedBy    = 200
)

// deployInput is the body of POST /configs/deploy, the example domain: a
// config revision of an application's variant, deployed to an environment.
type deployInput struct {
	ApplicationID   string          `json:"application_id"`
	ApplicationSlug string          `json:"application_slug"`
	VariantID       string          `json:"variant_id"`
	VariantSlug     string          `json:"variant_slug"`
	Params          json.RawMessage `json:"params"` // a JSON object; absent or null means {}
	CommitMessage   string          `json:"commit_message"`
	Environment     string          `json:"environment"`
	DeployedBy      string          `json:"deployed_by"`
}

// deployResult is the response of POST /configs/deploy.
type deployResult struct {
	ConfigID    uuid.UUID `json:"config_id"`
	Version     int       `json:"version"`
	Environment string    `json:"environment"`
	EventID     uuid.UUID `json:"event_id"`
}

// deploy is a validated deployInput.
type deploy struct {
	project, application, variant uuid.UUID
	in                            deployInput
}

func parseDeploy(project uuid.UUID, in deployInput) (deploy, error) {
	d := deploy{project: project, in: in}
	for _, f := range []struct {
		name string
		val  string
		dst  *uuid.UUID
	}{{"application_id", in.ApplicationID, &d.application}, {"variant_id", in.VariantID, &d.variant}} {
		if f.val == "" {
			return d, invalid(f.name, "is required")
		}
		id, err := uuid.Parse(f.val)
		if err != nil {
			return d, invalid(f.name, "must be a UUID")
		}
		*f.dst = id
	}
	for _, f := range []struct {
		name     string
		val      string
		min, max int
	}{
		{"application_slug", in.ApplicationSlug, 1, maxSlugLength},
		{"variant_slug", in.VariantSlug, 1, maxSlugLength},
		{"environment", in.Environment, 1, maxEnvironmentLength},
		{"commit_message", in.CommitMessage, 0, maxCommitMessage},
		{"deployed_by", in.DeployedBy, 0, maxDeployedBy},
	} {
		if err := checkText(f.name, f.val, f.min, f.max); err != nil {
			return d, err
		}
	}
	d.in.Environment = strings.TrimSpace(in.Environment)
	params := bytes.TrimSpace(in.Params)
	switch {
	case len(params) == 0 || string(params) == "null":
		d.in.Params = json.RawMessage("{}")
	case params[0] != '{':
		return d, invalid("params", "must be a JSON object")
	}
	return d, nil
}

// deployConfig saves a config revision (the variant's next version) and
// points the environment at it, in one transaction. The environments table's
// trigger emits config.deployed in that same transaction, so the event exists
// if and only if the deploy committed; the response carries its id.
func (a *app) deployConfig(w http.ResponseWriter, r *http.Request) error {
	project, err := pathUUID(r, "project_id")
	if err != nil {
		return err
	}
	var in deployInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	d, err := parseDeploy(project, in)
	if err != nil {
		return err
	}
	var res deployResult
	err = pgx.BeginFunc(r.Context(), a.pool, func(tx pgx.Tx) error {
		res, err = d.run(r.Context(), tx)
		return err
	})
	if err != nil {
		return err
	}
	a.metrics.EventsEmitted.Inc()
	a.log.InfoContext(r.Context(), "config deployed", "project_id", project, "config_id", res.ConfigID,
		"version", res.Version, "environment", res.Environment, "event_id", res.EventID)
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// run performs the deploy in tx.
func (d deploy) run(ctx context.Context, tx pgx.Tx) (deployResult, error) {
	res := deployResult{Environment: d.in.Environment}
	// Serialize deploys of one variant so that versions are taken in turn.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))`, d.variant); err != nil {
		return res, fmt.Errorf("lock variant %s: %w", d.variant, err)
	}
	var owner *uuid.UUID
	err := tx.QueryRow(ctx, `SELECT (SELECT project_id FROM hookrelay_example.configs WHERE variant_id = $1 LIMIT 1)`,
		d.variant).Scan(&owner)
	if err != nil {
		return res, fmt.Errorf("find project of variant %s: %w", d.variant, err)
	}
	if owner != nil && *owner != d.project {
		return res, &apiError{Status: http.StatusConflict, Code: codeConflict, Message: "variant_id: belongs to another project"}
	}
	err = tx.QueryRow(ctx, `INSERT INTO hookrelay_example.configs
		(project_id, application_id, application_slug, variant_id, variant_slug, version, params, commit_message, created_by)
		VALUES ($1, $2, $3, $4, $5,
			(SELECT coalesce(max(version), 0) + 1 FROM hookrelay_example.configs WHERE variant_id = $4),
			$6, $7, $8)
		RETURNING id, version`,
		d.project, d.application, d.in.ApplicationSlug, d.variant, d.in.VariantSlug,
		string(d.in.Params), d.in.CommitMessage, d.in.DeployedBy).Scan(&res.ConfigID, &res.Version)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || pgErr.Code == "54001") {
		// Everything but params was validated; Postgres refuses what jsonb cannot hold
		// (\u0000, numbers out of numeric's range, too deep nesting).
		return res, invalid("params", "%s", strings.TrimSuffix(pgErr.Message+" "+pgErr.Detail, " "))
	}
	if err != nil {
		return res, fmt.Errorf("insert config revision: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO hookrelay_example.environments
		(project_id, application_id, name, config_id, deployed_by)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (project_id, application_id, name)
		DO UPDATE SET config_id = EXCLUDED.config_id, deployed_by = EXCLUDED.deployed_by, deployed_at = now()`,
		d.project, d.application, d.in.Environment, res.ConfigID, d.in.DeployedBy)
	if outbox.IsDataTooLarge(err) {
		// The body is capped well under the event's cap, but jsonb writes
		// numbers out: a short params can make a long event.
		return res, invalid("params", "makes the config.deployed event's data larger than the %d bytes allowed (as Postgres stores it)", outbox.MaxDataBytes)
	}
	if err != nil {
		return res, fmt.Errorf("deploy config %s to %s: %w", res.ConfigID, d.in.Environment, err)
	}
	// The trigger's outbox row is the last value this session drew from the
	// outbox sequence, written by this transaction.
	err = tx.QueryRow(ctx, `SELECT id FROM hookrelay.outbox
		WHERE xid = pg_current_xact_id() AND event_type = 'config.deployed' AND project_id = $1
		  AND seq = (SELECT currval(pg_get_serial_sequence('hookrelay.outbox', 'seq')))`, d.project).Scan(&res.EventID)
	if err != nil {
		return res, fmt.Errorf("read back config.deployed event: %w", err)
	}
	return res, nil
}
