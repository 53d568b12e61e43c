// Package signature signs and verifies hookrelay webhook deliveries.
//
// It is the receiver-side helper: it depends on the standard library only, so a
// service that receives hookrelay webhooks can import it without pulling in
// anything else of hookrelay.
//
// The hookrelay scheme puts one header on every delivery:
//
//	X-Agenta-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// The HMAC key is the secret string's own bytes, "whsec_" prefix included. While a
// secret is being rotated the header carries one v1= value per valid secret, and a
// receiver accepts the delivery if any of them matches any secret it knows.
//
// The package also implements the Standard Webhooks scheme
// (https://www.standardwebhooks.com), which hookrelay can send in addition.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret made by NewSecret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a signature's timestamp may be from the receiver's
// clock, in either direction, when Verify is given a zero tolerance.
const DefaultTolerance = 5 * time.Minute

// secretBytes is the number of random bytes in a secret (256 bits).
const secretBytes = 32

// Errors returned by Verify, VerifyAt and VerifyStandard. Compare with errors.Is.
var (
	// ErrNoSignature means the signature header is empty or carries no signature.
	ErrNoSignature = errors.New("signature: no signature")
	// ErrMalformedHeader means the signature header could not be parsed.
	ErrMalformedHeader = errors.New("signature: malformed header")
	// ErrTimestampOutOfTolerance means the signed timestamp is too far from now:
	// the delivery is stale or replayed.
	ErrTimestampOutOfTolerance = errors.New("signature: timestamp outside tolerance")
	// ErrSignatureMismatch means no signature in the header matches any secret.
	ErrSignatureMismatch = errors.New("signature: no matching signature")
	// ErrNoSecrets means the verifier was given no secret to check against.
	ErrNoSecrets = errors.New("signature: no secrets")
)

// NewSecret returns a new random secret: "whsec_" followed by the standard
// base64 encoding of 32 random bytes, the format Standard Webhooks uses.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the value of the signature header for body sent at time t:
// "t=<unix>,v1=<hex>" with one v1 per secret, in the order given.
func Sign(body []byte, t time.Time, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var sb strings.Builder
	sb.Grow(len("t=") + len(ts) + len(secrets)*(len(",v1=")+hex.EncodedLen(sha256.Size)))
	sb.WriteString("t=")
	sb.WriteString(ts)
	for _, s := range secrets {
		sb.WriteString(",v1=")
		sb.WriteString(hex.EncodeToString(mac(s, ts, body)))
	}
	return sb.String()
}

// mac computes HMAC-SHA256(secret, "<ts>.<body>") with the secret string's bytes as key.
func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a hookrelay signature header against the raw request body.
//
// It passes when the header's timestamp is within tolerance of the current time
// (a zero tolerance means DefaultTolerance) and any v1 value in the header equals,
// compared in constant time, the signature of body under any of secrets. body must
// be the exact bytes received, before any JSON decoding.
func Verify(body []byte, header string, secrets []string, tolerance time.Duration) error {
	return VerifyAt(body, header, secrets, tolerance, time.Now())
}

// VerifyAt is Verify with an explicit current time.
func VerifyAt(body []byte, header string, secrets []string, tolerance time.Duration, now time.Time) error {
	if len(secrets) == 0 {
		return ErrNoSecrets
	}
	ts, sigs, err := parseHeader(header)
	if err != nil {
		return err
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a unix time", ErrMalformedHeader, ts)
	}
	if err := checkTolerance(unix, tolerance, now); err != nil {
		return err
	}
	for _, s := range secrets {
		want := mac(s, ts, body)
		for _, got := range sigs {
			if hmac.Equal(want, got) {
				return nil
			}
		}
	}
	return ErrSignatureMismatch
}

// parseHeader splits "t=<ts>,v1=<hex>,..." into the timestamp and the decoded v1
// values. Unknown schemes are ignored so that new ones can be added later.
func parseHeader(header string) (ts string, sigs [][]byte, err error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", nil, ErrNoSignature
	}
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, fmt.Errorf("%w: element %q is not key=value", ErrMalformedHeader, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return "", nil, fmt.Errorf("%w: more than one timestamp", ErrMalformedHeader)
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				// A malformed value cannot match; skip it rather than reject the
				// others, which may be fine.
				continue
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" {
		return "", nil, fmt.Errorf("%w: no timestamp", ErrMalformedHeader)
	}
	if len(sigs) == 0 {
		return "", nil, ErrNoSignature
	}
	return ts, sigs, nil
}

// checkTolerance reports ErrTimestampOutOfTolerance when unix is further than
// tolerance (zero: DefaultTolerance) from now.
func checkTolerance(unix int64, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	d := now.Sub(time.Unix(unix, 0))
	if d < 0 {
		d = -d
	}
	if d > tolerance {
		return fmt.Errorf("%w: signed at %d, %s from now", ErrTimestampOutOfTolerance, unix, d.Truncate(time.Second))
	}
	return nil
}
