package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/testkit/testbin"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
	"github.com/hookrelay/hookrelay/internal/testkit/testwait"
	"github.com/hookrelay/hookrelay/signature"
)

// env is the environment of a hookrelay process on a test's own database and stream.
func env(t *testing.T) map[string]string {
	db := testdb.New(t)
	_, keys := testredis.New(t)
	return map[string]string{
		"DATABASE_URL":                     db.URL,
		"HOOKRELAY_STREAM":                 keys.Stream,
		"HOOKRELAY_GROUP":                  keys.Group,
		"HOOKRELAY_ALLOW_PRIVATE_NETWORKS": "true",
		"HOOKRELAY_POLL_INTERVAL":          "200ms",
	}
}

func TestDemo_RealBinaryDeliversAndExitsZero(t *testing.T) {
	t.Parallel()
	p := testbin.Start(t, "demo", env(t), "demo")
	if err := p.Wait(60 * time.Second); err != nil {
		t.Fatalf("hookrelay demo: %v\n%s", err, p.Output())
	}
	out := p.Output()
	for _, want := range []string{"signature: verified", "status delivered", "config.deployed"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestConfig_InvalidValueStopsStartupNamingTheVariable(t *testing.T) {
	t.Parallel()
	p := testbin.Start(t, "relay", map[string]string{"HOOKRELAY_TIMEOUT": "soon"}, "relay")
	err := p.Wait(20 * time.Second)
	if err == nil || !strings.Contains(p.Output(), "HOOKRELAY_TIMEOUT") {
		t.Fatalf("exit %v, output %q; want a failure naming HOOKRELAY_TIMEOUT", err, p.Output())
	}
}

func TestRun_DeployThroughTheAPIReachesTheReceiverSigned(t *testing.T) {
	t.Parallel()
	e := env(t)
	addr := freeAddr(t)
	e["HOOKRELAY_API_ADDR"] = addr
	e["HOOKRELAY_API_TOKEN"] = "test-token"
	p := testbin.Start(t, "run", e, "run")
	base := "http://" + addr
	waitHealthy(t, base+"/healthz", p)

	recv := testreceiver.New(t)
	project := uuid.NewString()
	var hook struct{ ID, Secret string }
	call(t, "POST", base+"/api/projects/"+project+"/webhooks", map[string]any{
		"name": "e2e", "url": recv.URL + "/hook", "event_types": []string{"config.deployed"},
	}, &hook)
	call(t, "POST", base+"/api/projects/"+project+"/configs/deploy", map[string]any{
		"application_id": uuid.NewString(), "application_slug": "bot", "variant_id": uuid.NewString(),
		"variant_slug": "default", "params": map[string]any{"temperature": 0.5},
		"commit_message": "ship it", "environment": "production", "deployed_by": "e2e",
	}, nil)

	reqs := recv.WaitFor(t, 20*time.Second, "a config.deployed delivery", func(r []testreceiver.Request) bool { return len(r) > 0 })
	got := reqs[0]
	if ev := got.Header.Get("X-Agenta-Event"); ev != "config.deployed" {
		t.Fatalf("X-Agenta-Event = %q, want config.deployed", ev)
	}
	if err := signature.Verify(got.Body, got.Header.Get("X-Agenta-Signature"), []string{hook.Secret}, 0); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	var body struct {
		Type string
		Data struct{ Environment struct{ Name string } }
	}
	if err := json.Unmarshal(got.Body, &body); err != nil || body.Type != "config.deployed" || body.Data.Environment.Name != "production" {
		t.Fatalf("body %s (err %v), want a config.deployed envelope for production", got.Body, err)
	}
	if err := p.Term(40 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHealthy(t *testing.T, url string, p *testbin.Proc) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() bool {
		if p.Exited() {
			t.Fatalf("%s exited before it was healthy:\n%s", p.Name, p.Output())
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, func() string { return url + " not healthy" })
}

func call(t *testing.T, method, url string, body, into any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, raw)
	}
	if into != nil {
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatal(fmt.Errorf("decode %s: %w", raw, err))
		}
	}
}
