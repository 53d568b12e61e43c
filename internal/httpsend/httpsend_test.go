package httpsend

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/signature"
)

// received is what a test receiver saw of one request.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver starts a loopback server that records every request on a channel and
// answers with handle (nil: 204).
func receiver(t *testing.T, handle http.HandlerFunc) (*httptest.Server, <-chan received, *atomic.Int32) {
	t.Helper()
	got := make(chan received, 16)
	hits := new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		select {
		case got <- received{r.Method, r.Header.Clone(), body}:
		default:
		}
		if handle == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, got, hits
}

func sender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s := New(cfg)
	t.Cleanup(s.Close)
	return s
}

func request(url string, secrets ...string) Request {
	return Request{
		URL:        url,
		DeliveryID: uuid.New(),
		EventType:  "config.deployed",
		Body:       []byte(`{"id":"e1","type":"config.deployed","data":{"variant":{"slug":"v1"}}}`),
		Secrets:    secrets,
	}
}

func TestSend_HeadersAndBodyAsDesignedAndSignatureVerifies(t *testing.T) {
	t.Parallel()
	srv, got, _ := receiver(t, nil)
	s := sender(t, Config{AllowPrivate: true, UserAgent: "Agenta-Webhooks/1.0", HeaderPrefix: "X-Agenta"})
	current, old := "whsec_current", "whsec_old"
	req := request(srv.URL+"/hook", current, old)
	req.Headers = map[string]string{
		"Authorization":      "Bearer abc",
		"X-Tenant":           "acme",
		"X-Agenta-Signature": "forged",
		"Content-Type":       "text/plain",
		"X-Agenta-Delivery":  "forged",
	}

	res := s.Send(t.Context(), req)
	if !res.Success() || res.StatusCode != http.StatusNoContent || res.ErrorClass != "" || res.Err != nil {
		t.Fatalf("Send = %+v, want 204 without error", res)
	}
	r := <-got
	h := r.header
	if r.method != http.MethodPost || string(r.body) != string(req.Body) {
		t.Fatalf("receiver got %s %q, want POST of the exact body", r.method, r.body)
	}
	for k, want := range map[string]string{
		"Content-Type":      "application/json",
		"User-Agent":        "Agenta-Webhooks/1.0",
		"X-Agenta-Delivery": req.DeliveryID.String(),
		"X-Agenta-Event":    "config.deployed",
		"Authorization":     "Bearer abc",
		"X-Tenant":          "acme",
	} {
		if v := h.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("header %s = %q, want exactly %q", k, v, want)
		}
	}
	if h.Get("Webhook-Signature") != "" {
		t.Error("Standard Webhooks headers sent while disabled")
	}

	sig := h.Get("X-Agenta-Signature")
	for _, secret := range []string{current, old} {
		if err := signature.Verify(r.body, sig, []string{secret}, 0); err != nil {
			t.Errorf("signature.Verify with %s: %v", secret, err)
		}
	}
	ts := strconv.FormatInt(res.Started.Unix(), 10)
	m := hmac.New(sha256.New, []byte(current))
	m.Write([]byte(ts + "." + string(r.body)))
	if want := "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil)) + ","; !strings.HasPrefix(sig, want) {
		t.Errorf("signature %q does not start with the independently computed %q", sig, want)
	}
	if n := strings.Count(sig, "v1="); n != 2 {
		t.Errorf("signature has %d v1 values, want one per secret (2)", n)
	}
}

func TestSend_StandardWebhooksHeadersWhenEnabled(t *testing.T) {
	t.Parallel()
	srv, got, _ := receiver(t, nil)
	s := sender(t, Config{AllowPrivate: true, StandardWebhooks: true})
	secret, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	req := request(srv.URL, secret)
	if res := s.Send(t.Context(), req); !res.Success() {
		t.Fatalf("Send = %+v", res)
	}
	h := (<-got).header
	if h.Get("Webhook-Id") != req.DeliveryID.String() {
		t.Errorf("webhook-id = %q, want the delivery id", h.Get("Webhook-Id"))
	}
	err = signature.VerifyStandard(req.Body, h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"),
		h.Get("Webhook-Signature"), []string{secret}, 0)
	if err != nil {
		t.Errorf("VerifyStandard: %v", err)
	}
	if err := signature.Verify(req.Body, h.Get("X-Agenta-Signature"), []string{secret}, 0); err != nil {
		t.Errorf("Verify X-Agenta-Signature alongside standard headers: %v", err)
	}
}

func TestSend_Non2xxIsAResponseNotAnError(t *testing.T) {
	t.Parallel()
	srv, _, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "boom")
	})
	res := sender(t, Config{AllowPrivate: true}).Send(t.Context(), request(srv.URL, "whsec_x"))
	if res.Success() || res.StatusCode != 500 || res.Body != "boom" || res.ErrorClass != "" || res.Err != nil {
		t.Fatalf("Send = %+v, want 500 with body boom and no error", res)
	}
}

