package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testkit/testreceiver"
	"github.com/hookrelay/hookrelay/signature"
)

func TestTestRoute_SendsSignedTestEventAndReportsStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rcv := testreceiver.New(t)
	created := e.createWebhook(rcv.URL+"/hook", nil)
	id, secret := created["id"].(string), created["secret"].(string)

	got := e.do("POST", "/webhooks/"+id+"/test", nil).want(t, http.StatusOK)
	if got["success"] != true || got["status_code"] != 200.0 || got["error"] != nil {
		t.Fatalf("test answered %v", got)
	}
	if d, _ := got["duration_ms"].(float64); d <= 0 {
		t.Errorf("duration_ms %v", got["duration_ms"])
	}
	reqs := rcv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if err := signature.Verify(req.Body, req.Header.Get("X-Agenta-Signature"), []string{secret}, 0); err != nil {
		t.Fatalf("receiver cannot verify the test event: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["type"] != "webhook.test" || body["project_id"] != e.project.String() || req.Header.Get("X-Agenta-Event") != "webhook.test" {
		t.Errorf("test event: headers %v body %s", req.Header, req.Body)
	}
	if req.Header.Get("Authorization") != "Bearer receiver-token" || req.Header.Get("X-Agenta-Delivery") == "" {
		t.Errorf("custom or delivery header missing: %v", req.Header)
	}
	for _, table := range []string{"hookrelay.outbox", "hookrelay.deliveries", "hookrelay.delivery_attempts"} {
		if n := e.count(`SELECT count(*) FROM ` + table); n != 0 {
			t.Errorf("test route wrote %d rows to %s", n, table)
		}
	}

	// During a rotation both secrets sign, so a receiver with either verifies.
	e.do("POST", "/webhooks/"+id+"/regenerate-secret", nil).want(t, http.StatusOK)
	rcv.SetBehavior(testreceiver.Behavior{Fail: 1})
	failed := e.do("POST", "/webhooks/"+id+"/test", nil).want(t, http.StatusOK)
	if failed["success"] != false || failed["status_code"] != 500.0 || failed["error"] == nil {
		t.Fatalf("failing receiver: test answered %v", failed)
	}
	last := rcv.Requests()[1]
	if err := signature.Verify(last.Body, last.Header.Get("X-Agenta-Signature"), []string{secret}, 0); err != nil {
		t.Fatalf("old secret does not verify during its grace period: %v", err)
	}
}

func TestTestRoute_UnreachableReceiverIsReportedNotFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rcv := testreceiver.New(t)
	id := e.createWebhook(rcv.URL, nil)["id"].(string)
	e.exec(`UPDATE hookrelay.webhooks SET url = 'http://127.0.0.1:1/closed'`)
	got := e.do("POST", "/webhooks/"+id+"/test", nil).want(t, http.StatusOK)
	if got["success"] != false || got["status_code"] != nil {
		t.Fatalf("unreachable receiver: %v", got)
	}
	if msg, _ := got["error"].(string); msg == "" {
		t.Fatalf("no error reported: %v", got)
	}
}
