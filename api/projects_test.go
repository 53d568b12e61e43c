package api_test

import (
	"net/http"
	"testing"
)

func TestProjects_AdminListsProjectsWithWebhooksAndAProjectKeyIsRefused(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	auth := bearer(testToken)
	if got := e.do("GET", "/api/projects", nil, auth...).want(t, http.StatusOK)["projects"].([]any); len(got) != 0 {
		t.Fatalf("projects before any webhook: %v", got)
	}
	e.do("POST", "/webhooks", validWebhook("https://x.example/a", nil), auth...).want(t, http.StatusCreated)
	e.do("POST", "/webhooks", validWebhook("https://x.example/b", nil), auth...).want(t, http.StatusCreated)
	got := e.do("GET", "/api/projects", nil, auth...).want(t, http.StatusOK)["projects"].([]any)
	if len(got) != 1 {
		t.Fatalf("projects: %v, want this test's one", got)
	}
	p := got[0].(map[string]any)
	if p["id"] != e.project.String() || p["webhooks"] != 2.0 {
		t.Errorf("project %v, want %s with 2 webhooks", p, e.project)
	}

	key := e.createKey(testToken, map[string]any{"name": "ci", "project_id": e.project})["key"].(string)
	e.do("GET", "/api/projects", nil, bearer(key)...).wantError(t, http.StatusForbidden, "forbidden", "Authorization")
	e.do("GET", "/api/projects", nil).wantError(t, http.StatusUnauthorized, "unauthorized", "Authorization")
}
