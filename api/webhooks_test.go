package api_test

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/api"
)

func TestWebhooks_CreateReturnsSecretOnceAndReadsNeverDo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	created := e.createWebhook("https://hooks.example.com/in", nil)
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create returned secret %q, want whsec_…", secret)
	}
	for _, k := range []string{"id", "name", "url", "event_types", "application_id", "environment_name",
		"headers", "is_active", "description", "created_at", "updated_at"} {
		if _, ok := created[k]; !ok {
			t.Errorf("create response lacks %q: %v", k, created)
		}
	}
	if created["is_active"] != true || created["application_id"] != nil {
		t.Errorf("defaults: is_active %v, application_id %v", created["is_active"], created["application_id"])
	}
	if h, _ := created["headers"].(map[string]any); h["Authorization"] != "********" {
		t.Errorf("headers not returned with masked values: %v", created["headers"])
	}
	id := created["id"].(string)
	if n := e.count(`SELECT count(*) FROM hookrelay.webhooks WHERE id = $1 AND secret = $2 AND project_id = $3`, id, secret, e.project); n != 1 {
		t.Fatalf("stored secret differs from the one returned")
	}

	got := e.do("GET", "/webhooks/"+id, nil)
	one := got.want(t, http.StatusOK)
	list := e.do("GET", "/webhooks", nil)
	all := list.want(t, http.StatusOK)
	hooks, _ := all["webhooks"].([]any)
	if len(hooks) != 1 {
		t.Fatalf("list has %d webhooks, want 1: %s", len(hooks), list.body)
	}
	if one["id"] != id || one["name"] != "Deploy notifications" {
		t.Errorf("GET returned %v", one)
	}
	for _, body := range [][]byte{got.body, list.body} {
		if strings.Contains(string(body), "secret") || strings.Contains(string(body), secret) {
			t.Errorf("a read leaks the secret: %s", body)
		}
		if strings.Contains(string(body), "receiver-token") {
			t.Errorf("a read leaks a custom header value: %s", body)
		}
	}
}

func TestWebhooks_ListIsEmptyArrayForNewProject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if got := e.do("GET", "/webhooks", nil); strings.TrimSpace(string(got.body)) != `{"webhooks":[]}` {
		t.Fatalf("empty list: %d %s", got.status, got.body)
	}
}

