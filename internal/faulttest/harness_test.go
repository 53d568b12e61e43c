package faulttest

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/testdb"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/signature"
	auditsql "github.com/hookrelay/hookrelay/sql"
)

var project = uuid.MustParse("0f0f0f0f-0000-4000-8000-00000000fa17")

type webhook struct {
	id, secret, path string
	match            func(eventType, env string) bool
}

// createWebhooks subscribes four endpoints; two match some events, one is
// inactive and one belongs to another project, so fan-out rules are exercised.
func createWebhooks(t *testing.T, db *testdb.DB, base string) []webhook {
	hooks := []webhook{
		{path: "/all", match: func(string, string) bool { return true }},
		{path: "/deployed-prod", match: func(typ, env string) bool { return typ == "config.deployed" && env == "production" }},
		{path: "/inactive", match: func(string, string) bool { return false }},
		{path: "/other-project", match: func(string, string) bool { return false }},
	}
	for i := range hooks {
		secret, err := signature.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		hooks[i].secret = secret
		types, env, active, proj := []string{"*"}, (*string)(nil), true, project
		switch hooks[i].path {
		case "/deployed-prod":
			prod := "production"
			types, env = []string{"config.deployed"}, &prod
		case "/inactive":
			active = false
		case "/other-project":
			proj = uuid.New()
		}
		err = db.Pool.QueryRow(context.Background(), `INSERT INTO hookrelay.webhooks
			(project_id, name, url, secret, event_types, environment_name, is_active)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`,
			proj, hooks[i].path, base+hooks[i].path, secret, types, env, active).Scan(&hooks[i].id)
		if err != nil {
			t.Fatal(err)
		}
	}
	return hooks
}

type event struct {
	marker, typ, env string
}

type written struct {
	committed  map[uuid.UUID]event
	rolledBack map[string]bool // markers
}

