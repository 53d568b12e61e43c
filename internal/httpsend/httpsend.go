// Package httpsend makes one signed webhook POST and reports what happened.
//
// A Sender owns one tuned http.Client shared by all deliveries: keep-alive
// connections, a dialer guarded by safedial (unless private networks are
// allowed), no proxy from the environment, and no redirects followed. Send never
// returns an error: every outcome, a response or a failure with its class, is a
// Result for the caller to record.
package httpsend

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/safedial"
	"github.com/hookrelay/hookrelay/signature"
)

// Defaults applied by New to zero Config fields, and the defaults of
// HOOKRELAY_TIMEOUT, HOOKRELAY_USER_AGENT and HOOKRELAY_HEADER_PREFIX.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxResponseBody = 4096
	DefaultUserAgent       = "Agenta-Webhooks/1.0"
	DefaultHeaderPrefix    = "X-Agenta"
)

// DefaultRetryAfterMax is the default of HOOKRELAY_RETRY_AFTER_MAX. New does
// not apply it: a zero Config.RetryAfterMax means Retry-After is ignored.
const DefaultRetryAfterMax = time.Hour

// drainLimit is how many response bytes past MaxResponseBody are read and
// discarded so that the connection can be reused; a longer body closes it.
const drainLimit = 256 << 10

// Config tunes a Sender. Zero fields take the defaults above.
type Config struct {
	Timeout          time.Duration // whole attempt: connect, send, response headers and body
	AllowPrivate     bool          // allow loopback/private/link-local targets (development, tests)
	UserAgent        string        // User-Agent header
	HeaderPrefix     string        // "X-Agenta" → X-Agenta-Delivery, X-Agenta-Event, X-Agenta-Signature
	StandardWebhooks bool          // also send webhook-id, webhook-timestamp, webhook-signature
	MaxResponseBody  int           // response bytes kept in Result.Body
	RetryAfterMax    time.Duration // cap on Result.RetryAfter; 0 ignores Retry-After
}

// Request is one delivery attempt.
type Request struct {
	URL        string
	DeliveryID uuid.UUID         // same on every attempt of a delivery
	EventType  string            // e.g. "config.deployed"
	Body       []byte            // exact bytes sent and signed
	Secrets    []string          // current secret first, then any still in their grace period
	Headers    map[string]string // the webhook's custom headers; cannot replace the headers Send sets
}

// Error classes of a Result without a response.
const (
	ClassTimeout           = "timeout"
	ClassConnectionRefused = "connection_refused"
	ClassConnectionReset   = "connection_reset"
	ClassDNS               = "dns"
	ClassForbiddenAddress  = "forbidden_address"
	ClassTLS               = "tls"
	ClassInvalidURL        = "invalid_url"
	ClassOther             = "other"
)

// Result is the outcome of one attempt. Either StatusCode is set (the receiver
// answered; ErrorClass is "" and Err nil) or StatusCode is 0 and ErrorClass and
// Err say why there is no response. Err never contains the URL (which may carry
// credentials in its query) nor any header value, and unless AllowPrivate it
// names no resolved address (a refusal reads "destination address not allowed
// (loopback address)").
type Result struct {
	Started    time.Time
	Duration   time.Duration
	StatusCode int           // 0 when no response
	Body       string        // response body, at most MaxResponseBody bytes, valid UTF-8 without NUL
	ErrorClass string        // "" when there is a response; else one of the Class constants
	Err        error         // nil when there is a response; wraps context.Canceled when ctx was canceled
	RetryAfter time.Duration // Retry-After of the response (seconds or HTTP date), capped at RetryAfterMax; 0 if absent
}

// Success reports whether the receiver answered 2xx.
func (r Result) Success() bool { return r.StatusCode >= 200 && r.StatusCode <= 299 }

// Sender sends webhook POSTs. It is safe for concurrent use.
type Sender struct {
	cfg    Config
	client *http.Client
}

// New returns a Sender with one http.Client: keep-alive connections pooled per
// host, a dialer that refuses forbidden addresses at connect time unless
// cfg.AllowPrivate, no environment proxy (a proxy would hide the real target from
// the guard), and redirects returned as results rather than followed.
func New(cfg Config) *Sender {
	cfg.Timeout = cmp.Or(max(cfg.Timeout, 0), DefaultTimeout)
	cfg.MaxResponseBody = cmp.Or(max(cfg.MaxResponseBody, 0), DefaultMaxResponseBody)
	cfg.UserAgent = cmp.Or(cfg.UserAgent, DefaultUserAgent)
	cfg.HeaderPrefix = cmp.Or(cfg.HeaderPrefix, DefaultHeaderPrefix)
	dialer := &net.Dialer{
		Timeout:   cfg.Timeout,
		KeepAlive: 30 * time.Second,
		Control:   safedial.Control(cfg.AllowPrivate),
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(cfg.Timeout, 10*time.Second),
		ExpectContinueTimeout: time.Second,
	}
	return &Sender{
		cfg: cfg,
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Close releases idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Send POSTs req.Body to req.URL, signed at the current time with every secret,
// and waits at most Config.Timeout (or until ctx ends) for the response. The
// response body is read up to MaxResponseBody bytes and a little more is drained
// so that the connection can be reused.
func (s *Sender) Send(ctx context.Context, req Request) Result {
	started := time.Now()
	res := s.send(ctx, req, started)
	res.Started = started
	res.Duration = time.Since(started)
	return res
}

func (s *Sender) send(ctx context.Context, req Request, started time.Time) Result {
	if err := safedial.CheckURL(ctx, req.URL, true, nil); err != nil {
		return failure(ClassInvalidURL, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return failure(ClassInvalidURL, fmt.Errorf("build request: %w", err))
	}
	if err := s.setHeaders(hreq.Header, req, started); err != nil {
		return failure(ClassOther, err)
	}

	resp, err := s.client.Do(hreq)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // drop the URL: it may carry credentials
		}
		if !s.cfg.AllowPrivate {
			err = withoutAddresses(err)
		}
		err = fmt.Errorf("post: %w", err)
		return failure(classify(err), err)
	}
	defer resp.Body.Close()

	// A body cut short by the deadline still leaves a response: the receiver
	// answered with a status, which is what decides the outcome.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, int64(s.cfg.MaxResponseBody)))
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	return Result{
		StatusCode: resp.StatusCode,
		Body:       cleanBody(body, s.cfg.MaxResponseBody),
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now(), s.cfg.RetryAfterMax),
	}
}

// setHeaders writes the custom headers first and then the ones hookrelay owns,
// so that a custom header can never replace a signature or delivery header.
func (s *Sender) setHeaders(h http.Header, req Request, t time.Time) error {
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	p := s.cfg.HeaderPrefix
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", s.cfg.UserAgent)
	h.Set(p+"-Delivery", req.DeliveryID.String())
	h.Set(p+"-Event", req.EventType)
	h.Set(p+"-Signature", signature.Sign(req.Body, t, req.Secrets...))
	if !s.cfg.StandardWebhooks {
		for _, k := range []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"} {
			h.Del(k)
		}
		return nil
	}
	std, err := signature.StandardSignature(req.DeliveryID.String(), t, req.Body, req.Secrets...)
	if err != nil {
		return fmt.Errorf("standard webhooks signature: %w", err)
	}
	h.Set("Webhook-Id", req.DeliveryID.String())
	h.Set("Webhook-Timestamp", strconv.FormatInt(t.Unix(), 10))
	h.Set("Webhook-Signature", std)
	return nil
}

func failure(class string, err error) Result {
	return Result{ErrorClass: class, Err: err}
}
