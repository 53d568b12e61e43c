package deliver_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/receiver"
	"github.com/hookrelay/hookrelay/signature"
)

// regenerator regenerates a webhook's secret through the API, as a user does.
func (h *harness) regenerator(grace time.Duration, webhookID uuid.UUID) func() string {
	srv := httptest.NewServer(api.New(api.Config{SecretGrace: grace, AllowPrivate: true, Stream: h.keys.Stream},
		h.db.Pool, h.rdb, nil, nil))
	h.t.Cleanup(srv.Close)
	return func() string {
		h.t.Helper()
		resp, err := srv.Client().Post(srv.URL+"/api/projects/"+h.project.String()+"/webhooks/"+webhookID.String()+
			"/regenerate-secret", "application/json", nil)
		if err != nil {
			h.t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Secret string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Secret == "" {
			h.t.Fatalf("regenerate-secret: status %d, secret %q, err %v", resp.StatusCode, out.Secret, err)
		}
		return out.Secret
	}
}

// signatureOf delivers one event to hk and returns its body and signature header.
func (h *harness) signatureOf(rc *receiver.Receiver, hk hook) (body []byte, sig string) {
	h.t.Helper()
	id := h.delivery(hk.ID, 3)
	h.waitStatus(id, "delivered", 10*time.Second)
	for _, r := range rc.Requests() {
		if r.Header.Get("X-Agenta-Delivery") == id.String() {
			return r.Body, r.Header.Get("X-Agenta-Signature")
		}
	}
	h.t.Fatalf("delivery %s is delivered but the receiver has no request for it", id)
	return nil, ""
}

func TestWorker_EverySecretRegeneratedWithinGraceVerifiesUntilItsGraceEnds(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	hk := h.webhook(rc.URL + "/rotating")
	regenerate := h.regenerator(time.Hour, hk.ID)
	original := hk.Secret
	first := regenerate()
	second := regenerate() // within the grace period of original and first
	h.startWorker(h.config())

	body, sig := h.signatureOf(rc, hk)
	if n := strings.Count(sig, "v1="); n != 3 {
		t.Fatalf("signature during two overlapping grace periods %q has %d v1 values, want 3", sig, n)
	}
	ts, err := strconv.ParseInt(strings.TrimPrefix(strings.Split(sig, ",")[0], "t="), 10, 64)
	if err != nil {
		t.Fatalf("signature %q: %v", sig, err)
	}
	if current := signature.Sign(body, time.Unix(ts, 0), second); !strings.HasPrefix(sig, current) {
		t.Errorf("signature %q does not start with the current secret's %q", sig, current)
	}
	for name, secret := range map[string]string{"original": original, "first": first, "current": second} {
		if err := signature.Verify(body, sig, []string{secret}, 0); err != nil {
			t.Errorf("a receiver holding only the %s secret fails: %v", name, err)
		}
	}

	// Every grace period ends: only the current secret signs.
	h.exec(`UPDATE hookrelay.webhooks SET previous_secrets = (
		SELECT jsonb_agg(p || jsonb_build_object('expires_at', now() - interval '1 second'))
		FROM jsonb_array_elements(previous_secrets) p) WHERE id = $1`, hk.ID)
	body, sig = h.signatureOf(rc, hk)
	if n := strings.Count(sig, "v1="); n != 1 {
		t.Fatalf("signature after grace %q has %d v1 values, want 1", sig, n)
	}
	if err := signature.Verify(body, sig, []string{second}, 0); err != nil {
		t.Fatalf("after grace the current secret fails: %v", err)
	}
	for _, old := range []string{original, first} {
		if err := signature.Verify(body, sig, []string{old}, 0); !errors.Is(err, signature.ErrSignatureMismatch) {
			t.Fatalf("after grace an old secret still verifies (err %v)", err)
		}
	}
}
