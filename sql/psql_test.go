package sql_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	auditsql "github.com/hookrelay/hookrelay/sql"
)

// TestPsql_EveryFileRunsAsIsAndAgreesWithGo runs each .sql file through the
// real psql binary, with -v variables, and checks that it returns the same
// rows as the Go code running the embedded text.
func TestPsql_EveryFileRunsAsIsAndAgreesWithGo(t *testing.T) {
	t.Parallel()
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("the psql binary is required on PATH to prove the audit files run with psql as they are (install postgresql-client): %v", err)
	}
	db := testdb.New(t)
	f := fixtures{t, db.Pool}
	h := plantHealthy(f)
	// One problem, so that every query has rows to compare.
	f.delivery(delivery{Webhook: h.deploys, Project: h.project, Status: "failed", Codes: []int{500}, EventCreatedAt: h.start.Add(time.Minute)})

	since, until := h.start.Add(-time.Hour), time.Now().Add(time.Hour)
	for _, project := range []string{h.project.String(), ""} {
		values := map[string]string{
			"since":      since.Format(time.RFC3339Nano),
			"until":      until.Format(time.RFC3339Nano),
			"older_than": "1 minute",
			"project_id": project, // psql -v project_id= sets it empty: every project
		}
		for _, q := range auditsql.All() {
			t.Run(q.Name+"/project="+project, func(t *testing.T) {
				comparePsqlWithGo(t, psql, db, q, values)
			})
		}
	}
}

func comparePsqlWithGo(t *testing.T, psql string, db *testdb.DB, q auditsql.Query, values map[string]string) {
	t.Helper()
	onDisk, err := os.ReadFile(q.File)
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != q.Text {
		t.Fatalf("embedded text of %s differs from the file", q.File)
	}
	args := []string{db.URL, "-X", "-q", "--csv", "-t", "-v", "ON_ERROR_STOP=1"}
	goArgs := map[string]any{}
	for _, p := range q.Params {
		v, ok := values[p]
		if !ok {
			t.Fatalf("%s takes parameter %q, which this test has no value for", q.File, p)
		}
		args = append(args, "-v", p+"="+v)
		goArgs[p] = v
	}
	args = append(args, "-f", q.File)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(psql, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("psql -f %s: %v\n%s", q.File, err, stderr.String())
	}
	records, err := csv.NewReader(&stdout).ReadAll()
	if err != nil {
		t.Fatalf("parse psql output: %v\n%s", err, stdout.String())
	}
	var fromPsql []string
	for _, r := range records {
		fromPsql = append(fromPsql, r[0])
	}
	fromGo := firstColumn(t, q, db, goArgs)
	if len(fromGo) == 0 {
		t.Fatalf("%s returned no rows; the fixture should give every query some", q.Name)
	}
	if fmt.Sprint(fromPsql) != fmt.Sprint(fromGo) {
		t.Fatalf("psql returned %v\nGo returned   %v", fromPsql, fromGo)
	}
}

func firstColumn(t *testing.T, q auditsql.Query, db *testdb.DB, args map[string]any) []string {
	t.Helper()
	rows, err := q.Run(context.Background(), db.Pool, args)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		switch x := v[0].(type) {
		case [16]byte:
			out = append(out, uuid.UUID(x).String())
		default:
			out = append(out, fmt.Sprint(x))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
