package sql_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	auditsql "github.com/hookrelay/hookrelay/sql"
)

func TestAll_ListsEveryAuditQueryWithItsParameters(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"consistency_check":        nil,
		"failed_deliveries":        {"since", "until", "project_id"},
		"failure_rate_by_endpoint": {"since", "until", "project_id"},
		"latency_percentiles":      {"since", "until", "project_id"},
		"retry_backlog":            {"project_id"},
		"stuck_deliveries":         {"older_than", "project_id"},
	}
	got := map[string][]string{}
	for _, q := range auditsql.All() {
		if q.File != q.Name+".sql" || q.Text == "" {
			t.Errorf("query %q: file %q, %d bytes of text", q.Name, q.File, len(q.Text))
		}
		got[q.Name] = q.Params
	}
	for name, params := range want {
		p, ok := got[name]
		if !ok {
			t.Errorf("query %s is missing", name)
		} else if !slices.Equal(p, params) {
			t.Errorf("query %s params = %v, want %v", name, p, params)
		}
	}
}

func TestGet_UnknownNameIsAnErrorNamingTheKnownOnes(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"nope", "../migrations/00001_schema", "", "failed_deliveries.sql"} {
		_, err := auditsql.Get(name)
		if err == nil || !strings.Contains(err.Error(), "unknown audit query") {
			t.Errorf("Get(%q) error = %v, want an unknown-query error", name, err)
		}
	}
	if _, err := auditsql.Get("nope"); err == nil || !strings.Contains(err.Error(), "retry_backlog") {
		t.Errorf("Get(nope) error = %v, want it to list the known queries", err)
	}
}

func TestRun_RefusesMissingOrUnknownParameters(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	q, err := auditsql.Get("failed_deliveries")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	for args, want := range map[*map[string]any]string{
		{"since": now, "until": now}:                                     `missing parameter "project_id"`,
		{"since": now, "until": now, "project_id": "", "projectid": "x"}: `unknown parameter "projectid"`,
	} {
		if _, err := q.Run(ctx, db.Pool, *args); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run(%v) error = %v, want %q", *args, err, want)
		}
	}
}

func TestRun_ValuesTravelAsParametersNotSQL(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	p := uuid.New()
	w := f.webhook(hook{Project: p, EventTypes: []string{"*"}, CreatedAt: day})
	f.delivery(delivery{Webhook: w, Project: p, Status: "failed", Codes: []int{500}, MaxAttempts: 1, EventCreatedAt: day.Add(time.Hour)})

	// A hostile project value is compared as a value; it is never run.
	hostile := "'; DROP TABLE hookrelay.deliveries; --"
	q, _ := auditsql.Get("failed_deliveries")
	if rows, err := q.Run(context.Background(), db.Pool, window(hostile)); err == nil {
		rows.Close()
		if rows.Err() == nil {
			t.Fatal("a non-uuid project_id was accepted")
		}
	}
	// Typed Go values work as well as strings: time.Time and uuid.UUID.
	if got := run[failedRow](t, db.Pool, "failed_deliveries", window(p.String())); len(got) != 1 {
		t.Fatalf("project as string: %d rows, want 1", len(got))
	}
	typed := map[string]any{"since": day, "until": day.Add(24 * time.Hour), "project_id": p}
	if got := run[failedRow](t, db.Pool, "failed_deliveries", typed); len(got) != 1 {
		t.Fatalf("project as uuid.UUID: %d rows, want 1", len(got))
	}
	if got := run[failedRow](t, db.Pool, "failed_deliveries", window("")); len(got) != 1 {
		t.Fatalf("deliveries table damaged or filter wrong: %d rows, want 1", len(got))
	}
}
