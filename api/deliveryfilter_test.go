package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestDeliveries_FiltersByEventTypeEventIDAndTimeAcrossTheProject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a := e.createWebhook("https://x.example/a", nil)["id"].(string)
	b := e.createWebhook("https://x.example/b", nil)["id"].(string)
	gone := e.createWebhook("https://x.example/gone", nil)["id"].(string)
	now := time.Now()
	old := e.insertDelivery(a, now.Add(-2*time.Hour), "failed").String()
	recent := e.insertDelivery(a, now.Add(-time.Minute), "delivered").String()
	other := e.insertDelivery(b, now.Add(-30*time.Second), "failed").String()
	e.insertDelivery(gone, now, "failed")
	e.do("DELETE", "/webhooks/"+gone, nil).want(t, http.StatusNoContent)
	e.exec(`UPDATE hookrelay.deliveries SET event_type = 'config.committed' WHERE id = $1`, other)
	var eventID string
	if err := e.pool.QueryRow(t.Context(), `SELECT event_id::text FROM hookrelay.deliveries WHERE id = $1`, recent).Scan(&eventID); err != nil {
		t.Fatal(err)
	}

	since := url.QueryEscape(now.Add(-time.Hour).UTC().Format(time.RFC3339))
	for q, want := range map[string][]string{
		"/deliveries":                                   {other, recent, old},
		"/deliveries?status=failed":                     {other, old},
		"/deliveries?event_type=config.committed":       {other},
		"/deliveries?event_id=" + eventID:               {recent},
		"/deliveries?since=" + since:                    {other, recent},
		"/webhooks/" + a + "/deliveries?since=" + since: {recent},
		"/webhooks/" + a + "/deliveries?until=" + since: {old},
	} {
		m := e.do("GET", q, nil).want(t, http.StatusOK)
		ids, _ := pageIDs(t, m)
		if !slices.Equal(ids, want) {
			t.Errorf("GET %s: %v, want %v", q, ids, want)
		}
		for _, d := range m["deliveries"].([]any) {
			if d.(map[string]any)["webhook_id"] == gone {
				t.Errorf("GET %s lists a deleted webhook's delivery", q)
			}
		}
	}
	for q, field := range map[string]string{
		"event_id=x": "event_id:", "since=yesterday": "since:",
		"since=" + since + "&until=" + since: "until:",
	} {
		e.do("GET", "/deliveries?"+q, nil).wantError(t, 400, "invalid_field", field)
	}
	// The cursor pages within the filters.
	page := e.do("GET", "/deliveries?status=failed&limit=1", nil).want(t, http.StatusOK)
	ids, next := pageIDs(t, page)
	rest, _ := pageIDs(t, e.do("GET", "/deliveries?status=failed&limit=1&cursor="+next, nil).want(t, http.StatusOK))
	if !slices.Equal(append(ids, rest...), []string{other, old}) {
		t.Errorf("paged failed deliveries %v then %v, want %s then %s", ids, rest, other, old)
	}
}