// write emits n events from 8 concurrent writers over about duration,
// through Go, SQL and the trigger in turn, rolling back about 15 %, with a
// random delay between the insert and the commit. midpoint runs once, halfway.
func (c *cluster) write(n int, duration time.Duration, midpoint func()) written {
	w := written{committed: map[uuid.UUID]event{}, rolledBack: map[string]bool{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	var mid sync.Once
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if i == n/2 {
					mid.Do(midpoint)
				}
				if d := time.Until(start.Add(time.Duration(i) * duration / time.Duration(n))); d > 0 {
					time.Sleep(d) // pacing, not synchronisation
				}
				ev := event{marker: uuid.NewString(), env: []string{"production", "staging"}[rng.IntN(2)]}
				rollback := rng.Float64() < 0.15
				id, err := c.emitOne(i%3, &ev, rollback, time.Duration(rng.IntN(3000))*time.Microsecond)
				if err != nil {
					c.t.Errorf("writer %d, event %d: %v", g, i, err)
					return
				}
				mu.Lock()
				if rollback {
					w.rolledBack[ev.marker] = true
				} else {
					w.committed[id] = ev
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return w
}

func (c *cluster) emitOne(path int, ev *event, rollback bool, delay time.Duration) (uuid.UUID, error) {
	ctx := context.Background()
	tx, err := c.db.Pool.Begin(ctx)
	if err != nil {
		return uuid.Nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	var id uuid.UUID
	data := map[string]any{"marker": ev.marker, "environment": map[string]string{"name": ev.env}}
	switch path {
	case 0:
		ev.typ = "thing.happened"
		id, err = outbox.Emit(ctx, tx, outbox.Event{Type: ev.typ, ProjectID: project, Data: data})
	case 1:
		ev.typ = "thing.happened"
		err = tx.QueryRow(ctx, "SELECT hookrelay.emit($1, $2, $3)", ev.typ, project, data).Scan(&id)
	default:
		ev.typ = "config.deployed"
		id, err = deployConfig(ctx, tx, ev)
	}
	if err != nil {
		return uuid.Nil, err
	}
	time.Sleep(delay) // hold the transaction open so commits land out of order
	if rollback {
		return id, tx.Rollback(ctx)
	}
	return id, tx.Commit(ctx)
}

// deployConfig is the trigger path: the example tables emit config.deployed.
func deployConfig(ctx context.Context, tx pgx.Tx, ev *event) (uuid.UUID, error) {
	app := uuid.New()
	var cfg, id uuid.UUID
	err := tx.QueryRow(ctx, `INSERT INTO hookrelay_example.configs
		(project_id, application_id, application_slug, variant_id, variant_slug, version, params)
		VALUES ($1, $2, 'app', gen_random_uuid(), 'v', 1, '{}') RETURNING id`, project, app).Scan(&cfg)
	if err != nil {
		return uuid.Nil, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO hookrelay_example.environments (project_id, application_id, name, config_id, deployed_by)
		VALUES ($1, $2, $3, $4, $5)`, project, app, ev.env, cfg, ev.marker)
	if err != nil {
		return uuid.Nil, err
	}
	err = tx.QueryRow(ctx, `SELECT id FROM hookrelay.outbox WHERE project_id = $1 AND data->>'deployed_by' = $2`,
		project, ev.marker).Scan(&id)
	return id, err
}

type report struct {
	deliveries, receipts, duplicates int
}

// verify checks the promise: every committed event reached every matching
// webhook with a valid signature; nothing from a rolled-back transaction was
// received; every delivery is terminal and agrees with its attempts.
func (c *cluster) verify(w written) report {
	t := c.t
	ctx := context.Background()
	type delivery struct {
		ID, EventID uuid.UUID
		WebhookID   string
		Status      string
	}
	rows, _ := c.db.Pool.Query(ctx, `SELECT id, event_id, webhook_id::text, status FROM hookrelay.deliveries`)
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[delivery])
	if err != nil {
		t.Fatal(err)
	}
	hookByID := map[string]webhook{}
	for _, h := range c.hooks {
		hookByID[h.id] = h
	}
	got := map[[2]string]delivery{}
	hookOf := map[string]webhook{} // delivery id → its webhook
	for _, d := range ds {
		hookOf[d.ID.String()] = hookByID[d.WebhookID]
		key := [2]string{d.EventID.String(), d.WebhookID}
		if _, dup := got[key]; dup {
			t.Errorf("event %s has two deliveries to webhook %s", d.EventID, d.WebhookID)
		}
		got[key] = d
		if d.Status == "pending" {
			t.Errorf("delivery %s is still pending", d.ID)
		}
	}
	want := 0
	for id, ev := range w.committed {
		for _, h := range c.hooks {
			if !h.match(ev.typ, ev.env) {
				continue
			}
			want++
			if _, ok := got[[2]string{id.String(), h.id}]; !ok {
				t.Errorf("LOST: committed event %s (%s, %s) has no delivery to %s", id, ev.typ, ev.env, h.path)
			}
		}
	}
	if len(ds) != want {
		t.Errorf("%d deliveries, want %d (committed events × matching webhooks)", len(ds), want)
	}

	r := report{deliveries: len(ds)}
	received := map[string]int{} // delivery id → verified receipts
	ok2xx := map[string]int{}
	for _, req := range c.recv.Requests() {
		r.receipts++
		var body struct{ Data map[string]any }
		_ = json.Unmarshal(req.Body, &body)
		for _, k := range []string{"marker", "deployed_by"} {
			if m, _ := body.Data[k].(string); w.rolledBack[m] {
				t.Errorf("received an event from a rolled-back transaction (marker %s)", m)
			}
		}
		id := req.Header.Get("X-Agenta-Delivery")
		hook := hookOf[id]
		if hook.secret == "" {
			t.Errorf("received delivery %q that is not in the database", id)
			continue
		}
		// Verified as at receipt: a long run checks receipts minutes later.
		if err := signature.VerifyAt(req.Body, req.Header.Get("X-Agenta-Signature"), []string{hook.secret}, 0, req.At); err != nil {
			t.Errorf("delivery %s: signature does not verify: %v", id, err)
			continue
		}
		received[id]++
		if req.Status/100 == 2 {
			ok2xx[id]++
		}
	}
	for _, d := range ds {
		if received[d.ID.String()] == 0 {
			t.Errorf("LOST: delivery %s (event %s) never reached the receiver", d.ID, d.EventID)
		}
		if n := ok2xx[d.ID.String()]; n > 1 {
			r.duplicates += n - 1
		}
	}
	c.checkConsistency()
	return r
}

// checkConsistency runs the audit consistency query, which must return nothing.
func (c *cluster) checkConsistency() {
	q, err := auditsql.Get("consistency_check")
	if err != nil {
		c.t.Fatal(err)
	}
	rows, err := q.Run(context.Background(), c.db.Pool, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		vals, _ := rows.Values()
		c.t.Errorf("consistency_check: %v", vals)
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
}
