package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	testBody = []byte(`{"id":"evt_1","type":"config.deployed","data":{"k":"v"}}`)
	testTime = time.Unix(1_700_000_000, 0)
)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatalf("NewSecret: %v", err)
	}
	return s
}

func TestNewSecret_IsPrefixedBase64Of32RandomBytes(t *testing.T) {
	t.Parallel()
	a, b := newSecret(t), newSecret(t)
	if a == b {
		t.Fatal("two secrets are equal")
	}
	for _, s := range []string{a, b} {
		rest, ok := strings.CutPrefix(s, SecretPrefix)
		if !ok {
			t.Fatalf("secret %q lacks prefix %q", s, SecretPrefix)
		}
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(raw) != 32 {
			t.Fatalf("secret body decodes to %d bytes, err %v; want 32", len(raw), err)
		}
	}
}

func TestSign_MatchesIndependentHMACOverTimestampDotBody(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	h := hmac.New(sha256.New, []byte(secret)) // key is the whole string, prefix included
	h.Write([]byte(strconv.FormatInt(testTime.Unix(), 10) + "." + string(testBody)))
	want := "t=1700000000,v1=" + hex.EncodeToString(h.Sum(nil))

	if got := Sign(testBody, testTime, secret); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestSign_OneV1PerSecretInOrder(t *testing.T) {
	t.Parallel()
	s1, s2 := newSecret(t), newSecret(t)
	got := Sign(testBody, testTime, s1, s2)
	parts := strings.Split(got, ",")
	if len(parts) != 3 || parts[0] != "t=1700000000" {
		t.Fatalf("Sign = %q, want t= and two v1=", got)
	}
	if "t=1700000000,"+parts[1] != Sign(testBody, testTime, s1) ||
		"t=1700000000,"+parts[2] != Sign(testBody, testTime, s2) {
		t.Fatalf("Sign = %q: v1 values are not the per-secret signatures in order", got)
	}
}

func TestVerify_AcceptsFreshSignatureAndRejectsTamperedBody(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	header := Sign(testBody, time.Now(), secret)
	if err := Verify(testBody, header, []string{secret}, 0); err != nil {
		t.Fatalf("Verify fresh signature: %v", err)
	}
	tampered := append([]byte{}, testBody...)
	tampered[len(tampered)-2] = 'X'
	if err := Verify(tampered, header, []string{secret}, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("Verify tampered body = %v, want ErrSignatureMismatch", err)
	}
	if err := Verify(testBody, header, []string{newSecret(t)}, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("Verify wrong secret = %v, want ErrSignatureMismatch", err)
	}
}

func TestVerifyAt_RotationBothSecretsVerifyNewOnlyFailsForOld(t *testing.T) {
	t.Parallel()
	oldS, newS := newSecret(t), newSecret(t)
	during := Sign(testBody, testTime, newS, oldS) // grace period: current first, then old
	after := Sign(testBody, testTime, newS)        // grace over: only the new one

	for name, secrets := range map[string][]string{"old only": {oldS}, "new only": {newS}, "both": {oldS, newS}} {
		if err := VerifyAt(testBody, during, secrets, 0, testTime); err != nil {
			t.Errorf("during rotation, receiver with %s: %v", name, err)
		}
	}
	if err := VerifyAt(testBody, after, []string{newS}, 0, testTime); err != nil {
		t.Errorf("after rotation, receiver with new: %v", err)
	}
	if err := VerifyAt(testBody, after, []string{oldS}, 0, testTime); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("after rotation, receiver with only old = %v, want ErrSignatureMismatch", err)
	}
}

func TestVerifyAt_ToleranceBothDirectionsAndDefault(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	header := Sign(testBody, testTime, secret)
	cases := []struct {
		name      string
		skew      time.Duration
		tolerance time.Duration
		want      error
	}{
		{"now", 0, 0, nil},
		{"default edge late", DefaultTolerance, 0, nil},
		{"default past late", DefaultTolerance + time.Second, 0, ErrTimestampOutOfTolerance},
		{"default past early", -DefaultTolerance - time.Second, 0, ErrTimestampOutOfTolerance},
		{"custom tolerance", 20 * time.Minute, 30 * time.Minute, nil},
		{"custom tolerance exceeded", 31 * time.Minute, 30 * time.Minute, ErrTimestampOutOfTolerance},
	}
	for _, c := range cases {
		err := VerifyAt(testBody, header, []string{secret}, c.tolerance, testTime.Add(c.skew))
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: VerifyAt = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestVerifyAt_StaleTimestampRejectedEvenWithValidMAC(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	header := Sign(testBody, testTime.Add(-time.Hour), secret)
	if err := VerifyAt(testBody, header, []string{secret}, 0, testTime); !errors.Is(err, ErrTimestampOutOfTolerance) {
		t.Fatalf("VerifyAt replayed header = %v, want ErrTimestampOutOfTolerance", err)
	}
}

func TestVerifyAt_MalformedHeaders(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	good := Sign(testBody, testTime, secret)
	v1 := strings.SplitN(good, ",", 2)[1]
	cases := map[string]error{
		"":                            ErrNoSignature,
		"   ":                         ErrNoSignature,
		"t=1700000000":                ErrNoSignature,
		"t=1700000000,v1=zz":          ErrNoSignature,
		v1:                            ErrMalformedHeader,
		"t=abc," + v1:                 ErrMalformedHeader,
		"t=1700000000,t=1," + v1:      ErrMalformedHeader,
		"garbage":                     ErrMalformedHeader,
		"t=1700000000,v0=abc":         ErrNoSignature,
		"t=1700000000,v1=00" + v1[5:]: ErrSignatureMismatch,
	}
	for header, want := range cases {
		if err := VerifyAt(testBody, header, []string{secret}, 0, testTime); !errors.Is(err, want) {
			t.Errorf("VerifyAt(%q) = %v, want %v", header, err, want)
		}
	}
	if err := VerifyAt(testBody, good, nil, 0, testTime); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("VerifyAt without secrets = %v, want ErrNoSecrets", err)
	}
}

func TestVerifyAt_IgnoresUnknownSchemesAndSpaces(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	good := Sign(testBody, testTime, secret)
	header := strings.ReplaceAll(good, ",", ", ") + ", v2=whatever"
	if err := VerifyAt(testBody, header, []string{secret}, 0, testTime); err != nil {
		t.Fatalf("VerifyAt(%q): %v", header, err)
	}
}

func FuzzVerifyAt_NeverPanics(f *testing.F) {
	f.Add("t=1700000000,v1=00")
	f.Add(",,,=")
	f.Fuzz(func(t *testing.T, header string) {
		_ = VerifyAt(testBody, header, []string{"whsec_x"}, 0, testTime)
	})
}

func BenchmarkSign(b *testing.B) {
	body := []byte(strings.Repeat("x", 2048))
	for b.Loop() {
		Sign(body, testTime, "whsec_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	}
}

func BenchmarkVerifyAt(b *testing.B) {
	body := []byte(strings.Repeat("x", 2048))
	secrets := []string{"whsec_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
	header := Sign(body, testTime, secrets...)
	for b.Loop() {
		if err := VerifyAt(body, header, secrets, 0, testTime); err != nil {
			b.Fatal(err)
		}
	}
}