func TestWebhooks_CreateRejectsBadInputAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	many := map[string]string{}
	for i := range 21 {
		many["X-Custom-"+string(rune('a'+i))] = "v"
	}
	cases := []struct {
		name   string
		body   any
		status int
		code   string
		prefix string
	}{
		{"empty body", "", 400, "invalid_json", "body:"},
		{"malformed JSON", `{"name":`, 400, "invalid_json", "body:"},
		{"syntax error", `{"name" 1}`, 400, "invalid_json", "body:"},
		{"not an object", `[1,2]`, 400, "invalid_field", "body:"},
		{"trailing data", `{"name":"a","url":"https://x.example","event_types":["*"]} {}`, 400, "invalid_json", "body:"},
		{"unknown field", validWebhook("https://x.example", set("secret", "whsec_mine")), 400, "unknown_field", "secret:"},
		{"wrong type", validWebhook("https://x.example", set("name", 12)), 400, "invalid_field", "name:"},
		{"wrong element type", validWebhook("https://x.example", set("event_types", []any{1})), 400, "invalid_field", "event_types:"},
		{"missing name", validWebhook("https://x.example", func(m map[string]any) { delete(m, "name") }), 400, "invalid_field", "name: is required"},
		{"missing url", validWebhook("https://x.example", func(m map[string]any) { delete(m, "url") }), 400, "invalid_field", "url: is required"},
		{"missing event types", validWebhook("https://x.example", func(m map[string]any) { delete(m, "event_types") }), 400, "invalid_field", "event_types: is required"},
		{"blank name", validWebhook("https://x.example", set("name", "  ")), 400, "invalid_field", "name:"},
		{"long name", validWebhook("https://x.example", set("name", strings.Repeat("n", 201))), 400, "invalid_field", "name:"},
		{"NUL in name", validWebhook("https://x.example", set("name", "a\x00b")), 400, "invalid_field", "name:"},
		{"long description", validWebhook("https://x.example", set("description", strings.Repeat("d", 2001))), 400, "invalid_field", "description:"},
		{"relative url", validWebhook("/hooks", nil), 400, "invalid_field", "url: must be an absolute http or https URL"},
		{"ftp url", validWebhook("ftp://x.example/in", nil), 400, "invalid_field", "url: must be an absolute http or https URL"},
		{"url with credentials", validWebhook("https://user:pw@x.example/in", nil), 400, "invalid_field", "url:"},
		{"url too long", validWebhook("https://x.example/"+strings.Repeat("a", 2048), nil), 400, "invalid_field", "url:"},
		{"empty event types", validWebhook("https://x.example", set("event_types", []string{})), 400, "invalid_field", "event_types:"},
		{"unknown event type", validWebhook("https://x.example", set("event_types", []string{"config.exploded"})), 400, "invalid_field", "event_types:"},
		{"bad application id", validWebhook("https://x.example", set("application_id", "app-1")), 400, "invalid_field", "application_id:"},
		{"reserved header", validWebhook("https://x.example", set("headers", map[string]string{"content-type": "text/plain"})), 400, "invalid_field", "headers:"},
		{"signature-prefix header", validWebhook("https://x.example", set("headers", map[string]string{"X-Agenta-Signature": "forged"})), 400, "invalid_field", "headers:"},
		{"standard webhooks header", validWebhook("https://x.example", set("headers", map[string]string{"webhook-id": "1"})), 400, "invalid_field", "headers:"},
		{"bad header name", validWebhook("https://x.example", set("headers", map[string]string{"X Bad": "v"})), 400, "invalid_field", "headers:"},
		{"header value with newline", validWebhook("https://x.example", set("headers", map[string]string{"X-A": "v\r\nX-B: w"})), 400, "invalid_field", "headers:"},
		{"long header value", validWebhook("https://x.example", set("headers", map[string]string{"X-A": strings.Repeat("v", 1025)})), 400, "invalid_field", "headers:"},
		{"too many headers", validWebhook("https://x.example", set("headers", many)), 400, "invalid_field", "headers:"},
		{"null name", validWebhook("https://x.example", set("name", nil)), 400, "invalid_field", "name:"},
		{"body too large", `{"name":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "body_too_large", "body:"},
		{"key given twice", `{"name":"a","name":"b","url":"https://x.example","event_types":["*"]}`, 400, "invalid_field", "name: is given more than once"},
		{"header given twice", `{"name":"a","url":"https://x.example","event_types":["*"],"headers":{"X-A":"1","X-A":"2"}}`, 400, "invalid_field", "headers.X-A: is given more than once"},
		{"field name in the wrong case", `{"NAME":"a","url":"https://x.example","event_types":["*"]}`, 400, "unknown_field", "NAME: unknown field"},
		{"field name in mixed case", `{"name":"a","url":"https://x.example","Event_Types":["*"]}`, 400, "unknown_field", "Event_Types: unknown field"},
		{"invalid UTF-8 in name", "{\"name\":\"a\xffb\",\"url\":\"https://x.example\",\"event_types\":[\"*\"]}", 400, "invalid_field", "name: must be valid UTF-8"},
		{"bidi override in name", validWebhook("https://x.example", set("name", "invoice\u202Etxt.exe")), 400, "invalid_field", "name:"},
		{"zero-width space in name", validWebhook("https://x.example", set("name", "ops\u200Bteam")), 400, "invalid_field", "name:"},
		{"Proxy-Authorization header", validWebhook("https://x.example", set("headers", map[string]string{"Proxy-Authorization": "Basic eA=="})), 400, "invalid_field", "headers:"},
		{"Cookie header", validWebhook("https://x.example", set("headers", map[string]string{"Cookie": "a=b"})), 400, "invalid_field", "headers:"},
		{"Content-Encoding header", validWebhook("https://x.example", set("headers", map[string]string{"Content-Encoding": "gzip"})), 400, "invalid_field", "headers:"},
		{"Accept-Encoding header", validWebhook("https://x.example", set("headers", map[string]string{"Accept-Encoding": "br"})), 400, "invalid_field", "headers:"},
		{"zero rate limit", validWebhook("https://x.example", set("rate_limit", 0)), 400, "invalid_field", "rate_limit:"},
		{"rate limit too high", validWebhook("https://x.example", set("rate_limit", 100001)), 400, "invalid_field", "rate_limit:"},
		{"fractional rate limit", validWebhook("https://x.example", set("rate_limit", 1.5)), 400, "invalid_field", "rate_limit:"},
		{"negative max in flight", validWebhook("https://x.example", set("max_in_flight", -1)), 400, "invalid_field", "max_in_flight:"},
		{"max in flight as text", validWebhook("https://x.example", set("max_in_flight", "5")), 400, "invalid_field", "max_in_flight:"},
		{"HTTP2-Settings header", validWebhook("https://x.example", set("headers", map[string]string{"HTTP2-Settings": "AAMAAABkAAQAAP__"})), 400, "invalid_field", "headers:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.do("POST", "/webhooks", c.body).wantError(t, c.status, c.code, c.prefix)
		})
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.webhooks`); n != 0 {
		t.Fatalf("%d webhooks stored by rejected requests", n)
	}
}

