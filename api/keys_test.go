package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/api"
)

const testToken = "s3cret-token"

// newKeyEnv starts an API that requires testToken.
func newKeyEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, func(c *api.Config) { c.Token = testToken })
}

// bearer returns the header pair that authenticates with token.
func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// createKey creates a key through the API with auth and returns the answer.
func (e *env) createKey(auth string, body any) map[string]any {
	e.t.Helper()
	return e.do("POST", "/api/keys", body, bearer(auth)...).want(e.t, http.StatusCreated)
}

func TestKeys_ProjectKeyReachesOnlyItsOwnProject(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	key := e.createKey(testToken, map[string]any{"name": "ci", "project_id": e.project})["key"].(string)
	auth := bearer(key)

	hook := e.do("POST", "/webhooks", validWebhook("https://x.example/in", nil), auth...).want(t, http.StatusCreated)
	e.do("GET", "/webhooks", nil, auth...).want(t, http.StatusOK)
	e.do("GET", "/webhooks/"+hook["id"].(string), nil, auth...).want(t, http.StatusOK)
	// uuid.Parse accepts upper case, so the handler would serve it: so does the check.
	e.do("GET", "/api/projects/"+strings.ToUpper(e.project.String())+"/webhooks", nil, auth...).want(t, http.StatusOK)

	// Another project, with or without rows, is a 404 as for an unknown webhook.
	other := uuid.New()
	e.exec(`INSERT INTO hookrelay.webhooks (project_id, name, url, secret, event_types)
		VALUES ($1, 'theirs', 'https://y.example', 'whsec_x', '{*}')`, other)
	for _, path := range []string{
		"/api/projects/" + other.String() + "/webhooks",
		"/api/projects/" + uuid.NewString() + "/webhooks",
		"/api/projects/" + other.String() + "/webhooks/" + hook["id"].(string),
		"/api/projects/not-a-uuid/webhooks",
		// A %2F inside the project segment does not make it the key's project.
		"/api/projects/" + e.project.String() + "%2F..%2F" + other.String() + "/webhooks",
	} {
		e.do("GET", path, nil, auth...).wantError(t, http.StatusNotFound, "not_found", "project")
	}
	e.do("POST", "/api/projects/"+other.String()+"/webhooks", validWebhook("https://x.example/in", nil), auth...).
		wantError(t, http.StatusNotFound, "not_found", "project")
	if n := e.count(`SELECT count(*) FROM hookrelay.webhooks WHERE project_id = $1`, other); n != 1 {
		t.Fatalf("project %s has %d webhooks after a foreign key's create, want 1", other, n)
	}

	// Admin routes are refused, and nothing is created.
	e.do("GET", "/api/keys", nil, auth...).wantError(t, http.StatusForbidden, "forbidden", "Authorization:")
	e.do("POST", "/api/keys", map[string]any{"name": "escalate"}, auth...).wantError(t, http.StatusForbidden, "forbidden", "Authorization:")
	e.do("DELETE", "/api/keys/"+uuid.NewString(), nil, auth...).wantError(t, http.StatusForbidden, "forbidden", "Authorization:")
	e.do("GET", "/metrics", nil, auth...).wantError(t, http.StatusForbidden, "forbidden", "Authorization:")
	if n := e.count(`SELECT count(*) FROM hookrelay.api_keys`); n != 1 {
		t.Fatalf("%d keys after a project key tried to create one, want 1", n)
	}
}

func TestKeys_RevokedKeyIsUnauthorizedAndRevokingIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	k := e.createKey(testToken, map[string]any{"name": "ci", "project_id": e.project})
	auth := bearer(k["key"].(string))
	e.do("GET", "/webhooks", nil, auth...).want(t, http.StatusOK)

	e.do("DELETE", "/api/keys/"+k["id"].(string), nil, bearer(testToken)...).want(t, http.StatusNoContent)
	e.do("GET", "/webhooks", nil, auth...).wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")

	var first string
	e.pool.QueryRow(t.Context(), `SELECT revoked_at::text FROM hookrelay.api_keys`).Scan(&first)
	e.do("DELETE", "/api/keys/"+k["id"].(string), nil, bearer(testToken)...).want(t, http.StatusNoContent)
	if n := e.count(`SELECT count(*) FROM hookrelay.api_keys WHERE revoked_at::text = $1`, first); n != 1 {
		t.Fatalf("a second revocation moved revoked_at (was %s)", first)
	}
	list := e.do("GET", "/api/keys", nil, bearer(testToken)...).want(t, http.StatusOK)["keys"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["revoked_at"] == nil {
		t.Fatalf("list after revocation: %v, want the key with revoked_at set", list)
	}

	e.do("DELETE", "/api/keys/"+uuid.NewString(), nil, bearer(testToken)...).wantError(t, http.StatusNotFound, "not_found", "key")
	e.do("DELETE", "/api/keys/nope", nil, bearer(testToken)...).wantError(t, http.StatusBadRequest, "invalid_field", "id")
}

