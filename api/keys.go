package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// keyPrefix starts every API key, so that a key is recognisable in a
// configuration file or a secret scanner, and so that a bearer token without
// it is refused without a database lookup.
const keyPrefix = "hrk_"

// keyBytes is the number of random bytes in a key: 256 bits, which is why a
// plain SHA-256 of the key is a safe thing to store and look it up by.
const keyBytes = 32

// shownPrefixLen is how many leading characters of a key the lists show:
// "hrk_" and 8 characters (48 random bits), enough to tell keys apart.
const shownPrefixLen = len(keyPrefix) + 8

// maxKeyNameLength is the longest key name, in characters.
const maxKeyNameLength = 200

// apiKey is an API key as the key routes show it. Key is set only in the
// answer of its creation and never again: only its SHA-256 is stored.
type apiKey struct {
	ID        uuid.UUID  `json:"id"`
	Name      string     `json:"name"`
	ProjectID *uuid.UUID `json:"project_id"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Key       string     `json:"key,omitempty"`
}

// apiKeyColumns are the columns scanAPIKey reads, in order.
const apiKeyColumns = `id, name, project_id, prefix, created_at, revoked_at`

func scanAPIKey(row pgx.Row) (apiKey, error) {
	var k apiKey
	err := row.Scan(&k.ID, &k.Name, &k.ProjectID, &k.Prefix, &k.CreatedAt, &k.RevokedAt)
	return k, err
}

// keyRoutes are the admin routes that manage API keys; a project key is
// refused on them (caller.authorize).
func (a *app) keyRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"GET /api/keys":         a.listKeys,
		"POST /api/keys":        a.createKey,
		"DELETE /api/keys/{id}": a.revokeKey,
	}
}

// newKey returns a fresh key and its SHA-256.
func newKey() (key string, hash [sha256.Size]byte, err error) {
	b := make([]byte, keyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", hash, fmt.Errorf("generate api key: %w", err)
	}
	key = keyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, sha256.Sum256([]byte(key)), nil
}

// keyInput is the body of POST /api/keys; a null or absent project_id makes
// an admin key.
type keyInput struct {
	Name      *string `json:"name"`
	ProjectID *string `json:"project_id"`
}

func (a *app) createKey(w http.ResponseWriter, r *http.Request) error {
	var in keyInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return invalid("name", "is required")
	}
	if err := checkText("name", *in.Name, 1, maxKeyNameLength); err != nil {
		return err
	}
	var project *uuid.UUID
	if in.ProjectID != nil {
		id, err := uuid.Parse(*in.ProjectID)
		if err != nil {
			return invalid("project_id", "must be a UUID, or null for an admin key")
		}
		if id == uuid.Nil {
			return invalid("project_id", "must not be the nil UUID (send null for an admin key)")
		}
		project = &id
	}
	key, hash, err := newKey()
	if err != nil {
		return err
	}
	k, err := scanAPIKey(a.pool.QueryRow(r.Context(), `INSERT INTO hookrelay.api_keys
		(project_id, name, key_hash, prefix) VALUES ($1, $2, $3, $4)
		RETURNING `+apiKeyColumns, project, *in.Name, hash[:], key[:shownPrefixLen]))
	if err != nil {
		return fmt.Errorf("create api key: %w", err)
	}
	k.Key = key
	a.log.InfoContext(r.Context(), "api key created", "key_id", k.ID, "project_id", k.ProjectID, "prefix", k.Prefix)
	writeJSON(w, http.StatusCreated, k)
	return nil
}

func (a *app) listKeys(w http.ResponseWriter, r *http.Request) error {
	rows, err := a.pool.Query(r.Context(), `SELECT `+apiKeyColumns+` FROM hookrelay.api_keys
		ORDER BY created_at, id`)
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (apiKey, error) { return scanAPIKey(row) })
	if err != nil {
		return fmt.Errorf("list api keys: %w", err)
	}
	if list == nil {
		list = []apiKey{}
	}
	writeJSON(w, http.StatusOK, map[string][]apiKey{"keys": list})
	return nil
}

// revokeKey revokes a key for good; revoking a revoked key changes nothing
// (its revoked_at stays) and answers 204 again.
func (a *app) revokeKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathUUID(r, "id")
	if err != nil {
		return err
	}
	tag, err := a.pool.Exec(r.Context(), `UPDATE hookrelay.api_keys
		SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("revoke api key %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("key")
	}
	a.log.InfoContext(r.Context(), "api key revoked", "key_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
