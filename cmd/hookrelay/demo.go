package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/receiver"
	"github.com/hookrelay/hookrelay/internal/service"
	"github.com/hookrelay/hookrelay/migrations"
	"github.com/hookrelay/hookrelay/signature"
)

// demoProject is the demo's own project: it touches no other rows, and each
// run removes what the previous run left.
var demoProject = uuid.MustParse("00000000-0000-4000-8000-00000000de70")

// demoTimeout bounds the whole walkthrough, demoStopTimeout its shutdown.
const (
	demoTimeout     = 30 * time.Second
	demoStopTimeout = 10 * time.Second
)

// runDemo migrates, starts relay, worker and API in this process plus a local
// receiver, creates a webhook and deploys a config through the API, then
// prints the signed request the receiver got and its audit row.
func runDemo(ctx context.Context, _ []string) error {
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	d, err := connect(ctx, true)
	if err != nil {
		return fmt.Errorf("%w (the demo needs Postgres and Redis on localhost; see README)", err)
	}
	defer d.close()
	// The walkthrough prints its own story; only warnings and errors are logged.
	d.log = newLogger(max(d.cfg.LogLevel, slog.LevelWarn))
	out := os.Stdout
	fmt.Fprintln(out, "hookrelay demo")

	if _, err := migrations.Apply(ctx, d.pool); err != nil {
		return err
	}
	fmt.Fprintln(out, "  migrated", redactURL(d.cfg.DatabaseURL))
	if err := cleanDemoRows(ctx, d); err != nil {
		return err
	}

	// The receiver is on loopback, so this process must allow private targets.
	d.cfg.AllowPrivateNetworks = true
	d.cfg.APIAddr = "127.0.0.1:0"
	got := make(chan receiver.Request, 4)
	recv, err := receiver.Start(receiver.Options{
		Respond: func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) },
		Observe: func(r receiver.Request) {
			select {
			case got <- r:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	defer recv.Close()
	hookURL := recv.URL + "/hooks/hookrelay"
	fmt.Fprintln(out, "  receiver listening on", hookURL)

	reg := metrics.NewRegistry()
	svcs, err := pipeline(d, reg)
	if err != nil {
		return err
	}
	apiSrv := newAPI(d, reg)
	runCtx, stopServices := context.WithCancel(ctx)
	defer stopServices()
	done := make(chan error, 1)
	go func() { done <- service.Run(runCtx, d.log, demoStopTimeout, append(svcs, apiSrv)...) }()
	select {
	case <-apiSrv.Started(): // started last, so everything runs
	case err := <-done:
		return fmt.Errorf("start services: %w", err)
	}
	base := "http://" + apiSrv.Addr() + "/api/projects/" + demoProject.String()
	fmt.Fprintln(out, "  relay, worker and API running; API on http://"+apiSrv.Addr())

	c := demoClient{token: d.cfg.APIToken}
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	err = c.post(ctx, base+"/webhooks", map[string]any{
		"name": "demo receiver", "url": hookURL, "event_types": []string{"config.deployed"},
	}, &hook)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	fmt.Fprintf(out, "  created webhook %s (secret %s…, returned once)\n", hook.ID, hook.Secret[:10])

	var deployed struct {
		ConfigID string `json:"config_id"`
		Version  int    `json:"version"`
		EventID  string `json:"event_id"`
	}
	deployedAt := time.Now()
	err = c.post(ctx, base+"/configs/deploy", map[string]any{
		"application_id": uuid.NewString(), "application_slug": "support-bot",
		"variant_id": uuid.NewString(), "variant_slug": "default",
		"params":         map[string]any{"model": "gpt-4o-mini", "temperature": 0.2},
		"commit_message": "lower temperature for production", "environment": "production",
		"deployed_by": "demo@hookrelay.dev",
	}, &deployed)
	if err != nil {
		return fmt.Errorf("deploy config: %w", err)
	}
	fmt.Fprintf(out, "  deployed config %s v%d to production (event %s)\n\n", deployed.ConfigID, deployed.Version, deployed.EventID)

	var r receiver.Request
	select {
	case r = <-got:
	case <-ctx.Done():
		return errors.New("the receiver got nothing within the demo's time limit")
	}
	printReceived(out, r, d.cfg.HeaderPrefix, hook.Secret, r.At.Sub(deployedAt))
	if err := printAudit(ctx, d, out, r.Header.Get(d.cfg.HeaderPrefix+"-Delivery")); err != nil {
		return err
	}
	stopServices()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintf(out, "\nAudit it yourself:\n  psql %q -c \"SELECT id, status, attempts, delivered_at FROM hookrelay.deliveries WHERE project_id = '%s'\"\n",
		redactURL(d.cfg.DatabaseURL), demoProject)
	return nil
}

func cleanDemoRows(ctx context.Context, d *deps) error {
	for _, table := range []string{"hookrelay.deliveries", "hookrelay.webhooks", "hookrelay.outbox",
		"hookrelay_example.environments", "hookrelay_example.configs"} {
		if _, err := d.pool.Exec(ctx, "DELETE FROM "+table+" WHERE project_id = $1", demoProject); err != nil {
			return fmt.Errorf("remove the previous demo's rows from %s: %w", table, err)
		}
	}
	return nil
}

func printReceived(out io.Writer, r receiver.Request, prefix, secret string, after time.Duration) {
	fmt.Fprintf(out, "receiver got POST /hooks/hookrelay %s after the deploy:\n", after.Round(time.Millisecond))
	for _, k := range []string{"Content-Type", "User-Agent"} {
		fmt.Fprintf(out, "  %s: %s\n", k, r.Header.Get(k))
	}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-") || strings.HasPrefix(k, "Webhook-") {
			val := v[0]
			if strings.Contains(k, "Signature") && len(val) > 40 {
				val = val[:40] + "…"
			}
			fmt.Fprintf(out, "  %s: %s\n", k, val)
		}
	}
	sig := r.Header.Get(prefix + "-Signature")
	if err := signature.Verify(r.Body, sig, []string{secret}, 0); err != nil {
		fmt.Fprintln(out, "  signature: NOT VERIFIED:", err)
	} else {
		fmt.Fprintln(out, "  signature: verified with the webhook's secret (signature.Verify)")
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, r.Body, "  ", "  ") == nil {
		fmt.Fprintf(out, "  body:\n  %s\n", pretty.String())
	}
}

