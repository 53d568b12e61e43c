package api_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// pageIDs lists the delivery ids of a list response and its next cursor.
func pageIDs(t *testing.T, m map[string]any) (ids []string, next string) {
	t.Helper()
	for _, d := range m["deliveries"].([]any) {
		ids = append(ids, d.(map[string]any)["id"].(string))
	}
	next, _ = m["next_cursor"].(string)
	return ids, next
}

func TestDeliveries_PaginationIsStableWhenNewDeliveriesArrive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hook := e.createWebhook("https://x.example/in", nil)["id"].(string)
	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	// Oldest first; three share a timestamp so the id breaks the tie.
	var want []string
	for _, at := range []time.Duration{0, time.Second, time.Second, time.Second, 2 * time.Second, 3 * time.Second} {
		want = append([]string{e.insertDelivery(hook, base.Add(at), "delivered").String()}, want...)
	}
	// want is newest first except within the tie, which the API orders by id DESC.
	var got []string
	first := e.do("GET", "/webhooks/"+hook+"/deliveries?limit=2", nil).want(t, http.StatusOK)
	ids, next := pageIDs(t, first)
	got = append(got, ids...)
	// New deliveries arrive between pages; they must not shift the pages.
	for range 3 {
		e.insertDelivery(hook, time.Now(), "pending")
	}
	for next != "" {
		page := e.do("GET", "/webhooks/"+hook+"/deliveries?limit=2&cursor="+url.QueryEscape(next), nil).want(t, http.StatusOK)
		ids, next = pageIDs(t, page)
		got = append(got, ids...)
	}
	if len(got) != len(want) {
		t.Fatalf("paged through %d deliveries, want the %d that existed at the first page: %v", len(got), len(want), got)
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("delivery %s returned twice", id)
		}
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("delivery %s skipped by pagination", id)
		}
	}
	if got[0] != want[0] || got[1] != want[1] || got[5] != want[5] {
		t.Errorf("not newest first: got %v want %v", got, want)
	}
	all := e.do("GET", "/webhooks/"+hook+"/deliveries", nil).want(t, http.StatusOK)
	if ids, next := pageIDs(t, all); len(ids) != 9 || next != "" {
		t.Errorf("default page: %d deliveries, next %q; want 9 and none", len(ids), next)
	}
}

func TestDeliveries_ListFiltersByStatusAndRejectsBadQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hook := e.createWebhook("https://x.example/in", nil)["id"].(string)
	failed := e.insertDelivery(hook, time.Now(), "failed").String()
	e.insertDelivery(hook, time.Now(), "delivered")
	ids, _ := pageIDs(t, e.do("GET", "/webhooks/"+hook+"/deliveries?status=failed", nil).want(t, http.StatusOK))
	if len(ids) != 1 || ids[0] != failed {
		t.Fatalf("status=failed returned %v, want [%s]", ids, failed)
	}
	for q, field := range map[string]string{
		"status=lost": "status:", "limit=0": "limit:", "limit=101": "limit:", "limit=ten": "limit:",
		"cursor=!!!": "cursor:", "cursor=bm90LWEtY3Vyc29y": "cursor:",
	} {
		e.do("GET", "/webhooks/"+hook+"/deliveries?"+q, nil).wantError(t, 400, "invalid_field", field)
	}
	e.do("GET", "/webhooks/"+uuid.NewString()+"/deliveries", nil).wantError(t, 404, "not_found", "webhook")
}

func TestDeliveries_DetailHasPayloadAndAttemptLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hook := e.createWebhook("https://x.example/in", nil)["id"].(string)
	d := e.insertDelivery(hook, time.Now(), "delivered")
	e.exec(`INSERT INTO hookrelay.delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_body)
		VALUES ($1, 1, now() - interval '1 minute', 10012.5, NULL, 'timeout after 10s', NULL),
		       ($1, 2, now(), 42.25, 200, NULL, 'ok')`, d)

	got := e.do("GET", "/webhooks/"+hook+"/deliveries/"+d.String(), nil).want(t, http.StatusOK)
	for _, k := range []string{"id", "event_id", "event_type", "status", "attempts", "max_attempts", "created_at",
		"delivered_at", "next_attempt_at", "last_response_status", "last_error", "payload", "attempt_log"} {
		if _, ok := got[k]; !ok {
			t.Errorf("delivery detail lacks %q", k)
		}
	}
	log, _ := got["attempt_log"].([]any)
	if len(log) != 2 {
		t.Fatalf("attempt_log has %d entries, want 2: %v", len(log), got["attempt_log"])
	}
	a1, a2 := log[0].(map[string]any), log[1].(map[string]any)
	if a1["attempt"] != 1.0 || a1["error"] != "timeout after 10s" || a1["status_code"] != nil {
		t.Errorf("attempt 1: %v", a1)
	}
	if a2["status_code"] != 200.0 || a2["duration_ms"] != 42.25 || a2["response_body"] != "ok" || a2["started_at"] == nil {
		t.Errorf("attempt 2: %v", a2)
	}
	if p, _ := got["payload"].(map[string]any); p["id"] != "x" {
		t.Errorf("payload %v", got["payload"])
	}
	list := e.do("GET", "/webhooks/"+hook+"/deliveries", nil).want(t, http.StatusOK)["deliveries"].([]any)
	if item := list[0].(map[string]any); item["payload"] != nil || item["attempt_log"] != nil {
		t.Errorf("list items carry detail fields: %v", item)
	}

	other := e.createWebhook("https://x.example/other", nil)["id"].(string)
	e.do("GET", "/webhooks/"+other+"/deliveries/"+d.String(), nil).wantError(t, 404, "not_found", "delivery")
	e.do("GET", "/webhooks/"+hook+"/deliveries/"+uuid.NewString(), nil).wantError(t, 404, "not_found", "delivery")
}

