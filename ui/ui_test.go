package ui_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

func TestUI_UnprotectedPageSaysSoAndListsProjectsWithWebhooks(t *testing.T) {
	e := newEnv(t, "")
	e.createWebhook(e.project, "Orders")
	b := e.browser()
	b.get("/ui/").want(t, http.StatusOK, "Unprotected", "development only", "/ui/p/"+e.project.String()+"/")
	b.get("/ui/login").want(t, http.StatusSeeOther)
}

func TestUI_SignInKeepsTheTokenInAStrictHttpOnlyCookie(t *testing.T) {
	e := newEnv(t, token)
	e.createWebhook(e.project, "Orders")
	b := e.browser()

	if p := b.get("/ui/"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/login" {
		t.Fatalf("signed out: %d to %q, want 303 to /ui/login", p.status, p.header.Get("Location"))
	}
	b.get("/ui/login").want(t, http.StatusOK, `name="token"`)
	b.signIn("wrong").want(t, http.StatusUnauthorized, "not valid")
	if strings.Contains(b.get("/ui/").body, "Unprotected") {
		t.Error("a protected dashboard says it is unprotected")
	}

	p := b.signIn(token).want(t, http.StatusSeeOther)
	cookie := p.header.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("session cookie %q is Secure over plain HTTP: the browser would drop it", cookie)
	}
	home := b.get("/ui/").want(t, http.StatusOK, e.project.String())
	if strings.Contains(home.body, token) {
		t.Error("the page shows the token")
	}

	b.do("POST", "/ui/logout", nil, "Sec-Fetch-Site", "same-origin").want(t, http.StatusSeeOther)
	b.get("/ui/").want(t, http.StatusSeeOther)
	b.get("/ui/api/projects").want(t, http.StatusUnauthorized)
}

func TestUI_CrossOriginRequestsThatChangeThingsAreRefused(t *testing.T) {
	e := newEnv(t, token)
	id, _ := e.createWebhook(e.project, "Orders")
	b := e.browser()
	b.signIn(token).want(t, http.StatusSeeOther)
	rotate := "/ui/api/projects/" + e.project.String() + "/webhooks/" + id + "/regenerate-secret"
	before := e.secret(id)

	for name, header := range map[string][]string{
		"another origin":               {"Origin", "https://evil.example"},
		"a cross-site fetch":           {"Sec-Fetch-Site", "cross-site", "Origin", e.url},
		"a same-site fetch":            {"Sec-Fetch-Site", "same-site"},
		"neither Origin nor Sec-Fetch": nil,
	} {
		if p := b.do("POST", rotate, nil, header...); p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, p.status)
		}
	}
	if e.secret(id) != before {
		t.Fatal("a refused request rotated the secret")
	}
	// The sign-in form is no way around it either.
	b.do("POST", "/ui/logout", nil, "Origin", "https://evil.example").want(t, http.StatusForbidden)

	b.do("POST", rotate, nil, "Origin", e.url).want(t, http.StatusOK, `"secret"`)
	if e.secret(id) == before {
		t.Fatal("a same-origin rotation did not rotate the secret")
	}
}

func TestUI_GetRequestsChangeNothing(t *testing.T) {
	e := newEnv(t, "")
	id, _ := e.createWebhook(e.project, "Orders")
	d := e.insertDelivery(e.project, id)
	base := "/ui/p/" + e.project.String() + "/webhooks/" + id
	apiBase := "/ui/api/projects/" + e.project.String() + "/webhooks/" + id
	before := e.snapshot()
	b := e.browser()
	for _, path := range []string{"/ui/", "/ui/p/" + e.project.String() + "/", base, base + "/deliveries/" + d,
		apiBase + "/regenerate-secret", apiBase + "/test", apiBase + "/deliveries/" + d + "/retry", "/ui/logout", "/ui/login"} {
		if p := b.get(path); p.status >= 500 {
			t.Errorf("GET %s: %d", path, p.status)
		}
	}
	if after := e.snapshot(); after != before {
		t.Errorf("GET requests changed the database:\nbefore %s\nafter  %s", before, after)
	}
}