func TestWebhooks_PrivateURLRefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.AllowPrivate = false })
	for _, u := range []string{"http://127.0.0.1:8080/in", "http://localhost/in", "http://169.254.169.254/latest", "http://[::1]/in", "http://10.0.0.7/in"} {
		e.do("POST", "/webhooks", validWebhook(u, nil)).wantError(t, 400, "invalid_field", "url: must not point at a private")
	}
	e.createWebhook("https://203.0.113.10/in", nil) // a public literal address is fine
}

func TestWebhooks_PatchChangesOnlyGivenFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	app := uuid.NewString()
	created := e.createWebhook("https://x.example/in", func(m map[string]any) {
		m["application_id"] = app
		m["environment_name"] = "production"
	})
	id := created["id"].(string)

	patched := e.do("PATCH", "/webhooks/"+id, map[string]any{
		"name": "Renamed", "application_id": nil, "is_active": false, "event_types": []string{"*"},
	}).want(t, http.StatusOK)
	if patched["name"] != "Renamed" || patched["application_id"] != nil || patched["is_active"] != false {
		t.Errorf("patch not applied: %v", patched)
	}
	if patched["environment_name"] != "production" || patched["url"] != "https://x.example/in" ||
		patched["description"] != created["description"] {
		t.Errorf("patch changed fields it did not name: %v", patched)
	}
	if _, ok := patched["secret"]; ok {
		t.Errorf("PATCH returned the secret")
	}
	if patched["updated_at"] == created["updated_at"] {
		t.Errorf("updated_at not bumped")
	}

	before := e.do("GET", "/webhooks/"+id, nil).body
	for _, bad := range []struct {
		body   any
		prefix string
	}{
		{map[string]any{"name": "ok", "url": "mailto:a@b.c"}, "url:"},
		{map[string]any{"name": nil}, "name:"},
		{map[string]any{"event_types": []string{}}, "event_types:"},
		{map[string]any{"headers": map[string]string{"Host": "evil"}}, "headers:"},
		{map[string]any{"is_active": "yes"}, "is_active:"},
	} {
		e.do("PATCH", "/webhooks/"+id, bad.body).wantError(t, 400, "invalid_field", bad.prefix)
	}
	if after := e.do("GET", "/webhooks/"+id, nil).body; string(after) != string(before) {
		t.Fatalf("rejected PATCH changed the webhook:\nbefore %s\nafter  %s", before, after)
	}
	e.do("PATCH", "/webhooks/"+uuid.NewString(), map[string]any{"name": "x"}).wantError(t, 404, "not_found", "webhook")
}

