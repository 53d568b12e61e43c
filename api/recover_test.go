package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/jobs"
	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// startPipeline runs what the API's recoveries need on e's database and
// stream: a River client with deliver's workers, whose Redis client is
// jobsRedis (a test may wrap it), and a delivery worker on e.rdb. Both stop
// when the test ends.
func (e *env) startPipeline(jobsRedis redis.UniversalClient) {
	e.t.Helper()
	workers := river.NewWorkers()
	if err := deliver.AddWorkers(workers, e.pool, jobsRedis, deliver.Streams{Base: e.keys.Stream}, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	jc, err := jobs.New(e.pool, jobs.Config{Workers: workers, FetchPollInterval: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := deliver.NewWorker(e.pool, e.rdb, jc.River(), deliver.Config{
		Stream: e.keys.Stream, Group: e.keys.Group, Concurrency: 32,
		Send: httpsend.Config{Timeout: 5 * time.Second, AllowPrivate: true},
	}, nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range []interface {
		Start(context.Context) error
		Stop(context.Context) error
	}{jc, w} {
		if err := s.Start(e.t.Context()); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Stop(ctx)
		})
	}
}

// window is the recovery window the tests use: an hour ago, ten minutes long.
type window struct{ since, until time.Time }

func newWindow() window {
	since := time.Now().Add(-time.Hour).Truncate(time.Second)
	return window{since: since, until: since.Add(10 * time.Minute)}
}

// at is a time inside the window.
func (w window) at(minute int) time.Time { return w.since.Add(time.Duration(minute) * time.Minute) }

func (w window) body(mod func(map[string]any)) map[string]any {
	b := map[string]any{"since": w.since.Format(time.RFC3339), "until": w.until.Format(time.RFC3339)}
	if mod != nil {
		mod(b)
	}
	return b
}

// insertDeliveries writes n deliveries of webhookID with status at time at.
func (e *env) insertDeliveries(webhookID string, n int, at time.Time, status string) {
	e.t.Helper()
	e.exec(`INSERT INTO hookrelay.deliveries
		(event_id, webhook_id, project_id, event_type, payload, event_created_at, status, attempts, max_attempts, created_at, updated_at)
		SELECT gen_random_uuid(), $1, $2, 'config.deployed', '{"n": 1}', $3::timestamptz, $4, 1, 6, $3::timestamptz + g * interval '1 ms', $3::timestamptz
		FROM generate_series(1, $5) g`, webhookID, e.project, at, status, n)
}

// waitRecovery polls the recovery through the API until it is in state,
// checking on the way that done never goes back; it returns the last answer.
func (e *env) waitRecovery(path, state string, within time.Duration) map[string]any {
	e.t.Helper()
	var rec map[string]any
	last := -1.0
	testwait.Until(e.t, within, func() bool {
		rec = e.do("GET", path, nil).want(e.t, http.StatusOK)
		done := rec["done"].(float64)
		if done < last {
			e.t.Fatalf("done went back from %v to %v", last, done)
		}
		last = done
		return rec["state"] == state
	}, func() string { return "recovery is not " + state + ": " + toJSON(rec) })
	return rec
}

// receipts counts the requests rc received by delivery id.
func receipts(rc *testreceiver.Receiver) map[string]int {
	n := map[string]int{}
	for _, r := range rc.Requests() {
		n[r.Header.Get("X-Agenta-Delivery")]++
	}
	return n
}

// statuses returns the status of every delivery of webhookID, by id.
func (e *env) statuses(webhookID string) map[string]string {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id::text, status FROM hookrelay.deliveries WHERE webhook_id = $1`, webhookID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, s string
		if err := rows.Scan(&id, &s); err != nil {
			e.t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

func TestRecover_ResendsTheWindowsFailedAndSkippedDeliveriesAndNothingElse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rc := testreceiver.New(t)
	hook := e.createWebhook(rc.URL, nil)["id"].(string)
	other := e.createWebhook(rc.URL, nil)["id"].(string)
	w := newWindow()
	var want []uuid.UUID
	for i := range 3 {
		want = append(want, e.insertDelivery(hook, w.at(i+1), "failed"))
	}
	for i := range 2 {
		want = append(want, e.insertDelivery(hook, w.at(i+5), "skipped"))
	}
	untouched := map[uuid.UUID]string{
		e.insertDelivery(hook, w.at(2), "delivered"):                "delivered",
		e.insertDelivery(hook, w.at(3), "pending"):                  "pending",
		e.insertDelivery(hook, w.since.Add(-time.Second), "failed"): "failed", // before since
		e.insertDelivery(hook, w.until, "failed"):                   "failed", // until is excluded
		e.insertDelivery(other, w.at(4), "failed"):                  "failed", // another webhook
	}
	e.startPipeline(e.rdb)

	rec := e.do("POST", "/webhooks/"+hook+"/recover", w.body(nil)).want(t, http.StatusAccepted)
	if rec["total"] != 5.0 || rec["state"] != "running" || rec["webhook_id"] != hook {
		t.Fatalf("recovery %s, want running with total 5", toJSON(rec))
	}
	path := "/webhooks/" + hook + "/recoveries/" + rec["id"].(string)
	rec = e.waitRecovery(path, "done", 20*time.Second)
	if rec["total"] != 5.0 || rec["done"] != 5.0 || rec["finished_at"] == nil {
		t.Fatalf("finished recovery %s, want total = done = 5", toJSON(rec))
	}
	rc.WaitFor(t, 20*time.Second, "the five re-sent deliveries", func(r []testreceiver.Request) bool { return len(r) >= 5 })
	testwait.For(t, 10*time.Second, "the re-sent deliveries to be recorded delivered", func() bool {
		s := e.statuses(hook)
		for _, id := range want {
			if s[id.String()] != "delivered" {
				return false
			}
		}
		return true
	})
	got := receipts(rc)
	for _, id := range want {
		if got[id.String()] != 1 {
			t.Errorf("delivery %s received %d times, want once", id, got[id.String()])
		}
	}
	if len(got) != len(want) {
		t.Errorf("receiver got deliveries %v, want only the window's failed and skipped ones", got)
	}
	for id, status := range untouched {
		if s := e.count(`SELECT count(*) FROM hookrelay.deliveries WHERE id = $1 AND status = $2 AND attempts = 1 AND max_attempts = 6`, id, status); s != 1 {
			t.Errorf("delivery %s outside the recovery changed (want %s, 1 attempt of 6)", id, status)
		}
	}
	list := e.do("GET", "/webhooks/"+hook+"/recoveries", nil).want(t, http.StatusOK)["recoveries"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != rec["id"] {
		t.Fatalf("recoveries list %s, want the one recovery", toJSON(list))
	}
}

// gate holds every pipeline (a chunk's publish) of the client it hooks
// until the test lets one through.
type gate struct{ pass chan struct{} }

func (gate) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (g gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !isPublish(cmds) {
			return next(ctx, cmds)
		}
		select {
		case <-g.pass:
			return next(ctx, cmds)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// isPublish reports whether a pipeline is a publish (XADDs), not the
// client's own connection set-up.
func isPublish(cmds []redis.Cmder) bool { return len(cmds) > 0 && cmds[0].Name() == "xadd" }

func TestRecover_ProgressIsVisibleChunkByChunkAndReachesTotal(t *testing.T) {
	t.Parallel()
	g := gate{pass: make(chan struct{})}
	e, rc, rec, path := startLargeRecovery(t, g)
	if rec["total"] != float64(largeRecovery) || rec["done"] != 0.0 {
		t.Fatalf("recovery %s, want total %d, done 0", toJSON(rec), largeRecovery)
	}
	const n = largeRecovery
	for _, want := range []float64{deliver.RecoveryChunk, 2 * deliver.RecoveryChunk} {
		g.pass <- struct{}{} // one chunk's publish goes through
		var got map[string]any
		testwait.Until(t, 20*time.Second, func() bool {
			got = e.do("GET", path, nil).want(t, http.StatusOK)
			return got["done"] == want
		}, func() string { return "progress " + toJSON(got) })
		if got["state"] != "running" || got["total"] != float64(n) {
			t.Fatalf("mid-way recovery %s, want running with total %d", toJSON(got), n)
		}
	}
	g.pass <- struct{}{}
	e.waitRecoveredOnce(rc, path, 20*time.Second)
}

// largeRecovery is how many failed deliveries startLargeRecovery recovers:
// three chunks, the last one partial.
const largeRecovery = 2*deliver.RecoveryChunk + 200

// startLargeRecovery makes a webhook with largeRecovery failed deliveries in
// a window, runs the pipeline with its River client's Redis wrapped by hook,
// and starts recovering the window; it returns the recovery and its path.
func startLargeRecovery(t *testing.T, hook redis.Hook) (*env, *testreceiver.Receiver, map[string]any, string) {
	e := newEnv(t, nil)
	rc := testreceiver.New(t)
	id := e.createWebhook(rc.URL, nil)["id"].(string)
	w := newWindow()
	e.insertDeliveries(id, largeRecovery, w.at(1), "failed")
	jobsRedis := redis.NewClient(e.rdb.Options())
	t.Cleanup(func() { jobsRedis.Close() })
	jobsRedis.AddHook(hook)
	e.startPipeline(jobsRedis)
	rec := e.do("POST", "/webhooks/"+id+"/recover", w.body(nil)).want(t, http.StatusAccepted)
	return e, rc, rec, "/webhooks/" + id + "/recoveries/" + rec["id"].(string)
}

// waitRecoveredOnce waits, within bound, for the large recovery at path to
// be done with every delivery counted, then for the receiver to get them
// all, and checks that none was received twice; it returns the recovery.
func (e *env) waitRecoveredOnce(rc *testreceiver.Receiver, path string, bound time.Duration) map[string]any {
	e.t.Helper()
	rec := e.waitRecovery(path, "done", bound)
	if rec["done"] != float64(largeRecovery) || rec["total"] != float64(largeRecovery) {
		e.t.Fatalf("finished recovery %s, want total = done = %d", toJSON(rec), largeRecovery)
	}
	rc.WaitFor(e.t, 60*time.Second, "every re-sent delivery", func(r []testreceiver.Request) bool { return len(r) >= largeRecovery })
	for id, c := range receipts(rc) {
		if c != 1 {
			e.t.Fatalf("delivery %s received %d times, want once", id, c)
		}
	}
	return rec
}

func TestRecover_SameRequestTwiceSendsEachDeliveryOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rc := testreceiver.New(t)
	hook := e.createWebhook(rc.URL, nil)["id"].(string)
	w := newWindow()
	failed := e.insertDelivery(hook, w.at(1), "failed")
	skipped := e.insertDelivery(hook, w.at(2), "skipped")
	e.startPipeline(e.rdb)

	first := e.do("POST", "/webhooks/"+hook+"/recover", w.body(nil)).want(t, http.StatusAccepted)
	// The same window in another spelling of the same instants is the same request.
	again := e.do("POST", "/webhooks/"+hook+"/recover", map[string]any{
		"since": w.since.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano),
		"until": w.until.UTC().Format(time.RFC3339Nano),
	}).want(t, http.StatusOK)
	if again["id"] != first["id"] {
		t.Fatalf("second request made recovery %v, want the first, %v", again["id"], first["id"])
	}
	path := "/webhooks/" + hook + "/recoveries/" + first["id"].(string)
	e.waitRecovery(path, "done", 20*time.Second)
	rc.WaitFor(t, 20*time.Second, "both deliveries", func(r []testreceiver.Request) bool { return len(r) >= 2 })
	testwait.For(t, 10*time.Second, "both deliveries recorded delivered", func() bool {
		s := e.statuses(hook)
		return s[failed.String()] == "delivered" && s[skipped.String()] == "delivered"
	})
	// After it finished: still the same recovery, nothing new to work.
	done := e.do("POST", "/webhooks/"+hook+"/recover", w.body(nil)).want(t, http.StatusOK)
	if done["id"] != first["id"] || done["state"] != "done" {
		t.Fatalf("request after the recovery finished answered %s, want the first recovery, done", toJSON(done))
	}
	// Another request over the same deliveries finds none failed or skipped
	// any more: it is a new recovery that sends nothing.
	failedOnly := e.do("POST", "/webhooks/"+hook+"/recover", w.body(func(b map[string]any) { b["status"] = "failed" })).
		want(t, http.StatusAccepted)
	if failedOnly["total"] != 0.0 {
		t.Fatalf("recovery of deliveries already re-sent has total %v, want 0", failedOnly["total"])
	}
	e.waitRecovery("/webhooks/"+hook+"/recoveries/"+failedOnly["id"].(string), "done", 20*time.Second)
	if n := e.count(`SELECT count(*) FROM hookrelay.river_job WHERE kind = $1`, deliver.RecoverKind); n != 2 {
		t.Fatalf("%d recovery jobs, want 2 (one per recovery created)", n)
	}
	got := receipts(rc)
	if len(got) != 2 || got[failed.String()] != 1 || got[skipped.String()] != 1 {
		t.Fatalf("receipts by delivery id %v, want each of the two once", got)
	}
	list := e.do("GET", "/webhooks/"+hook+"/recoveries", nil).want(t, http.StatusOK)["recoveries"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["id"] != failedOnly["id"] {
		t.Fatalf("recoveries %s, want two, newest first", toJSON(list))
	}
}

func TestRecover_BadInputIsRefusedNamingTheFieldAndCreatesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	hook := e.createWebhook("https://x.example/in", nil)["id"].(string)
	disabled := e.createWebhook("https://x.example/in", func(b map[string]any) { b["is_active"] = false })["id"].(string)
	w := newWindow()
	e.insertDelivery(hook, w.at(1), "failed")
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	for _, c := range []struct {
		name, hook   string
		body         any
		status       int
		code, prefix string
	}{
		{"missing since", hook, map[string]any{"until": w.until.Format(time.RFC3339)}, 400, "invalid_field", "since:"},
		{"null since", hook, map[string]any{"since": nil}, 400, "invalid_field", "since:"},
		{"since not a time", hook, map[string]any{"since": "yesterday"}, 400, "invalid_field", "since:"},
		{"since a number", hook, map[string]any{"since": 1700000000}, 400, "invalid_field", "since:"},
		{"since after until", hook, w.body(func(b map[string]any) { b["since"], b["until"] = b["until"], b["since"] }), 400, "invalid_field", "until:"},
		{"since equal to until", hook, w.body(func(b map[string]any) { b["until"] = b["since"] }), 400, "invalid_field", "until:"},
		{"until without zone", hook, w.body(func(b map[string]any) { b["until"] = "2026-01-02T15:04:05" }), 400, "invalid_field", "until:"},
		{"since in the future", hook, map[string]any{"since": future}, 400, "invalid_field", "since:"},
		{"unknown status", hook, w.body(func(b map[string]any) { b["status"] = "delivered" }), 400, "invalid_field", "status:"},
		{"status as an array", hook, w.body(func(b map[string]any) { b["status"] = []string{"failed"} }), 400, "invalid_field", "status:"},
		{"unknown field", hook, w.body(func(b map[string]any) { b["statuses"] = "failed" }), 400, "unknown_field", "statuses:"},
		{"field in another case", hook, map[string]any{"Since": w.since.Format(time.RFC3339)}, 400, "unknown_field", "Since:"},
		{"empty body", hook, "", 400, "invalid_json", "body:"},
		{"disabled webhook", disabled, w.body(nil), 409, "conflict", "is_active:"},
		{"unknown webhook", uuid.NewString(), w.body(nil), 404, "not_found", "webhook"},
		{"webhook id not a uuid", "nope", w.body(nil), 400, "invalid_field", "id:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.do("POST", "/webhooks/"+c.hook+"/recover", c.body).wantError(t, c.status, c.code, c.prefix)
		})
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.recoveries`); n != 0 {
		t.Fatalf("%d recoveries after refused requests, want 0", n)
	}
	if n := e.count(`SELECT count(*) FROM hookrelay.river_job`); n != 0 {
		t.Fatalf("%d River jobs after refused requests, want 0", n)
	}
	e.do("GET", "/webhooks/"+hook+"/recoveries/"+uuid.NewString(), nil).wantError(t, http.StatusNotFound, "not_found", "recovery")
	e.do("GET", "/webhooks/"+hook+"/recoveries/nope", nil).wantError(t, http.StatusBadRequest, "invalid_field", "recovery_id:")
	e.do("GET", "/webhooks/"+uuid.NewString()+"/recoveries", nil).wantError(t, http.StatusNotFound, "not_found", "webhook")
}

func TestRecover_ProjectKeyReachesOnlyItsOwnProjectsRecoveries(t *testing.T) {
	t.Parallel()
	e := newKeyEnv(t)
	admin := bearer(testToken)
	mine := e.do("POST", "/webhooks", validWebhook("https://x.example/in", nil), admin...).want(t, http.StatusCreated)["id"].(string)
	w := newWindow()
	e.insertDelivery(mine, w.at(1), "failed")
	rec := e.do("POST", "/webhooks/"+mine+"/recover", w.body(nil), admin...).want(t, http.StatusAccepted)

	other := uuid.New()
	key := e.createKey(testToken, map[string]any{"name": "theirs", "project_id": other})["key"].(string)
	auth := bearer(key)
	base := "/api/projects/" + e.project.String() + "/webhooks/" + mine
	// The other project's key, on this project's path or on its own with this
	// project's webhook: a 404 either way, and nothing created.
	e.do("POST", base+"/recover", w.body(func(b map[string]any) { b["status"] = "failed" }), auth...).
		wantError(t, http.StatusNotFound, "not_found", "project")
	e.do("GET", base+"/recoveries/"+rec["id"].(string), nil, auth...).wantError(t, http.StatusNotFound, "not_found", "project")
	e.do("GET", base+"/recoveries", nil, auth...).wantError(t, http.StatusNotFound, "not_found", "project")
	theirs := "/api/projects/" + other.String() + "/webhooks/" + mine
	e.do("POST", theirs+"/recover", w.body(func(b map[string]any) { b["status"] = "failed" }), auth...).
		wantError(t, http.StatusNotFound, "not_found", "webhook")
	e.do("GET", theirs+"/recoveries/"+rec["id"].(string), nil, auth...).wantError(t, http.StatusNotFound, "not_found", "webhook")
	if n := e.count(`SELECT count(*) FROM hookrelay.recoveries`); n != 1 {
		t.Fatalf("%d recoveries after another project's requests, want 1", n)
	}
}

// refuser fails every pipeline (a chunk's publish) of the client it hooks
// after the first while on is set, as a Redis that went away would.
type refuser struct {
	on              atomic.Bool
	passed, refused atomic.Int64
}

func (*refuser) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*refuser) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f *refuser) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !isPublish(cmds) {
			return next(ctx, cmds)
		}
		if f.on.Load() && f.passed.Load() >= 1 {
			f.refused.Add(1)
			return errors.New("connection refused (test)")
		}
		f.passed.Add(1)
		return next(ctx, cmds)
	}
}

