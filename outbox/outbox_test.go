package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/outbox"
)

// emitters are the three ways to emit, each inside the given transaction.
var emitters = map[string]func(ctx context.Context, tx pgx.Tx, project uuid.UUID) error{
	"go": func(ctx context.Context, tx pgx.Tx, project uuid.UUID) error {
		_, err := outbox.Emit(ctx, tx, outbox.Event{Type: "thing.happened", ProjectID: project, Data: map[string]any{"n": 1}})
		return err
	},
	"sql": func(ctx context.Context, tx pgx.Tx, project uuid.UUID) error {
		_, err := tx.Exec(ctx, `SELECT hookrelay.emit('thing.happened', $1, '{"n": 1}')`, project)
		return err
	},
	"trigger": func(ctx context.Context, tx pgx.Tx, project uuid.UUID) error {
		return deployConfig(ctx, tx, project, "production")
	},
}

// deployConfig saves a config revision and points an environment at it, as
// an application would; the example trigger emits config.deployed.
func deployConfig(ctx context.Context, tx pgx.Tx, project uuid.UUID, env string) error {
	var configID, appID uuid.UUID
	appID = uuid.New()
	err := tx.QueryRow(ctx, `
		INSERT INTO hookrelay_example.configs
			(project_id, application_id, application_slug, variant_id, variant_slug, version, params, commit_message, created_by)
		VALUES ($1, $2, 'chatbot', gen_random_uuid(), 'default', 3, '{"temperature": 0.2}', 'lower temperature', 'ada')
		RETURNING id`, project, appID).Scan(&configID)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO hookrelay_example.environments (project_id, application_id, name, config_id, deployed_by)
		VALUES ($1, $2, $3, $4, 'ada')`, project, appID, env, configID)
	return err
}

func countEvents(t *testing.T, pool *pgxpool.Pool, project uuid.UUID) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(),
		"SELECT count(*) FROM hookrelay.outbox WHERE project_id = $1", project).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An event exists if and only if its transaction commits, whichever path emitted it.
func TestEmit_EventExistsIffTheTransactionCommits(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	for name, emit := range emitters {
		for _, commit := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/commit=%v", name, commit), func(t *testing.T) {
				project := uuid.New()
				tx, err := db.Pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for range 3 {
					if err := emit(ctx, tx, project); err != nil {
						t.Fatal(err)
					}
				}
				if n := countEvents(t, db.Pool, project); n != 0 {
					t.Fatalf("%d events visible to others before the transaction ended, want 0", n)
				}
				end, want := tx.Rollback, 0
				if commit {
					end, want = tx.Commit, 3
				}
				if err := end(ctx); err != nil {
					t.Fatal(err)
				}
				if n := countEvents(t, db.Pool, project); n != want {
					t.Fatalf("%d events after 3 emissions (commit=%v), want %d", n, commit, want)
				}
			})
		}
	}
}

func TestEmit_ReturnsTheEventID(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	project := uuid.New()
	id, err := outbox.Emit(ctx, db.Pool, outbox.Event{Type: "a.b", ProjectID: project, Data: json.RawMessage(`{"k":"v"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var typ, k string
	err = db.Pool.QueryRow(ctx, "SELECT event_type, data->>'k' FROM hookrelay.outbox WHERE id = $1", id).Scan(&typ, &k)
	if err != nil {
		t.Fatalf("event %s not found: %v", id, err)
	}
	if typ != "a.b" || k != "v" {
		t.Fatalf("stored (%q, %q), want (a.b, v)", typ, k)
	}
}

func TestEmit_InvalidEventIsRefused(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	project := uuid.New()
	big := `{"x":"` + strings.Repeat("a", outbox.MaxDataBytes) + `"}`
	cases := []struct {
		name  string
		event outbox.Event
		want  string
	}{
		{"empty type", outbox.Event{Type: " ", ProjectID: project, Data: map[string]int{}}, "type must not be empty"},
		{"long type", outbox.Event{Type: strings.Repeat("t", 129), ProjectID: project, Data: map[string]int{}}, "type is longer"},
		{"no project", outbox.Event{Type: "a", Data: map[string]int{}}, "project_id"},
		{"array", outbox.Event{Type: "a", ProjectID: project, Data: []int{1}}, "data must be a JSON object"},
		{"string", outbox.Event{Type: "a", ProjectID: project, Data: json.RawMessage(`"s"`)}, "data must be a JSON object"},
		{"nil", outbox.Event{Type: "a", ProjectID: project}, "data must be a JSON object"},
		{"broken", outbox.Event{Type: "a", ProjectID: project, Data: json.RawMessage(`{"a":`)}, "data must be a JSON object"},
		{"too large", outbox.Event{Type: "a", ProjectID: project, Data: json.RawMessage(big)}, "more than the 262144 allowed"},
	}
	for _, c := range cases {
		_, err := outbox.Emit(ctx, db.Pool, c.event)
		if !errors.Is(err, outbox.ErrInvalidEvent) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Emit error = %v, want ErrInvalidEvent mentioning %q", c.name, err, c.want)
		}
	}
	if n := countEvents(t, db.Pool, project); n != 0 {
		t.Fatalf("%d events written by refused emissions, want 0", n)
	}
}

