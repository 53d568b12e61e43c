package httpsend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/internal/safedial"
)

// classify names why a request got no response. Order matters: a refused
// address and a DNS failure are reported as such even when they also time out.
func classify(err error) string {
	var (
		dnsErr  *net.DNSError
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, safedial.ErrForbidden):
		return ClassForbiddenAddress
	case errors.As(err, &dnsErr):
		return ClassDNS
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClassConnectionReset
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alert),
		errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid),
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return ClassTLS
	case strings.Contains(err.Error(), "unsupported protocol scheme"):
		return ClassInvalidURL
	}
	return ClassOther
}

// retryAfter parses a Retry-After value (delay in seconds or an HTTP date) into
// a delay from now, capped at maxDelay. Absent, unparsable or past values give 0.
func retryAfter(v string, now time.Time, maxDelay time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" || maxDelay <= 0 {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Compare in whole seconds only to avoid overflowing secs*time.Second:
		// maxDelay/time.Second truncates (to 0 under a second), so a delay of
		// exactly that many seconds is still below a cap with a fractional part.
		if secs > int64(maxDelay/time.Second) {
			return maxDelay
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxDelay)
}

// cleanBody turns at most limit response bytes into text that Postgres can store:
// valid UTF-8 (invalid bytes become U+FFFD, a rune cut by the limit is dropped),
// no NUL, and never longer than limit bytes.
func cleanBody(b []byte, limit int) string {
	var sb strings.Builder
	sb.Grow(min(len(b), limit))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 && !utf8.FullRune(b) {
			break // a rune cut short by the read limit
		}
		b = b[size:]
		if r == 0 {
			continue
		}
		if sb.Len()+utf8.RuneLen(r) > limit {
			break
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
