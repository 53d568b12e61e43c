package deliver_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/signature"
)

func TestWorker_SignsWithBothSecretsOnlyDuringGrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rc := newReceiver(t, nil)
	inGrace := h.webhook(rc.URL + "/grace")
	expired := h.webhook(rc.URL + "/expired")
	const old = "whsec_old-secret"
	h.exec(`UPDATE hookrelay.webhooks SET previous_secret = $2, previous_secret_expires_at = now() + interval '1 hour' WHERE id = $1`, inGrace.ID, old)
	h.exec(`UPDATE hookrelay.webhooks SET previous_secret = $2, previous_secret_expires_at = now() - interval '1 second' WHERE id = $1`, expired.ID, old)
	h.startWorker(h.config())
	graceID := h.delivery(inGrace.ID, 3)
	expiredID := h.delivery(expired.ID, 3)
	h.waitStatus(graceID, "delivered", 10*time.Second)
	h.waitStatus(expiredID, "delivered", 10*time.Second)

	byDelivery := map[string]received{}
	for _, r := range rc.requests() {
		byDelivery[r.Header.Get("X-Agenta-Delivery")] = r
	}
	g := byDelivery[graceID.String()]
	sig := g.Header.Get("X-Agenta-Signature")
	if n := strings.Count(sig, "v1="); n != 2 {
		t.Fatalf("signature during grace %q has %d v1 values, want 2", sig, n)
	}
	for _, secret := range []string{inGrace.Secret, old} {
		if err := signature.Verify(g.Body, sig, []string{secret}, 0); err != nil {
			t.Fatalf("during grace, a receiver holding only one of the secrets fails: %v", err)
		}
	}

	e := byDelivery[expiredID.String()]
	sig = e.Header.Get("X-Agenta-Signature")
	if n := strings.Count(sig, "v1="); n != 1 {
		t.Fatalf("signature after grace %q has %d v1 values, want 1", sig, n)
	}
	if err := signature.Verify(e.Body, sig, []string{expired.Secret}, 0); err != nil {
		t.Fatalf("after grace the new secret fails: %v", err)
	}
	if err := signature.Verify(e.Body, sig, []string{old}, 0); !errors.Is(err, signature.ErrSignatureMismatch) {
		t.Fatalf("after grace the old secret still verifies (err %v)", err)
	}
}