func TestUI_ProjectKeySeesOnlyItsOwnProject(t *testing.T) {
	e := newEnv(t, token)
	mine, _ := e.createWebhook(e.project, "Mine")
	other := uuid.New()
	theirs, _ := e.createWebhook(other, "Theirs")
	key := e.jsonAPI("POST", "/api/keys", map[string]any{"name": "ui", "project_id": e.project.String()})["key"].(string)

	b := e.browser()
	b.signIn(key).want(t, http.StatusSeeOther)
	home := b.get("/ui/").want(t, http.StatusOK, "project key")
	if strings.Contains(home.body, other.String()) {
		t.Error("the picker shows another project to a project key")
	}
	b.get("/ui/p/"+e.project.String()+"/").want(t, http.StatusOK, "Mine", mine)
	for _, path := range []string{
		"/ui/p/" + other.String() + "/",
		"/ui/p/" + other.String() + "/webhooks/" + theirs,
		"/ui/p/" + e.project.String() + "/webhooks/" + theirs,
		"/ui/api/projects/" + other.String() + "/webhooks",
	} {
		if p := b.get(path); p.status != http.StatusNotFound || strings.Contains(p.body, "Theirs") {
			t.Errorf("GET %s: %d, want 404 and nothing of the other project: %.300s", path, p.status, p.body)
		}
	}
	b.get("/ui/api/keys").want(t, http.StatusNotFound)
}

func TestUI_PagesShowHealthDeliveriesAndAttemptsButNoSecretOrHeaderValue(t *testing.T) {
	e := newEnv(t, token)
	id, secret := e.createWebhook(e.project, "Orders")
	d := e.insertDelivery(e.project, id)
	b := e.browser()
	b.signIn(token).want(t, http.StatusSeeOther)
	base := "/ui/p/" + e.project.String() + "/"
	rotated := b.do("POST", "/ui/api/projects/"+e.project.String()+"/webhooks/"+id+"/regenerate-secret", nil,
		"Sec-Fetch-Site", "same-origin").want(t, http.StatusOK).body

	pages := []page{
		b.get("/ui/").want(t, http.StatusOK),
		b.get(base).want(t, http.StatusOK, "Orders", "active", "closed", "failed", "HTTP 503", "<time datetime="),
		b.get(base+"webhooks/"+id).want(t, http.StatusOK, "Authorization", "(value hidden)", d, "Rotate secret", "Send a test"),
		b.get(base+"webhooks/"+id+"?status=delivered").want(t, http.StatusOK, "No deliveries match these filters"),
		b.get(base+"deliveries?event_type=config.deployed").want(t, http.StatusOK, "Orders", d, `value="config.deployed"`),
		b.get(base+"webhooks/"+id+"/deliveries/"+d).want(t, http.StatusOK,
			"#1", "HTTP 503", "12 ms", "receiver is down for maintenance", // the attempt
			"&#34;environment&#34;: &#34;production&#34;", // the payload, indented
			"X-Agenta-Signature", "X-Agenta-Delivery", d, "Replay this delivery"),
	}
	for i, p := range pages {
		for _, never := range []string{secret, headerValue, token, strings.Split(strings.Split(rotated, `"secret":"`)[1], `"`)[0]} {
			if strings.Contains(p.body, never) {
				t.Errorf("page %d shows %q", i, never)
			}
		}
	}
	b.get(base+"webhooks/"+uuid.NewString()).want(t, http.StatusNotFound, "webhook")
	b.get("/ui/p/not-a-uuid/").want(t, http.StatusBadRequest, "project_id")
}

func TestUI_AssetsAreEmbeddedAndPagesForbidFramingAndForeignScripts(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	b.get("/ui/static/app.js").want(t, http.StatusOK, "localTimes")
	p := b.get("/ui/static/app.css").want(t, http.StatusOK, "@media")
	csp := b.get("/ui/").header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if p.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
}

