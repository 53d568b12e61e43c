package httpsend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"syscall"
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

// ipInText matches an IPv4 address or a bracketed or colon-rich IPv6 address.
var ipInText = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]*\]|::`)

func TestSend_RefusedNameDoesNotRevealResolvedAddressUnlessPrivateAllowed(t *testing.T) {
	t.Parallel()
	srv, _, hits := receiver(t, nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	u := "http://localhost:" + port + "/hook" // a name that resolves to a loopback address

	res := sender(t, Config{AllowPrivate: false}).Send(t.Context(), request(u, "whsec_x"))
	if res.ErrorClass != ClassForbiddenAddress || !errors.Is(res.Err, safedial.ErrForbidden) {
		t.Fatalf("Send = %+v, want class forbidden_address wrapping ErrForbidden", res)
	}
	if got, want := res.Err.Error(), "post: destination address not allowed (loopback address)"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if ip := ipInText.FindString(res.Err.Error()); ip != "" {
		t.Errorf("error %q names the resolved address %s", res.Err, ip)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("receiver got %d requests, want 0", n)
	}

	// With private networks allowed the refusal cannot happen; a dial error
	// keeps the address it dialed, which helps in development.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, closed, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	res = sender(t, Config{AllowPrivate: true}).Send(t.Context(), request("http://localhost:"+closed+"/hook", "whsec_x"))
	if res.ErrorClass != ClassConnectionRefused {
		t.Fatalf("Send to a closed port = %+v, want class connection_refused", res)
	}
	if ip := ipInText.FindString(res.Err.Error()); ip == "" {
		t.Errorf("error %q lost the dialed address with private networks allowed", res.Err)
	}
}

func TestWithoutAddresses_DropsDialAndDNSServerAddressesKeepsChain(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp",
		Addr: &net.TCPAddr{IP: net.ParseIP("93.184.215.14"), Port: 443},
		Err:  os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	dns := &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "hooks.corp.example", Server: "10.0.0.2:53", IsNotFound: true}}
	reset := &net.OpError{Op: "read", Net: "tcp",
		Source: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40000},
		Addr:   &net.TCPAddr{IP: net.ParseIP("2606:4700::1"), Port: 443},
		Err:    os.NewSyscallError("read", syscall.ECONNRESET)}
	refusedV6 := &net.OpError{Op: "dial", Net: "tcp",
		Addr: &net.TCPAddr{IP: net.ParseIP("2002:a00:1::1"), Port: 443},
		Err:  &safedial.AddrError{Addr: netip.MustParseAddr("2002:a00:1::1"), Reason: "6to4 (2002::/16)"}}
	for _, c := range []struct {
		err   error
		want  string
		class string
	}{
		{refused, "dial tcp: connect: connection refused", ClassConnectionRefused},
		{dns, "dial tcp: lookup hooks.corp.example: no such host", ClassDNS},
		{reset, "read tcp: read: connection reset by peer", ClassConnectionReset},
		{refusedV6, "destination address not allowed (6to4 (2002::/16))", ClassForbiddenAddress},
	} {
		got := withoutAddresses(c.err)
		if got.Error() != c.want {
			t.Errorf("withoutAddresses(%q) = %q, want %q", c.err, got, c.want)
		}
		if cl := classify(got); cl != c.class {
			t.Errorf("classify(withoutAddresses(%q)) = %s, want %s", c.err, cl, c.class)
		}
	}
}