func TestSQLEmit_InvalidEventIsRefused(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	project := uuid.New()
	big := `{"x":"` + strings.Repeat("a", outbox.MaxDataBytes) + `"}`
	cases := []struct {
		name, typ, data, want string
	}{
		{"empty type", "", `{}`, "event_type must not be empty"},
		{"array", "a", `[1]`, "data must be a JSON object, got array"},
		{"number", "a", `3`, "data must be a JSON object, got number"},
		{"too large", "a", big, "more than the 262144 allowed"},
	}
	for _, c := range cases {
		_, err := db.Pool.Exec(ctx, "SELECT hookrelay.emit($1, $2, $3::jsonb)", c.typ, project, c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: emit() error = %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if n := countEvents(t, db.Pool, project); n != 0 {
		t.Fatalf("%d events written by refused emissions, want 0", n)
	}
}

func TestTrigger_DeployingAConfigEmitsConfigDeployed(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	project := uuid.New()
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return deployConfig(ctx, tx, project, "production") })
	if err != nil {
		t.Fatal(err)
	}
	var typ string
	var data map[string]any
	err = db.Pool.QueryRow(ctx, "SELECT event_type, data FROM hookrelay.outbox WHERE project_id = $1", project).Scan(&typ, &data)
	if err != nil {
		t.Fatal(err)
	}
	if typ != "config.deployed" {
		t.Fatalf("event type %q, want config.deployed", typ)
	}
	for _, key := range []string{"application", "variant", "environment", "params", "deployed_by", "commit_message"} {
		if _, ok := data[key]; !ok {
			t.Errorf("payload lacks %q: %v", key, data)
		}
	}
	if env := data["environment"].(map[string]any)["name"]; env != "production" {
		t.Errorf("environment.name = %v, want production", env)
	}
	if v := data["variant"].(map[string]any)["version"]; v != float64(3) {
		t.Errorf("variant.version = %v, want 3", v)
	}
}

func TestEmitRowChange_TurnsAnyTableIntoEvents(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	project := uuid.New()
	_, err := db.Pool.Exec(ctx, `
		CREATE TABLE public.orders (id int PRIMARY KEY, project_id uuid NOT NULL, total int);
		CREATE TRIGGER orders_events AFTER INSERT OR UPDATE OR DELETE ON public.orders
			FOR EACH ROW EXECUTE FUNCTION hookrelay.emit_row_change('order.changed', 'project_id');`)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO public.orders VALUES (1, $1, 10)",
		"UPDATE public.orders SET total = 20 WHERE project_id = $1",
		"DELETE FROM public.orders WHERE project_id = $1",
	} {
		if _, err := db.Pool.Exec(ctx, q, project); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Pool.Query(ctx, `SELECT data->>'op', (data->'row'->>'total')::int, data->'old'->>'total'
		FROM hookrelay.outbox WHERE project_id = $1 AND event_type = 'order.changed' ORDER BY seq`, project)
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		Op    string
		Total int
		Old   *string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[change])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Op != "insert" || got[1].Op != "update" || got[1].Total != 20 ||
		got[1].Old == nil || *got[1].Old != "10" || got[2].Op != "delete" || got[2].Total != 20 {
		t.Fatalf("events = %+v, want insert(10), update(10→20), delete(20)", got)
	}
}