func TestKeys_KeyIsShownOnceAndStoredOnlyAsItsHash(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	k := e.createKey(testToken, map[string]any{"name": "ci", "project_id": e.project})
	key, _ := k["key"].(string)
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(key, "hrk_"))
	if !strings.HasPrefix(key, "hrk_") || err != nil || len(raw) != 32 {
		t.Fatalf("key %q is not hrk_ and the base64url of 32 bytes (%v)", key, err)
	}
	if k["prefix"] != key[:12] || k["project_id"] != e.project.String() || k["name"] != "ci" || k["revoked_at"] != nil {
		t.Fatalf("create answered %v", k)
	}

	r := e.do("GET", "/api/keys", nil, bearer(testToken)...)
	list := r.want(t, http.StatusOK)["keys"].([]any)
	if len(list) != 1 || strings.Contains(string(r.body), key) || strings.Contains(string(r.body), key[12:]) {
		t.Fatalf("list shows the key or not one entry: %s", r.body)
	}
	got := list[0].(map[string]any)
	if _, ok := got["key"]; ok || got["id"] != k["id"] || got["prefix"] != key[:12] {
		t.Fatalf("list entry %v, want id and prefix without key", got)
	}

	sum := sha256.Sum256([]byte(key))
	if n := e.count(`SELECT count(*) FROM hookrelay.api_keys WHERE key_hash = $1`, sum[:]); n != 1 {
		t.Fatalf("no row holds the key's SHA-256")
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.api_keys a
		WHERE strpos(row_to_json(a)::text, $1) > 0 OR strpos(encode(a.key_hash, 'escape'), $1) > 0`, key[12:]); n != 0 {
		t.Fatalf("the table holds the key itself")
	}
}

func TestKeys_BadInputIsA400NamingTheFieldAndStoresNothing(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	for _, c := range []struct {
		body         string
		code, prefix string
	}{
		{`{}`, "invalid_field", "name"},
		{`{"name": "  "}`, "invalid_field", "name"},
		{`{"name": null}`, "invalid_field", "name"},
		{`{"name": "` + strings.Repeat("n", 201) + `"}`, "invalid_field", "name"},
		{`{"name": "a\u0000b"}`, "invalid_field", "name"},
		{`{"name": 5}`, "invalid_field", "name"},
		{`{"name": "ci", "project_id": "abc"}`, "invalid_field", "project_id"},
		{`{"name": "ci", "project_id": 7}`, "invalid_field", "project_id"},
		{`{"name": "ci", "project_id": "00000000-0000-0000-0000-000000000000"}`, "invalid_field", "project_id"},
		{`{"name": "ci", "scope": "all"}`, "unknown_field", "scope"},
		{`{"name": "ci", "name": "ci2"}`, "invalid_field", "name"},
		{`[]`, "invalid_field", "body"},
		{``, "invalid_json", "body"},
	} {
		e.do("POST", "/api/keys", c.body, bearer(testToken)...).wantError(t, http.StatusBadRequest, c.code, c.prefix)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.api_keys`); n != 0 {
		t.Fatalf("refused creates stored %d keys", n)
	}
}

func TestKeys_AdminKeyActsAsTheGlobalToken(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	admin := e.createKey(testToken, map[string]any{"name": "ops", "project_id": nil})
	if admin["project_id"] != nil {
		t.Fatalf("admin key bound to %v", admin["project_id"])
	}
	auth := bearer(admin["key"].(string))
	k := e.createKey(admin["key"].(string), map[string]any{"name": "ci", "project_id": e.project})
	e.do("GET", "/webhooks", nil, bearer(k["key"].(string))...).want(t, http.StatusOK)
	e.do("GET", "/api/keys", nil, auth...).want(t, http.StatusOK)
	e.do("GET", "/api/projects/"+uuid.NewString()+"/webhooks", nil, auth...).want(t, http.StatusOK)
	if r := e.do("GET", "/metrics", nil, auth...); r.status != http.StatusOK {
		t.Fatalf("/metrics with an admin key answered %d", r.status)
	}
	e.do("DELETE", "/api/keys/"+k["id"].(string), nil, auth...).want(t, http.StatusNoContent)
	e.do("GET", "/webhooks", nil, bearer(k["key"].(string))...).wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")
}

func TestKeys_KeyRoutesNeedTheTokenOrAnAdminKey(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	for _, h := range [][]string{nil, bearer("wrong"), bearer("hrk_" + strings.Repeat("A", 43))} {
		e.do("POST", "/api/keys", map[string]any{"name": "x"}, h...).wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")
		e.do("GET", "/api/keys", nil, h...).wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization:")
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.api_keys`); n != 0 {
		t.Fatalf("unauthenticated creates stored %d keys", n)
	}
}

// Without HOOKRELAY_API_TOKEN the API is open (development): keys can be
// managed, and a project key limits nothing, as no credential is checked.
func TestKeys_WithoutATokenKeysAreNotChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	k := e.do("POST", "/api/keys", map[string]any{"name": "ci", "project_id": e.project}).want(t, http.StatusCreated)
	auth := bearer(k["key"].(string))
	e.do("GET", "/api/projects/"+uuid.NewString()+"/webhooks", nil, auth...).want(t, http.StatusOK)
	e.do("GET", "/api/keys", nil, auth...).want(t, http.StatusOK)
	e.do("GET", "/webhooks", nil, bearer("anything")...).want(t, http.StatusOK)
}