func TestDeliveries_RetryReplaysFinishedDeliveryAndMaps404And409(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hook := e.createWebhook("https://x.example/in", nil)["id"].(string)
	failed := e.insertDelivery(hook, time.Now(), "failed")
	pending := e.insertDelivery(hook, time.Now(), "pending")

	got := e.do("POST", "/webhooks/"+hook+"/deliveries/"+failed.String()+"/retry", nil).want(t, http.StatusAccepted)
	if got["status"] != "pending" || got["id"] != failed.String() {
		t.Errorf("retry answered %v", got)
	}
	entries, err := e.rdb.XRange(t.Context(), e.keys.Stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Values["delivery_id"] != failed.String() {
		t.Fatalf("stream holds %v, want the replayed delivery", entries)
	}
	e.do("POST", "/webhooks/"+hook+"/deliveries/"+pending.String()+"/retry", nil).wantError(t, 409, "not_replayable", "delivery_id:")
	e.do("POST", "/webhooks/"+hook+"/deliveries/"+uuid.NewString()+"/retry", nil).wantError(t, 404, "not_found", "delivery")
}

// encodeCursor builds a cursor the way a client could craft one.
func encodeCursor(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }

func TestDeliveries_CraftedCursorIsA400NeverA500OrTheFirstPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hook := e.createWebhook("https://x.example/in", nil)["id"].(string)
	e.insertDelivery(hook, time.Now().Add(-time.Minute), "delivered")
	id := uuid.NewString()
	year := func(y int) string { return strconv.FormatInt(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), 10) }
	now := time.Now().UnixMicro()
	for name, c := range map[string]string{
		"out of Postgres' range": encodeCursor("-300000000000000000." + id),
		"max int64":              encodeCursor("9223372036854775807." + id),
		"before 2000":            encodeCursor(year(1999) + "." + id),
		"far future":             encodeCursor(year(3000) + "." + id),
		"two days ahead":         encodeCursor(strconv.FormatInt(now+48*3600e6, 10) + "." + id),
		"sign":                   encodeCursor("+" + strconv.FormatInt(now, 10) + "." + id),
		"leading zero":           encodeCursor("0" + strconv.FormatInt(now, 10) + "." + id),
		"uuid in braces":         encodeCursor(strconv.FormatInt(now, 10) + ".{" + id + "}"),
		"uuid without hyphens":   encodeCursor(strconv.FormatInt(now, 10) + "." + strings.ReplaceAll(id, "-", "")),
		"uuid in upper case":     encodeCursor(strconv.FormatInt(now, 10) + "." + strings.ToUpper(id)),
		"nil uuid":               encodeCursor(strconv.FormatInt(now, 10) + "." + uuid.Nil.String()),
		"padded base64":          base64.URLEncoding.EncodeToString([]byte(strconv.FormatInt(now, 10) + "." + id + "x")),
		"standard base64":        base64.RawStdEncoding.EncodeToString([]byte("\xfb\xff." + id)),
		"trailing garbage":       encodeCursor(strconv.FormatInt(now, 10) + "." + id + ".x"),
		"no id":                  encodeCursor(strconv.FormatInt(now, 10)),
		"empty":                  "",
		"null":                   "null",
	} {
		t.Run(name, func(t *testing.T) {
			e.do("GET", "/webhooks/"+hook+"/deliveries?cursor="+url.QueryEscape(c), nil).wantError(t, 400, "invalid_field", "cursor:")
		})
	}
	e.do("GET", "/webhooks/"+hook+"/deliveries?cursor="+encodeCursor(strconv.FormatInt(now, 10)+"."+id)+"&cursor=x", nil).
		wantError(t, 400, "invalid_field", "cursor:")
	// A cursor of a moment inside the range is still a page.
	page := e.do("GET", "/webhooks/"+hook+"/deliveries?cursor="+encodeCursor(strconv.FormatInt(now, 10)+"."+id), nil).want(t, 200)
	if ids, _ := pageIDs(t, page); len(ids) != 1 {
		t.Fatalf("cursor of now: %d deliveries, want 1", len(ids))
	}
}

func TestDeliveries_DeletedWebhookDeliveriesAre404LikeTheList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hook := e.createWebhook("https://x.example/in", nil)["id"].(string)
	failed := e.insertDelivery(hook, time.Now(), "failed")
	e.do("DELETE", "/webhooks/"+hook, nil).want(t, http.StatusNoContent)
	row := func() string {
		var s string
		if err := e.pool.QueryRow(t.Context(), `SELECT d::text FROM hookrelay.deliveries d WHERE id = $1`, failed).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := row()

	e.do("GET", "/webhooks/"+hook+"/deliveries", nil).wantError(t, 404, "not_found", "webhook")
	e.do("GET", "/webhooks/"+hook+"/deliveries/"+failed.String(), nil).wantError(t, 404, "not_found", "webhook")
	e.do("POST", "/webhooks/"+hook+"/deliveries/"+failed.String()+"/retry", nil).wantError(t, 404, "not_found", "webhook")

	if after := row(); after != before {
		t.Fatalf("the refused retry changed the delivery row:\n%s\n%s", before, after)
	}
	if n, err := e.rdb.XLen(t.Context(), e.keys.Stream).Result(); err != nil || n != 0 {
		t.Fatalf("stream holds %d entries (%v) after a refused retry, want none", n, err)
	}
}