// redisBackBound is how long a recovery may take to finish once Redis
// accepts again: the job's snooze backoff (at most 5 s, ±20 %) plus a
// fetch and three chunks.
const redisBackBound = 10 * time.Second

func TestRecover_RedisRefusingAChunkLosesNothingAndFinishesSoonAfterItReturns(t *testing.T) {
	t.Parallel()
	f := &refuser{}
	f.on.Store(true)
	e, rc, _, path := startLargeRecovery(t, f)
	testwait.For(t, 20*time.Second, "the second chunk's publish to be refused three times", func() bool { return f.refused.Load() >= 3 })
	mid := e.do("GET", path, nil).want(t, http.StatusOK)
	if mid["done"] != float64(deliver.RecoveryChunk) || mid["state"] != "running" {
		t.Fatalf("recovery while Redis refuses %s, want running with the first chunk done", toJSON(mid))
	}
	back := time.Now()
	f.on.Store(false)
	e.waitRecoveredOnce(rc, path, redisBackBound)
	t.Logf("done %s after Redis accepted again (%d refusals)", time.Since(back).Round(time.Millisecond), f.refused.Load())
	if got := receipts(rc); len(got) != largeRecovery {
		t.Fatalf("receiver got %d distinct deliveries, want %d", len(got), largeRecovery)
	}
}

