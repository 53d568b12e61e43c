package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
)

// chromiumPath is Debian's chromium, which the browser tests drive.
const chromiumPath = "/usr/bin/chromium"

// screenshotDir is where the browser tests save their screenshots:
// $HOOKRELAY_ARTIFACTS/ui when set (CI keeps them), else the test's
// temporary directory.
func screenshotDir(t *testing.T) string {
	dir := t.TempDir()
	if a := os.Getenv("HOOKRELAY_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "ui")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newBrowser starts headless Chromium for t; the test fails, saying what to
// install, when it is missing: a browser test never passes by not running.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s: install it with `apt-get install -y chromium` "+
			"(.ci/run does so when it is missing): %v", chromiumPath, err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// stack is a real `hookrelay run` (relay, worker, API and dashboard) over a
// private database and stream, delivering to a loopback receiver.
type stack struct {
	t     *testing.T
	url   string
	db    *testdb.DB
	recv  *testreceiver.Receiver
	token string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	db := testdb.New(t)
	_, keys := testredis.New(t)
	recv := testreceiver.New(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testbin.FreePort(t))
	testbin.Start(t, "run", map[string]string{
		"DATABASE_URL": db.URL, "HOOKRELAY_STREAM": keys.Stream, "HOOKRELAY_GROUP": keys.Group,
		"HOOKRELAY_API_ADDR": addr, "HOOKRELAY_API_TOKEN": token, "HOOKRELAY_ALLOW_PRIVATE_NETWORKS": "true",
		"HOOKRELAY_MAX_ATTEMPTS": "1", "HOOKRELAY_POLL_INTERVAL": "100ms", "HOOKRELAY_LOG_LEVEL": "warn",
	}, "run")
	s := &stack{t: t, url: "http://" + addr, db: db, recv: recv, token: token}
	testwait.For(t, 30*time.Second, "hookrelay run answers /readyz", func() bool {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// get decodes GET path of the JSON API.
func (s *stack) get(path string, out any) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		s.t.Fatal(err)
	}
}

func TestBrowser_SignInSeeHealthOpenAFailedDeliveryReplayItAndRotateTheSecret(t *testing.T) {
	start := time.Now()
	ctx := newBrowser(t)
	s := startStack(t)
	shots := screenshotDir(t)
	e := &env{t: t, pool: s.db.Pool, url: s.url, token: token, project: uuid.New()}
	hook, secret := e.createWebhookTo(e.project, s.recv.URL+"/hook", "Deploys")

	// One event, while the receiver is down: it fails (one attempt allowed).
	s.recv.SetBehavior(testreceiver.Behavior{Fail: 1})
	if _, err := s.db.Pool.Exec(context.Background(), `SELECT hookrelay.emit('config.deployed', $1, '{"environment":"production"}')`, e.project); err != nil {
		t.Fatal(err)
	}
	deliveries := "/api/projects/" + e.project.String() + "/webhooks/" + hook + "/deliveries"
	var d deliveryList
	testwait.For(t, 30*time.Second, "the delivery fails", func() bool {
		s.get(deliveries, &d)
		return len(d.Deliveries) == 1 && d.Deliveries[0].Status == "failed"
	})
	delivery := d.Deliveries[0].ID

	b := &tab{t: t, ctx: ctx, shots: shots}
	projectLink := fmt.Sprintf(`a[href="/ui/p/%s/"]`, e.project)
	webhookRow := fmt.Sprintf(`tr.webhook[data-webhook="%s"]`, hook)
	deliveryRow := fmt.Sprintf(`tr.delivery[data-delivery="%s"]`, delivery)

	// Sign in, pick the project, see the webhook's health.
	b.do(chromedp.Navigate(s.url+"/ui/"), chromedp.WaitVisible(`#token`))
	b.shot("login.png")
	b.do(chromedp.SendKeys(`#token`, token), chromedp.Submit(`#token`),
		chromedp.WaitVisible(projectLink), chromedp.Click(projectLink), chromedp.WaitVisible(webhookRow))
	b.shot("webhooks.png")
	row := b.text(webhookRow)
	for _, want := range []string{"active", "closed", "failed", "HTTP 500"} {
		if !strings.Contains(row, want) {
			t.Errorf("the webhook's row %q lacks %q", row, want)
		}
	}
	// The webhook's page and its deliveries; the failed one and its attempt.
	b.do(chromedp.Click(webhookRow+` a`), chromedp.WaitVisible(deliveryRow))
	b.shot("webhook.png")
	seen := b.html()
	b.do(chromedp.Click(deliveryRow+` a`), chromedp.WaitVisible(`ol.timeline li.attempt`))
	if got := b.text(`ol.timeline`); !strings.Contains(got, "HTTP 500") {
		t.Errorf("the attempt timeline %q lacks the failed attempt's HTTP 500", got)
	}

	// The receiver recovers; replay the delivery and watch the new attempt.
	s.recv.SetBehavior(testreceiver.Behavior{})
	b.do(chromedp.Click(`button[data-watch]`), chromedp.WaitVisible(`ol.timeline li.attempt:nth-child(2)`))
	b.shot("delivery.png")
	status, attempts := b.text(`#delivery-status`), b.text(`ol.timeline`)
	if status != "delivered" || !strings.Contains(attempts, "#2") || !strings.Contains(attempts, "HTTP 200") {
		t.Errorf("after the replay: status %q, attempts %q; want delivered and a #2 with HTTP 200", status, attempts)
	}
	seen += b.html()

	// The overview draws the hour: one delivered (the replay) and nothing failed now.
	b.do(chromedp.Navigate(s.url+"/ui/p/"+e.project.String()+"/overview"), chromedp.WaitVisible(`svg.chart rect.bar-delivered`))
	b.shot("overview.png")
	if ratio := b.text(`.stat-ratio`); !strings.HasPrefix(ratio, "100.0 %") {
		t.Errorf("overview success ratio %q, want 100.0 %% after the replay", ratio)
	}

	// On a phone the delivery page fits the screen's width: nothing scrolls
	// sideways but the tables' own boxes.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(s.url+"/ui/p/"+e.project.String()+"/webhooks/"+hook+"/deliveries/"+delivery),
		chromedp.WaitVisible(`ol.timeline li.attempt`))
	b.shot("delivery-phone.png")
	if wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); err != nil || wide {
		t.Errorf("on a 390 px screen the page is wider than the screen (%v)", err)
	}
	b.do(chromedp.EmulateReset())

	// Rotate the secret: shown once, then never again.
	b.do(chromedp.Navigate(s.url+"/ui/p/"+e.project.String()+"/webhooks/"+hook),
		chromedp.WaitVisible(`button[data-show="secret"]`))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(window.confirm = () => true, true)`)); err != nil {
		t.Fatal(err) // the rotation asks first
	}
	b.do(chromedp.Click(`button[data-show="secret"]`), chromedp.WaitVisible(`#secret [data-secret]`))
	rotated := b.text(`#secret [data-secret]`)
	if !strings.HasPrefix(rotated, "whsec_") || rotated == secret {
		t.Errorf("rotation showed %q, want a new whsec_ secret", rotated)
	}
	b.do(chromedp.Reload(), chromedp.WaitVisible(deliveryRow))
	seen += b.html()
	for _, never := range []string{secret, rotated, headerValue, token} {
		if strings.Contains(seen, never) {
			t.Errorf("a page shows %q", never)
		}
	}

	// Create a webhook with the form: its secret is shown once.
	b.do(chromedp.Navigate(s.url+"/ui/p/"+e.project.String()+"/"), chromedp.WaitVisible(`form.json input[name=name]`),
		chromedp.SendKeys(`form.json input[name=name]`, "From the form"),
		chromedp.SendKeys(`form.json input[name=url]`, s.recv.URL+"/form"),
		chromedp.SendKeys(`form.json textarea[name=headers]`, "X-Team: payments"),
		chromedp.Click(`form.json button[type=submit]`), chromedp.WaitVisible(`#secret [data-secret]`))
	if created := b.text(`#secret [data-secret]`); !strings.HasPrefix(created, "whsec_") {
		t.Errorf("creating showed %q, want its whsec_ secret", created)
	}
	var hooks struct {
		Webhooks []struct {
			Name    string
			Headers map[string]string
		}
	}
	s.get("/api/projects/"+e.project.String()+"/webhooks", &hooks)
	if n := len(hooks.Webhooks); n != 2 || hooks.Webhooks[1].Name != "From the form" || hooks.Webhooks[1].Headers["X-Team"] == "" {
		t.Errorf("after the form: %+v, want a second webhook with its header", hooks.Webhooks)
	}
	t.Logf("browser test took %s; screenshots in %s", time.Since(start).Round(time.Millisecond), shots)
}

// tab runs a test's browser actions, failing the test on the first error.
type tab struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(sel))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

func (b *tab) html() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.OuterHTML("html"))
	if err != nil {
		b.t.Fatalf("browser: page html: %v", err)
	}
	return s
}

// shot saves a screenshot of the whole page as name.
func (b *tab) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(b.shots, name), png, 0o644)
	}
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
}

type deliveryList struct {
	Deliveries []struct{ ID, Status string } `json:"deliveries"`
}