// secret is a webhook's stored secret.
func (e *env) secret(id string) string {
	e.t.Helper()
	var s string
	if err := e.pool.QueryRow(context.Background(), `SELECT secret FROM hookrelay.webhooks WHERE id = $1`, id).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// snapshot is the text of every row the dashboard could change.
func (e *env) snapshot() string {
	e.t.Helper()
	var s string
	err := e.pool.QueryRow(context.Background(), `SELECT
		(SELECT coalesce(string_agg(w::text, ',' ORDER BY id), '') FROM hookrelay.webhooks w) ||
		(SELECT coalesce(string_agg(d::text, ',' ORDER BY id), '') FROM hookrelay.deliveries d) ||
		(SELECT count(*)::text FROM hookrelay.delivery_attempts)`).Scan(&s)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func TestUI_DeliveryListsFilterFindByIDAndPageWithTheAPIsCursor(t *testing.T) {
	e := newEnv(t, "")
	a, _ := e.createWebhook(e.project, "Orders")
	b, _ := e.createWebhook(e.project, "Invoices")
	first, second, third := e.insertDelivery(e.project, a), e.insertDelivery(e.project, b), e.insertDelivery(e.project, a)
	br := e.browser()
	list := "/ui/p/" + e.project.String() + "/deliveries"

	all := br.get(list).want(t, http.StatusOK, first, second, third, "Orders", "Invoices", `data-live="deliveries"`)
	if strings.Contains(all.body, "Older deliveries") {
		t.Error("one page of three has a next page")
	}
	found := br.get(list+"?id="+second).want(t, http.StatusOK, second, "Invoices")
	if strings.Contains(found.body, first) || strings.Contains(found.body, third) {
		t.Error("finding one delivery by id lists others")
	}
	br.get(list+"?since=yesterday").want(t, http.StatusBadRequest, "since")

	// The API's cursor pages the webhook's list, keeping the filter.
	hook := "/ui/p/" + e.project.String() + "/webhooks/" + a
	p1 := br.get(hook+"?status=failed&limit=1").want(t, http.StatusOK, third, "Older deliveries")
	next := strings.Split(strings.Split(p1.body, `rel="next" href="`)[1], `"`)[0]
	next = strings.ReplaceAll(next, "&amp;", "&")
	if !strings.Contains(next, "status=failed") || !strings.Contains(next, "cursor=") {
		t.Fatalf("next page link %q does not keep the filter and carry the cursor", next)
	}
	p2 := br.get(hook+next).want(t, http.StatusOK, first, "Newest")
	if strings.Contains(p2.body, third) || strings.Contains(p2.body, `data-live="deliveries"`) {
		t.Error("the second page repeats the first or refreshes itself")
	}
}

func TestUI_WebhookFormsNeverCarryHeaderValuesAndARecoveryShowsItsProgress(t *testing.T) {
	e := newEnv(t, "")
	id, _ := e.createWebhook(e.project, "Orders")
	e.insertDelivery(e.project, id)
	b := e.browser()
	hook := "/ui/p/" + e.project.String() + "/webhooks/" + id
	b.get("/ui/p/"+e.project.String()+"/").want(t, http.StatusOK, "Create webhook", `data-kind="headers"`)
	edit := b.get(hook).want(t, http.StatusOK, `data-method="PATCH"`, "Authorization: ********", "Recover")
	if strings.Contains(edit.body, headerValue) {
		t.Fatal("the edit form shows a custom header's value")
	}

	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	b.do("POST", "/ui/api/projects/"+e.project.String()+"/webhooks/"+id+"/recover",
		strings.NewReader(`{"since":"`+since+`","status":"failed"}`),
		"Sec-Fetch-Site", "same-origin", "Content-Type", "application/json").want(t, http.StatusAccepted, `"total":1`)
	testwait.For(t, 20*time.Second, "the recovery shows on the webhook's page", func() bool {
		return strings.Contains(b.get(hook).body, "<progress max=\"1\"")
	})
	// The edit form's masked value keeps the stored one.
	b.do("PATCH", "/ui/api/projects/"+e.project.String()+"/webhooks/"+id,
		strings.NewReader(`{"name":"Orders v2","headers":{"Authorization":"********"}}`),
		"Sec-Fetch-Site", "same-origin", "Content-Type", "application/json").want(t, http.StatusOK, "Orders v2")
	var stored string
	if err := e.pool.QueryRow(context.Background(), `SELECT headers->>'Authorization' FROM hookrelay.webhooks WHERE id = $1`, id).Scan(&stored); err != nil || stored != headerValue {
		t.Errorf("after an edit with the mask, the stored header is %q (%v), want it kept", stored, err)
	}
}

func TestUI_OverviewDrawsTheHourAndDayAndTheListShowsEachWebhooksSuccessRatio(t *testing.T) {
	e := newEnv(t, "")
	id, _ := e.createWebhook(e.project, "Orders")
	e.insertDelivery(e.project, id) // failed
	if _, err := e.pool.Exec(context.Background(), `UPDATE hookrelay.deliveries SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	e.insertDelivery(e.project, id)
	b := e.browser()
	p := b.get("/ui/p/"+e.project.String()+"/overview").want(t, http.StatusOK,
		`<svg class="chart"`, `class="bar-failed"`, "Last hour", "Last day", "0.0 %", "Pending backlog",
		"1 failed", "2 failed", `data-live="overview"`, "entries")
	if n := strings.Count(p.body, "<g><title>"); n != 60+96 {
		t.Errorf("%d bars, want 60 for the hour and 96 for the day", n)
	}
	b.get("/ui/p/"+e.project.String()+"/").want(t, http.StatusOK, "Success 24 h", `<td class="ratio">0.0 %</td>`)
}
