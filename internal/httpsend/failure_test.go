package httpsend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/safedial"
)

func TestSend_ReceiverHangingPastTimeoutIsClassTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	const timeout = 300 * time.Millisecond
	res := sender(t, Config{AllowPrivate: true, Timeout: timeout}).Send(t.Context(), request(srv.URL, "whsec_x"))
	if res.ErrorClass != ClassTimeout || res.StatusCode != 0 || res.Err == nil {
		t.Fatalf("Send = %+v, want class timeout", res)
	}
	if res.Duration < timeout || res.Duration > timeout+2*time.Second {
		t.Errorf("Send took %s, want about %s", res.Duration, timeout)
	}
}

func TestSend_ClosedPortIsConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	res := sender(t, Config{AllowPrivate: true}).Send(t.Context(), request("http://"+addr+"/hook", "whsec_x"))
	if res.ErrorClass != ClassConnectionRefused || res.StatusCode != 0 {
		t.Fatalf("Send = %+v, want class connection_refused", res)
	}
}

func TestSend_ConnectionClosedWithoutResponseIsConnectionReset(t *testing.T) {
	t.Parallel()
	srv, _, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	res := sender(t, Config{AllowPrivate: true}).Send(t.Context(), request(srv.URL, "whsec_x"))
	if res.ErrorClass != ClassConnectionReset {
		t.Fatalf("Send = %+v, want class connection_reset", res)
	}
}

func TestSend_UntrustedCertificateIsClassTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	s := sender(t, Config{AllowPrivate: true})
	if res := s.Send(t.Context(), request(srv.URL, "whsec_x")); res.ErrorClass != ClassTLS {
		t.Fatalf("Send = %+v, want class tls", res)
	}
	plain, _, _ := receiver(t, nil)
	https := "https://" + plain.Listener.Addr().String()
	if res := s.Send(t.Context(), request(https, "whsec_x")); res.ErrorClass != ClassTLS {
		t.Fatalf("Send https to a plain HTTP server = %+v, want class tls", res)
	}
}

func TestSend_PrivateTargetsRefusedBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	srv, _, hits := receiver(t, nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	s := sender(t, Config{AllowPrivate: false})
	for _, u := range []string{
		srv.URL + "/hook",
		"http://localhost:" + port + "/hook",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://169.254.169.254/latest/meta-data/",
	} {
		res := s.Send(t.Context(), request(u, "whsec_x"))
		if res.ErrorClass != ClassForbiddenAddress || !errors.Is(res.Err, safedial.ErrForbidden) {
			t.Errorf("Send(%s) = %+v, want class forbidden_address wrapping ErrForbidden", u, res)
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), "/hook") {
			t.Errorf("error %q contains the URL", res.Err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("receiver got %d requests, want 0", n)
	}
}

func TestSend_UnresolvableNameIsClassDNS(t *testing.T) {
	t.Parallel()
	res := sender(t, Config{}).Send(t.Context(), request("http://no-such-host.hookrelay.invalid/hook", "whsec_x"))
	if res.ErrorClass != ClassDNS {
		t.Fatalf("Send = %+v, want class dns", res)
	}
}

func TestSend_InvalidURLIsClassInvalidURL(t *testing.T) {
	t.Parallel()
	s := sender(t, Config{AllowPrivate: true})
	for _, u := range []string{"ftp://example.com/", "not a url", "http://", "http://[::1"} {
		if res := s.Send(t.Context(), request(u, "whsec_x")); res.ErrorClass != ClassInvalidURL {
			t.Errorf("Send(%q) = %+v, want class invalid_url", u, res)
		}
	}
}

func TestSend_CanceledContextIsReportedAsCanceled(t *testing.T) {
	t.Parallel()
	srv, _, _ := receiver(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := sender(t, Config{AllowPrivate: true}).Send(ctx, request(srv.URL, "whsec_x"))
	if res.StatusCode != 0 || !errors.Is(res.Err, context.Canceled) || res.ErrorClass != ClassOther {
		t.Fatalf("Send = %+v, want no response, class other, wrapping context.Canceled", res)
	}
}

func TestSend_StandardWebhooksWithNonBase64SecretFailsClearly(t *testing.T) {
	t.Parallel()
	srv, _, hits := receiver(t, nil)
	res := sender(t, Config{AllowPrivate: true, StandardWebhooks: true}).Send(t.Context(), request(srv.URL, "whsec_not base64!"))
	if res.Err == nil || res.ErrorClass != ClassOther || hits.Load() != 0 {
		t.Fatalf("Send = %+v (hits %d), want an error before sending", res, hits.Load())
	}
}