// toJSON shows v in a failure message.
func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// TestRecover_EnableReEnablesADisabledWebhookAndRecoversItsWindow: an
// auto-disabled webhook is re-enabled and its skipped deliveries re-sent
// by one call; without enable it is a 409 that changes nothing.
func TestRecover_EnableReEnablesADisabledWebhookAndRecoversItsWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rc := testreceiver.New(t)
	hook := e.createWebhook(rc.URL, nil)["id"].(string)
	w := newWindow()
	e.insertDeliveries(hook, 4, w.at(1), "skipped")
	e.exec(`UPDATE hookrelay.webhooks SET is_active = false, disabled_reason = 'endpoint failed without a success since then',
		disabled_at = now() WHERE id = $1`, hook)
	e.exec(`INSERT INTO hookrelay.webhook_health (webhook_id, circuit, consecutive_failures, failing_since)
		VALUES ($1, 'open', 40, now() - interval '5 days')`, hook)
	e.startPipeline(e.rdb)

	e.do("POST", "/webhooks/"+hook+"/recover", w.body(nil)).wantError(t, http.StatusConflict, "conflict", "is_active:")
	if n := e.count(`SELECT count(*) FROM hookrelay.recoveries`); n != 0 {
		t.Fatalf("a refused recovery stored %d rows", n)
	}
	rec := e.do("POST", "/webhooks/"+hook+"/recover", w.body(func(b map[string]any) { b["enable"] = true })).want(t, http.StatusAccepted)
	e.waitRecovery("/webhooks/"+hook+"/recoveries/"+rec["id"].(string), "done", 20*time.Second)
	got := e.do("GET", "/webhooks/"+hook, nil).want(t, http.StatusOK)
	health := got["health"].(map[string]any)
	if got["is_active"] != true || got["disabled_reason"] != nil || health["circuit"] != "closed" {
		t.Fatalf("after recover with enable: is_active %v, disabled_reason %v, health %v", got["is_active"], got["disabled_reason"], health)
	}
	rc.WaitFor(t, 20*time.Second, "the four skipped deliveries", func(r []testreceiver.Request) bool { return len(r) >= 4 })
}
