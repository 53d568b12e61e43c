package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// StandardSignature returns the value of the Standard Webhooks "webhook-signature"
// header for a message with id msgID sent at time t: "v1,<base64 HMAC-SHA256>" per
// secret, separated by spaces. Each secret must be "whsec_" followed by base64; the
// HMAC key is the decoded bytes and the message is "<msgID>.<unix t>.<body>".
func StandardSignature(msgID string, t time.Time, body []byte, secrets ...string) (string, error) {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := make([]string, 0, len(secrets))
	for i, s := range secrets {
		key, err := standardKey(s)
		if err != nil {
			return "", fmt.Errorf("standard signature with secret %d: %w", i, err)
		}
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(standardMAC(key, msgID, ts, body)))
	}
	return strings.Join(parts, " "), nil
}

// VerifyStandard checks Standard Webhooks headers (webhook-id, webhook-timestamp,
// webhook-signature) against the raw body: the timestamp must be within tolerance
// (zero: DefaultTolerance) and any v1 signature must match any secret, compared in
// constant time.
func VerifyStandard(body []byte, msgID, timestamp, sigHeader string, secrets []string, tolerance time.Duration) error {
	return verifyStandardAt(body, msgID, timestamp, sigHeader, secrets, tolerance, time.Now())
}

func verifyStandardAt(body []byte, msgID, timestamp, sigHeader string, secrets []string, tolerance time.Duration, now time.Time) error {
	if len(secrets) == 0 {
		return ErrNoSecrets
	}
	if strings.TrimSpace(sigHeader) == "" {
		return ErrNoSignature
	}
	if msgID == "" {
		return fmt.Errorf("%w: no message id", ErrMalformedHeader)
	}
	ts := strings.TrimSpace(timestamp)
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a unix time", ErrMalformedHeader, timestamp)
	}
	if err := checkTolerance(unix, tolerance, now); err != nil {
		return err
	}
	var sigs [][]byte
	for f := range strings.FieldsSeq(sigHeader) {
		version, sig, ok := strings.Cut(f, ",")
		if !ok || version != "v1" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(b) != sha256.Size {
			continue
		}
		sigs = append(sigs, b)
	}
	if len(sigs) == 0 {
		return ErrNoSignature
	}
	for i, s := range secrets {
		key, err := standardKey(s)
		if err != nil {
			return fmt.Errorf("verify standard signature with secret %d: %w", i, err)
		}
		want := standardMAC(key, msgID, ts, body)
		for _, got := range sigs {
			if hmac.Equal(want, got) {
				return nil
			}
		}
	}
	return ErrSignatureMismatch
}

// standardKey decodes the base64 part of a "whsec_..." secret.
func standardKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("secret is not %q followed by base64: %w", SecretPrefix, err)
	}
	return key, nil
}

func standardMAC(key []byte, msgID, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