func TestWebhooks_DeleteSkipsPendingDeliveriesInSameTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	id := e.createWebhook("https://x.example/in", nil)["id"].(string)
	pending := e.insertDelivery(id, time.Now(), "pending")
	delivered := e.insertDelivery(id, time.Now(), "delivered")

	e.do("DELETE", "/webhooks/"+id, nil).want(t, http.StatusNoContent)
	if n := e.count(`SELECT count(*) FROM hookrelay.deliveries WHERE id = $1 AND status = 'skipped'`, pending); n != 1 {
		t.Errorf("pending delivery of deleted webhook not skipped")
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.deliveries WHERE id = $1 AND status = 'delivered'`, delivered); n != 1 {
		t.Errorf("finished delivery changed by delete")
	}
	e.do("GET", "/webhooks/"+id, nil).wantError(t, 404, "not_found", "webhook")
	e.do("DELETE", "/webhooks/"+id, nil).wantError(t, 404, "not_found", "webhook")
}

func TestWebhooks_AnotherProjectsWebhookIsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	created := e.createWebhook("https://x.example/in", nil)
	id := created["id"].(string)
	d := e.insertDelivery(id, time.Now(), "failed")
	other := "/api/projects/" + uuid.NewString() + "/webhooks/" + id
	for _, r := range []struct{ method, path string }{
		{"GET", other}, {"PATCH", other}, {"DELETE", other},
		{"POST", other + "/regenerate-secret"}, {"POST", other + "/test"},
		{"GET", other + "/deliveries"}, {"GET", other + "/deliveries/" + d.String()},
		{"POST", other + "/deliveries/" + d.String() + "/retry"},
	} {
		var body any
		if r.method == "PATCH" {
			body = map[string]any{"name": "hijacked"}
		}
		e.do(r.method, r.path, body).wantError(t, 404, "not_found", "")
	}
	if hooks := e.do("GET", "/api/projects/"+uuid.NewString()+"/webhooks", nil).want(t, 200)["webhooks"].([]any); len(hooks) != 0 {
		t.Errorf("another project lists %d webhooks", len(hooks))
	}
	if got := e.do("GET", "/webhooks/"+id, nil).want(t, 200); got["name"] != created["name"] {
		t.Errorf("webhook changed through another project: %v", got)
	}
}

func TestWebhooks_MalformedIDsAreBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.do("GET", "/api/projects/not-a-uuid/webhooks", nil).wantError(t, 400, "invalid_field", "project_id:")
	e.do("GET", "/webhooks/42", nil).wantError(t, 400, "invalid_field", "id:")
	e.do("GET", "/webhooks/"+uuid.NewString()+"/deliveries/nope", nil).wantError(t, 400, "invalid_field", "delivery_id:")
}

func TestWebhooks_RegenerateSecretKeepsOldOneForGracePeriod(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	created := e.createWebhook("https://x.example/in", nil)
	id, old := created["id"].(string), created["secret"].(string)

	got := e.do("POST", "/webhooks/"+id+"/regenerate-secret", nil).want(t, http.StatusOK)
	fresh, _ := got["secret"].(string)
	if !strings.HasPrefix(fresh, "whsec_") || fresh == old {
		t.Fatalf("regenerate returned secret %q (old %q)", fresh, old)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.webhooks, jsonb_array_elements(previous_secrets) p
		WHERE id = $1 AND secret = $2 AND jsonb_array_length(previous_secrets) = 1 AND p ->> 'secret' = $3
		AND (p ->> 'expires_at')::timestamptz BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'`,
		id, fresh, old); n != 1 {
		t.Fatalf("old secret not kept in previous_secrets for the grace period")
	}
	if strings.Contains(string(e.do("GET", "/webhooks/"+id, nil).body), fresh) {
		t.Fatalf("GET leaks the new secret")
	}
	e.do("POST", "/webhooks/"+uuid.NewString()+"/regenerate-secret", nil).wantError(t, 404, "not_found", "webhook")
}