func printAudit(ctx context.Context, d *deps, out io.Writer, deliveryID string) error {
	id, err := uuid.Parse(deliveryID)
	if err != nil {
		return fmt.Errorf("delivery header %q: %w", deliveryID, err)
	}
	// The worker records the attempt before it acknowledges; wait until it shows.
	deadline := time.Now().Add(10 * time.Second)
	var status string
	var attempts int
	var code *int
	var dur *float64
	for {
		err := d.pool.QueryRow(ctx, `SELECT d.status, d.attempts, a.status_code, a.duration_ms
			FROM hookrelay.deliveries d LEFT JOIN hookrelay.delivery_attempts a ON a.delivery_id = d.id AND a.attempt = 1
			WHERE d.id = $1`, id).Scan(&status, &attempts, &code, &dur)
		if err != nil {
			return fmt.Errorf("read audit row: %w", err)
		}
		if status != "pending" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(out, "\naudit row (hookrelay.deliveries %s):\n  status %s, attempts %d", id, status, attempts)
	if code != nil && dur != nil {
		fmt.Fprintf(out, ", attempt 1 answered %d in %.1f ms", *code, *dur)
	}
	fmt.Fprintln(out)
	if status != "delivered" {
		return fmt.Errorf("delivery %s is %s, want delivered", id, status)
	}
	return nil
}

type demoClient struct{ token string }

func (c demoClient) post(ctx context.Context, url string, body, into any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, raw)
	}
	return json.Unmarshal(raw, into)
}
