package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// deployBody is a valid deploy request; mod may change it.
func deployBody(app, variant uuid.UUID, mod func(map[string]any)) map[string]any {
	b := map[string]any{
		"application_id":   app.String(),
		"application_slug": "support-bot",
		"variant_id":       variant.String(),
		"variant_slug":     "gpt-small",
		"params":           map[string]any{"temperature": 0.2, "prompt": "Be brief."},
		"commit_message":   "lower temperature",
		"environment":      "production",
		"deployed_by":      "ana@example.com",
	}
	if mod != nil {
		mod(b)
	}
	return b
}

func TestDeploy_EmitsExactlyOneConfigDeployedInTheDeployingTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	app, variant := uuid.New(), uuid.New()

	first := e.do("POST", "/configs/deploy", deployBody(app, variant, nil)).want(t, http.StatusCreated)
	if first["version"] != 1.0 || first["environment"] != "production" {
		t.Fatalf("first deploy answered %v", first)
	}
	var typ string
	var project uuid.UUID
	var data map[string]any
	err := e.pool.QueryRow(context.Background(), `SELECT event_type, project_id, data FROM hookrelay.outbox WHERE id = $1`,
		first["event_id"]).Scan(&typ, &project, &data)
	if err != nil {
		t.Fatalf("event_id %v is not an outbox row: %v", first["event_id"], err)
	}
	if typ != "config.deployed" || project != e.project {
		t.Errorf("event %s for project %s", typ, project)
	}
	v := data["variant"].(map[string]any)
	if v["version"] != 1.0 || v["slug"] != "gpt-small" || data["deployed_by"] != "ana@example.com" ||
		data["environment"].(map[string]any)["name"] != "production" {
		t.Errorf("event data %v", data)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.outbox`); n != 1 {
		t.Fatalf("%d outbox rows after one deploy, want 1", n)
	}

	second := e.do("POST", "/configs/deploy", deployBody(app, variant, func(m map[string]any) { delete(m, "params") })).want(t, http.StatusCreated)
	if second["version"] != 2.0 || second["event_id"] == first["event_id"] {
		t.Fatalf("second deploy answered %v", second)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay_example.environments WHERE config_id = $1`, second["config_id"]); n != 1 {
		t.Errorf("environment does not point at the new revision")
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.outbox WHERE event_type = 'config.deployed'`); n != 2 {
		t.Errorf("%d config.deployed rows after two deploys, want 2", n)
	}
	if got := testutil.ToFloat64(e.metrics.EventsEmitted); got != 2 {
		t.Errorf("events emitted metric %v, want 2", got)
	}
}

func TestDeploy_RejectedDeployEmitsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	app, variant := uuid.New(), uuid.New()
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	cases := []struct {
		name, body, code, prefix string
	}{
		{"missing application", mustJSON(deployBody(app, variant, func(m map[string]any) { delete(m, "application_id") })), "invalid_field", "application_id:"},
		{"bad variant id", mustJSON(deployBody(app, variant, set("variant_id", "v1"))), "invalid_field", "variant_id:"},
		{"empty environment", mustJSON(deployBody(app, variant, set("environment", ""))), "invalid_field", "environment:"},
		{"params not an object", mustJSON(deployBody(app, variant, set("params", []int{1}))), "invalid_field", "params:"},
		{"unknown field", mustJSON(deployBody(app, variant, set("version", 7))), "unknown_field", "version:"},
		{"NUL in params", strings.Replace(mustJSON(deployBody(app, variant, nil)), `"Be brief."`, `"\u0000"`, 1), "invalid_field", "params:"},
		{"number out of range", strings.Replace(mustJSON(deployBody(app, variant, nil)), `0.2`, `1e-20000`, 1), "invalid_field", "params:"},
		// 45 bytes sent, each number 131072 digits stored: the event's data is over the cap.
		{"event data over the cap as stored", mustJSON(deployBody(app, variant, set("params", json.RawMessage(`{"a":1e131071,"b":1e131071}`)))), "invalid_field", "params:"},
		{"malformed", `{"application_id":`, "invalid_json", "body:"},
	}
	for _, c := range cases {
		e.do("POST", "/configs/deploy", c.body).wantError(t, 400, c.code, c.prefix)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.outbox`) + e.count(`SELECT count(*) FROM hookrelay_example.configs`); n != 0 {
		t.Fatalf("rejected deploys left %d rows", n)
	}
}

func TestDeploy_VariantOfAnotherProjectIsAConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	app, variant := uuid.New(), uuid.New()
	e.do("POST", "/configs/deploy", deployBody(app, variant, nil)).want(t, http.StatusCreated)
	e.do("POST", "/api/projects/"+uuid.NewString()+"/configs/deploy", deployBody(app, variant, nil)).
		wantError(t, http.StatusConflict, "conflict", "variant_id:")
	if n := e.count(`SELECT count(*) FROM hookrelay.outbox`); n != 1 {
		t.Fatalf("%d outbox rows, want only the first deploy's", n)
	}
}

func TestDeploy_ConcurrentDeploysOfOneVariantTakeDistinctVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	app, variant := uuid.New(), uuid.New()
	const n = 6
	versions := make(chan float64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			env := "env-" + strconv.Itoa(i%2)
			r := e.do("POST", "/configs/deploy", deployBody(app, variant, func(m map[string]any) { m["environment"] = env }))
			if r.status != http.StatusCreated {
				t.Errorf("concurrent deploy: %d %s", r.status, r.body)
				return
			}
			var res struct{ Version float64 }
			_ = json.Unmarshal(r.body, &res)
			versions <- res.Version
		})
	}
	wg.Wait()
	close(versions)
	seen := map[float64]bool{}
	for v := range versions {
		if seen[v] || v < 1 || v > n {
			t.Errorf("version %v taken twice or out of 1..%d", v, n)
		}
		seen[v] = true
	}
	if c := e.count(`SELECT count(*) FROM hookrelay.outbox WHERE event_type = 'config.deployed'`); c != n {
		t.Errorf("%d events for %d deploys", c, n)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
