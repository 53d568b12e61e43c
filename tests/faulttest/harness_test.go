package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
func createWebhooks(t *testing.T, pool *pgxpool.Pool, base string) []webhook {
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
		err = pool.QueryRow(context.Background(), `INSERT INTO hookrelay.webhooks
			(project_id, name, url, secret, event_types, environment_name, is_active)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`,
			proj, hooks[i].path, base+hooks[i].path, secret, types, env, active).Scan(&hooks[i].id)
		if err != nil {
			t.Fatal(err)
		}
	}
	return hooks
}

type report struct {
	deliveries, receipts, duplicates int
	// unrecorded counts the requests the receiver got beyond the attempt
	// rows of their delivery: HTTP attempts whose outcome the workers threw
	// away. (A 2xx the worker did not see in time is recorded as its
	// timeout: an attempt row all the same.)
	unrecorded int
}

// errorLimit is how many errors of one kind verify reports one by one; the
// rest are counted, so that a fault that loses hundreds of deliveries fails
// with a readable message.
const errorLimit = 5

// limiter reports at most errorLimit errors per kind and counts the rest.
type limiter struct {
	t    *testing.T
	seen map[string]int
}

func (l *limiter) errorf(kind, format string, args ...any) {
	l.t.Helper()
	if l.seen[kind]++; l.seen[kind] <= errorLimit {
		l.t.Errorf(kind+": "+format, args...)
	}
}

func (l *limiter) flush() {
	l.t.Helper()
	for kind, n := range l.seen {
		if n > errorLimit {
			l.t.Errorf("%s: %d in all (%d shown above)", kind, n, errorLimit)
		}
	}
}

// verify checks the promise: every committed event reached every matching
// webhook with a valid signature; nothing from a rolled-back transaction was
// received; every delivery is terminal and agrees with its attempts.
func (c *cluster) verify(w written) report {
	t := c.t
	ctx := context.Background()
	lim := &limiter{t: t, seen: map[string]int{}}
	defer lim.flush()
	type delivery struct {
		ID, EventID uuid.UUID
		WebhookID   string
		Status      string
		OK          int // attempt rows with a 2xx status
		Rows        int // attempt rows
	}
	rows, _ := c.pool.Query(ctx, `SELECT d.id, d.event_id, d.webhook_id::text, d.status,
		(SELECT count(*) FROM hookrelay.delivery_attempts a WHERE a.delivery_id = d.id AND a.status_code BETWEEN 200 AND 299)::int,
		(SELECT count(*) FROM hookrelay.delivery_attempts a WHERE a.delivery_id = d.id)::int
		FROM hookrelay.deliveries d`)
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
			lim.errorf("two deliveries", "event %s has two deliveries to webhook %s", d.EventID, d.WebhookID)
		}
		got[key] = d
		if d.Status == "pending" {
			lim.errorf("not terminal", "delivery %s is still pending", d.ID)
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
				lim.errorf("LOST (no delivery row)", "committed event %s (%s, %s) has no delivery to %s", id, ev.typ, ev.env, h.path)
			}
		}
	}
	if len(ds) != want {
		t.Errorf("%d deliveries, want %d (committed events × matching webhooks)", len(ds), want)
	}

	r := report{deliveries: len(ds)}
	received := map[string]int{} // delivery id → verified receipts
	ok2xx := map[string]int{}
	receivedAt := map[string][]time.Time{}
	for _, req := range c.recv.Requests() {
		r.receipts++
		var body struct{ Data map[string]any }
		_ = json.Unmarshal(req.Body, &body)
		if m := marker(body.Data); w.rolledBack[m] {
			lim.errorf("rolled back but received", "received an event from a rolled-back transaction (marker %s)", m)
		}
		id := req.Header.Get("X-Agenta-Delivery")
		hook := hookOf[id]
		if hook.secret == "" {
			lim.errorf("unknown delivery", "received delivery %q that is not in the database", id)
			continue
		}
		// Verified as at receipt: a long run checks receipts minutes later.
		if err := signature.VerifyAt(req.Body, req.Header.Get("X-Agenta-Signature"), []string{hook.secret}, 0, req.At); err != nil {
			lim.errorf("bad signature", "delivery %s: signature does not verify: %v", id, err)
			continue
		}
		received[id]++
		receivedAt[id] = append(receivedAt[id], req.At)
		if req.Status/100 == 2 {
			ok2xx[id]++
		}
	}
	for _, d := range ds {
		id := d.ID.String()
		if received[id] == 0 {
			lim.errorf("LOST (never received)", "delivery %s (event %s) never reached the receiver", d.ID, d.EventID)
		}
		if n := ok2xx[id]; n > 1 {
			r.duplicates += n - 1
		}
		if n := received[id]; n > d.Rows {
			r.unrecorded += n - d.Rows
			if r.unrecorded <= 5 { // the first few are enough to tell why
				c.t.Logf("delivery %s: received at %v; its attempts: %s", id, receivedAt[id], c.describeAttempts(d.ID))
			}
		}
		if d.OK > ok2xx[id] {
			lim.errorf("2xx attempt never answered", "delivery %s has %d 2xx attempt rows but the receiver answered 2xx %d times", d.ID, d.OK, ok2xx[id])
		}
	}
	c.checkConsistency(lim)
	return r
}

// marker is the writer's marker in an event's data: its own field, or the
// deployed_by of the config.deployed trigger.
func marker(data map[string]any) string {
	for _, k := range []string{"marker", "deployed_by"} {
		if m, _ := data[k].(string); m != "" {
			return m
		}
	}
	return ""
}

// checkConsistency runs the audit consistency query, which must return nothing.
func (c *cluster) checkConsistency(lim *limiter) {
	q, err := auditsql.Get("consistency_check")
	if err != nil {
		c.t.Fatal(err)
	}
	rows, err := q.Run(context.Background(), c.pool, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		vals, _ := rows.Values()
		lim.errorf("consistency_check", "%v", vals)
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
}

// describeAttempts lists a delivery's attempt rows, for a failure report.
func (c *cluster) describeAttempts(id uuid.UUID) string {
	rows, err := c.pool.Query(context.Background(), `SELECT attempt, started_at, duration_ms,
		coalesce(status_code::text, ''), coalesce(error_class, ''), coalesce(error, '')
		FROM hookrelay.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, id)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			n                int
			at               time.Time
			ms               float64
			code, class, msg string
		)
		if err := rows.Scan(&n, &at, &ms, &code, &class, &msg); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("#%d %s %.0fms status=%s %s %s", n, at.Format(time.RFC3339Nano), ms, code, class, msg))
	}
	return strings.Join(out, "; ")
}