func TestWebhooks_RegenerateSecretKeepsRecentSecretsAndPrunesExpiredOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	created := e.createWebhook("https://x.example/in", nil)
	id := created["id"].(string)
	retired := []string{created["secret"].(string)}
	regenerate := func() string {
		return e.do("POST", "/webhooks/"+id+"/regenerate-secret", nil).want(t, http.StatusOK)["secret"].(string)
	}
	previous := func() []string {
		var list []string
		if err := e.pool.QueryRow(t.Context(), `SELECT hookrelay.valid_previous_secrets(previous_secrets)
			FROM hookrelay.webhooks WHERE id = $1`, id).Scan(&list); err != nil {
			t.Fatal(err)
		}
		return list
	}
	for range 6 {
		retired = append(retired, regenerate())
	}
	// Seven secrets so far: the current one and the six it replaced, of
	// which the five most recently retired still sign, newest first.
	want := []string{retired[5], retired[4], retired[3], retired[2], retired[1]}
	if got := previous(); !slices.Equal(got, want) {
		t.Fatalf("previous secrets after 6 regenerations = %q, want the 5 most recent %q", got, want)
	}

	// Once their grace periods end, the next regeneration drops them.
	e.exec(`UPDATE hookrelay.webhooks SET previous_secrets = (
		SELECT jsonb_agg(p || jsonb_build_object('expires_at', now() - interval '1 second'))
		FROM jsonb_array_elements(previous_secrets) p) WHERE id = $1`, id)
	current := retired[6]
	regenerate()
	if got := previous(); !slices.Equal(got, []string{current}) {
		t.Fatalf("previous secrets after the others expired = %q, want only %q", got, current)
	}
	if n := e.count(`SELECT jsonb_array_length(previous_secrets) FROM hookrelay.webhooks WHERE id = $1`, id); n != 1 {
		t.Fatalf("previous_secrets holds %d entries, want 1 (expired ones pruned)", n)
	}
}

// Custom header values are write-only, like the secret: every answer shows
// the names with a mask; sending the mask back keeps the stored value, a new
// value replaces it, and a mask with nothing stored behind it is refused.
func TestWebhooks_HeaderValuesAreWriteOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	created := e.createWebhook("https://x.example/in", func(m map[string]any) {
		m["headers"] = map[string]string{"Authorization": "Bearer s3cr3t-one", "X-Api-Key": "k3y-two", "X-Team": "ops"}
	})
	id := created["id"].(string)
	stored := func() map[string]string {
		var h map[string]string
		if err := e.pool.QueryRow(t.Context(), `SELECT headers FROM hookrelay.webhooks WHERE id = $1`, id).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, r := range []response{
		e.do("GET", "/webhooks/"+id, nil), e.do("GET", "/webhooks", nil),
		e.do("PATCH", "/webhooks/"+id, map[string]any{"name": "Renamed"}),
	} {
		for _, v := range []string{"s3cr3t-one", "k3y-two", "ops"} {
			if strings.Contains(string(r.body), v) {
				t.Fatalf("an answer shows the header value %q: %s", v, r.body)
			}
		}
	}

	// What a client read, sent back with one value changed.
	read := e.do("GET", "/webhooks/"+id, nil).want(t, http.StatusOK)["headers"].(map[string]any)
	read["X-Team"] = "platform"
	e.do("PATCH", "/webhooks/"+id, map[string]any{"headers": read}).want(t, http.StatusOK)
	want := map[string]string{"Authorization": "Bearer s3cr3t-one", "X-Api-Key": "k3y-two", "X-Team": "platform"}
	if got := stored(); !maps.Equal(got, want) {
		t.Fatalf("stored headers after sending the masks back: %v, want %v", got, want)
	}

	e.do("PATCH", "/webhooks/"+id, map[string]any{"headers": map[string]string{"X-New": "********"}}).
		wantError(t, 400, "invalid_field", "headers:")
	e.do("POST", "/webhooks", validWebhook("https://x.example/in", func(m map[string]any) {
		m["headers"] = map[string]string{"Authorization": "********"}
	})).wantError(t, 400, "invalid_field", "headers:")
	if got := stored(); !maps.Equal(got, want) {
		t.Fatalf("a refused PATCH changed the headers: %v", got)
	}
}

// A PATCH that changes nothing leaves the webhook as it is, updated_at too.
func TestWebhooks_PatchThatChangesNothingKeepsUpdatedAt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	created := e.createWebhook("https://x.example/in", nil)
	id := created["id"].(string)
	for _, body := range []any{map[string]any{}, map[string]any{"name": created["name"]}} {
		got := e.do("PATCH", "/webhooks/"+id, body).want(t, http.StatusOK)
		if got["updated_at"] != created["updated_at"] {
			t.Fatalf("PATCH %v moved updated_at from %v to %v", body, created["updated_at"], got["updated_at"])
		}
	}
}
