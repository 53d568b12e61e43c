package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification (standard-webhooks.md):
// secret, message id, timestamp, payload and the signature it publishes.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardSignature_MatchesSpecExample(t *testing.T) {
	t.Parallel()
	got, err := StandardSignature(specMsgID, time.Unix(specTimestamp, 0), []byte(specBody), specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got != specSignature {
		t.Fatalf("StandardSignature = %q, want %q", got, specSignature)
	}
}

func TestStandardSignature_MatchesIndependentHMACPerSecret(t *testing.T) {
	t.Parallel()
	s1, s2 := newSecret(t), newSecret(t)
	got, err := StandardSignature("msg_1", testTime, testBody, s1, s2)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range []string{s1, s2} {
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		h := hmac.New(sha256.New, key)
		h.Write([]byte("msg_1.1700000000." + string(testBody)))
		want = append(want, "v1,"+base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	if got != strings.Join(want, " ") {
		t.Fatalf("StandardSignature = %q, want %q", got, strings.Join(want, " "))
	}
}

func TestVerifyStandard_RotationToleranceAndMismatch(t *testing.T) {
	t.Parallel()
	oldS, newS := newSecret(t), newSecret(t)
	now := time.Now()
	ts := strconvUnix(now)
	both, err := StandardSignature("msg_1", now, testBody, newS, oldS)
	if err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := StandardSignature("msg_1", now, testBody, newS)
	if err := VerifyStandard(testBody, "msg_1", ts, both, []string{oldS}, 0); err != nil {
		t.Errorf("during rotation, old secret: %v", err)
	}
	if err := VerifyStandard(testBody, "msg_1", ts, onlyNew, []string{oldS}, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("after rotation, old secret = %v, want ErrSignatureMismatch", err)
	}
	if err := VerifyStandard(testBody, "msg_2", ts, onlyNew, []string{newS}, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("other message id = %v, want ErrSignatureMismatch", err)
	}
	stale := strconvUnix(now.Add(-time.Hour))
	if err := VerifyStandard(testBody, "msg_1", stale, onlyNew, []string{newS}, 0); !errors.Is(err, ErrTimestampOutOfTolerance) {
		t.Errorf("stale timestamp = %v, want ErrTimestampOutOfTolerance", err)
	}
	if err := VerifyStandard(testBody, "msg_1", "soon", onlyNew, []string{newS}, 0); !errors.Is(err, ErrMalformedHeader) {
		t.Errorf("bad timestamp = %v, want ErrMalformedHeader", err)
	}
	if err := VerifyStandard(testBody, "msg_1", ts, "v2,abc", []string{newS}, 0); !errors.Is(err, ErrNoSignature) {
		t.Errorf("no v1 = %v, want ErrNoSignature", err)
	}
}

func TestStandardSignature_RejectsSecretThatIsNotBase64(t *testing.T) {
	t.Parallel()
	if _, err := StandardSignature("m", testTime, testBody, "whsec_not base64!"); err == nil {
		t.Fatal("StandardSignature accepted a secret that is not base64")
	}
}

func strconvUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