func TestSend_RedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	target, _, targetHits := receiver(t, nil)
	srv, _, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	})
	res := sender(t, Config{AllowPrivate: true}).Send(t.Context(), request(srv.URL, "whsec_x"))
	if res.StatusCode != http.StatusFound || res.Success() || res.ErrorClass != "" {
		t.Fatalf("Send = %+v, want a 302 result", res)
	}
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("redirect target got %d requests, want 0", n)
	}
}

func TestSend_RetryAfterParsedAndCapped(t *testing.T) {
	t.Parallel()
	var value atomic.Value
	srv, _, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", value.Load().(string))
		w.WriteHeader(http.StatusTooManyRequests)
	})
	s := sender(t, Config{AllowPrivate: true, RetryAfterMax: time.Hour})
	for _, c := range []struct {
		header   string
		min, max time.Duration
	}{
		{"120", 120 * time.Second, 120 * time.Second},
		{"86400", time.Hour, time.Hour},
		{time.Now().Add(10 * time.Minute).UTC().Format(http.TimeFormat), 9 * time.Minute, 10 * time.Minute},
		{time.Now().Add(48 * time.Hour).UTC().Format(http.TimeFormat), time.Hour, time.Hour},
		{"soon", 0, 0},
	} {
		value.Store(c.header)
		res := s.Send(t.Context(), request(srv.URL, "whsec_x"))
		if res.StatusCode != 429 || res.RetryAfter < c.min || res.RetryAfter > c.max {
			t.Errorf("Retry-After %q: status %d, RetryAfter %s; want 429 and %s..%s", c.header, res.StatusCode, res.RetryAfter, c.min, c.max)
		}
	}
}

func TestRetryAfter_Values(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		v    string
		max  time.Duration
		want time.Duration
	}{
		{"", time.Hour, 0},
		{"30", time.Hour, 30 * time.Second},
		{" 30 ", time.Hour, 30 * time.Second},
		{"30", 0, 0}, // a zero cap ignores Retry-After
		{"30", 10 * time.Second, 10 * time.Second},
		{"-5", time.Hour, 0},
		{"99999999999999999", time.Hour, time.Hour},
		{now.Add(-time.Minute).Format(http.TimeFormat), time.Hour, 0},
		{now.Add(2 * time.Minute).Format(http.TimeFormat), time.Hour, 2 * time.Minute},
		{"Mon, 99 Foo", time.Hour, 0},
		// Caps that are not whole seconds: a delay under the cap is kept as is.
		{"1", 1500 * time.Millisecond, time.Second},
		{"2", 1500 * time.Millisecond, 1500 * time.Millisecond},
		{"1", 1001 * time.Millisecond, time.Second},
		{"60", 90 * time.Second, 60 * time.Second},
		{"90", 90500 * time.Millisecond, 90 * time.Second},
		// Caps under one second: any whole-second delay reaches them, none passes them.
		{"0", 500 * time.Millisecond, 0},
		{"1", 500 * time.Millisecond, 500 * time.Millisecond},
		{"3600", time.Millisecond, time.Millisecond},
		{now.Add(-time.Minute).Format(http.TimeFormat), 500 * time.Millisecond, 0},
		{now.Add(time.Minute).Format(http.TimeFormat), 500 * time.Millisecond, 500 * time.Millisecond},
	} {
		if got := retryAfter(c.v, now, c.max); got != c.want {
			t.Errorf("retryAfter(%q, max %s) = %s, want %s", c.v, c.max, got, c.want)
		}
	}
}

func TestSend_LargeResponseBodyTruncatedAndConnectionReused(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, strings.Repeat("é", 20_000)) // 40 kB, two bytes per rune
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s := sender(t, Config{AllowPrivate: true, MaxResponseBody: 101})
	for range 3 {
		res := s.Send(t.Context(), request(srv.URL, "whsec_x"))
		if res.StatusCode != 200 || res.Body != strings.Repeat("é", 50) {
			t.Fatalf("Send = status %d, body %d bytes %q; want 200 and 50 whole runes (100 bytes)", res.StatusCode, len(res.Body), res.Body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("3 sends opened %d connections, want 1 (body drained for reuse)", n)
	}
}

func TestCleanBody_ValidUTF8WithoutNULWithinLimit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in    string
		limit int
		want  string
	}{
		{"hello", 10, "hello"},
		{"a\x00b", 10, "ab"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"ab\xff", 3, "ab"}, // replacement would pass the limit
		{"aé", 2, "a"},      // cut in the middle of é
		{"aé", 3, "aé"},
	} {
		in := []byte(c.in)
		if len(in) > c.limit {
			in = in[:c.limit]
		}
		if got := cleanBody(in, c.limit); got != c.want {
			t.Errorf("cleanBody(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
	}
}
