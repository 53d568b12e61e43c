package safedial

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestForbidden_InternalAddressesAreRefused(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"127.0.0.1", "127.1.2.3", "::1",
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0",
		"0.0.0.0", "0.1.2.3", "::",
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2",
		"255.255.255.255", "100.64.0.1", "100.127.255.254", "240.0.0.1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "::7f00:1", "fec0::1",
	} {
		ip := netip.MustParseAddr(s)
		if reason, bad := Forbidden(ip); !bad || reason == "" {
			t.Errorf("Forbidden(%s) = %q, %v; want a reason and true", s, reason, bad)
		}
	}
}

func TestForbidden_PublicAddressesAreAllowed(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"93.184.215.14", "8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "169.253.255.255",
		"2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808",
	} {
		if reason, bad := Forbidden(netip.MustParseAddr(s)); bad {
			t.Errorf("Forbidden(%s) = %q, true; want allowed", s, reason)
		}
	}
}

func TestForbidden_ZeroAddrIsRefused(t *testing.T) {
	t.Parallel()
	if _, bad := Forbidden(netip.Addr{}); !bad {
		t.Fatal("Forbidden(zero Addr) = false, want true")
	}
}

// loopbackServer is a receiver on 127.0.0.1 that counts requests.
func loopbackServer(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	hits := new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		*hits++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

func TestControl_RefusesLoopbackAtConnectTime(t *testing.T) {
	t.Parallel()
	srv, hits := loopbackServer(t)
	d := net.Dialer{Timeout: 5 * time.Second, Control: Control(false)}
	_, err := d.DialContext(t.Context(), "tcp", srv.Listener.Addr().String())
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("dial loopback with Control(false) = %v, want ErrForbidden", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "(loopback address)") {
		t.Errorf("error %q does not name the address and the reason", err)
	}
	if *hits != 0 {
		t.Fatalf("receiver got %d requests", *hits)
	}
}

func TestControl_RefusesHostnameThatResolvesToLoopback(t *testing.T) {
	t.Parallel()
	srv, _ := loopbackServer(t)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	d := net.Dialer{Timeout: 5 * time.Second, Control: Control(false)}
	// "localhost" is resolved by the dialer; the guard sees the resolved address.
	_, err := d.DialContext(t.Context(), "tcp", net.JoinHostPort("localhost", port))
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("dial localhost with Control(false) = %v, want ErrForbidden", err)
	}
}

func TestControl_AllowPrivateConnects(t *testing.T) {
	t.Parallel()
	srv, hits := loopbackServer(t)
	tr := &http.Transport{DialContext: (&net.Dialer{Control: Control(true)}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with Control(true): %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || *hits != 1 {
		t.Fatalf("status %d, hits %d; want 204 and 1", resp.StatusCode, *hits)
	}
}

func TestCheckURL_ShapeErrors(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"ftp://example.com/":            "scheme",
		"example.com/hook":              "scheme",
		"https://user:pw@example.com/":  "credentials",
		"https:///path":                 "no host",
		"http://[::1":                   "",
		"https://example.com:99999999/": "",
	} {
		err := CheckURL(t.Context(), raw, true, nil)
		if !errors.Is(err, ErrInvalidURL) || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckURL(%q) = %v, want ErrInvalidURL mentioning %q", raw, err, want)
		}
	}
}

func TestCheckURL_InternalTargetsRefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"http://127.0.0.1:8080/hook", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
		"https://10.1.2.3/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
		"http://localhost:3000/", "http://LOCALHOST./", "http://api.localhost/",
	} {
		if err := CheckURL(t.Context(), raw, false, nil); !errors.Is(err, ErrForbidden) {
			t.Errorf("CheckURL(%q, allowPrivate=false) = %v, want ErrForbidden", raw, err)
		}
		if err := CheckURL(t.Context(), raw, true, nil); err != nil {
			t.Errorf("CheckURL(%q, allowPrivate=true) = %v, want nil", raw, err)
		}
	}
}

func TestCheckURL_PublicLiteralAndUnresolvableNamePass(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, raw := range []string{"https://93.184.215.14/hook", "https://[2606:4700:4700::1111]/", "https://no-such-host.invalid/hook"} {
		if err := CheckURL(ctx, raw, false, nil); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", raw, err)
		}
	}
}

func TestCheckURL_HostnameResolvingToForbiddenAddressIsRefused(t *testing.T) {
	t.Parallel()
	r := fakeResolver(map[string]netip.Addr{
		"rebind.hookrelay.test.": netip.MustParseAddr("169.254.169.254"),
		"public.hookrelay.test.": netip.MustParseAddr("93.184.215.14"),
	})
	err := CheckURL(t.Context(), "https://rebind.hookrelay.test/hook", false, r)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "cloud metadata address") {
		t.Errorf("CheckURL(name → 169.254.169.254) = %v, want ErrForbidden giving the reason", err)
	}
	if err != nil && strings.Contains(err.Error(), "169.254") {
		t.Errorf("CheckURL(name → 169.254.169.254) = %v names the resolved address (an oracle for internal DNS)", err)
	}
	if err := CheckURL(t.Context(), "https://public.hookrelay.test/hook", false, r); err != nil {
		t.Errorf("CheckURL(name → public address) = %v, want nil", err)
	}
}

// TestForbidden_IPv6FormsEmbeddingIPv4 covers each IPv6 form that carries an
// IPv4 address, once with a private one (10.0.0.1) and once with a public one
// (8.8.8.8). Only the IPv4-mapped and well-known NAT64 forms are judged by the
// address they carry; the others are refused whatever they carry.
func TestForbidden_IPv6FormsEmbeddingIPv4(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		form, addr string
		want       string // substring of the reason; "" means allowed
	}{
		{"IPv4-mapped, private", "::ffff:10.0.0.1", "private network"},
		{"IPv4-mapped, public", "::ffff:8.8.8.8", ""},
		{"well-known NAT64, private", "64:ff9b::a00:1", "private network address embedded in 64:ff9b::/96"},
		{"well-known NAT64, public", "64:ff9b::808:808", ""},
		{"local-use NAT64, private", "64:ff9b:1::a00:1", "local-use NAT64"},
		{"local-use NAT64, public", "64:ff9b:1:808:808::", "local-use NAT64"},
		{"6to4, private", "2002:a00:1::1", "6to4"},
		{"6to4, public", "2002:808:808::1", "6to4"},
		{"SIIT IPv4-translated, private", "::ffff:0:a00:1", "IPv4-translated"},
		{"SIIT IPv4-translated, public", "::ffff:0:808:808", "IPv4-translated"},
		// Teredo: server 65.54.227.120, client XOR 0xffffffff in the last 32 bits.
		{"Teredo, private client", "2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo"},
		{"Teredo, public client", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo"},
		{"IPv4-compatible, private", "::a00:1", "IPv4-compatible"},
		{"IPv4-compatible, public", "::808:808", "IPv4-compatible"},
	} {
		reason, bad := Forbidden(netip.MustParseAddr(c.addr))
		switch {
		case c.want == "" && bad:
			t.Errorf("%s: Forbidden(%s) = %q, true; want allowed", c.form, c.addr, reason)
		case c.want != "" && (!bad || !strings.Contains(reason, c.want)):
			t.Errorf("%s: Forbidden(%s) = %q, %v; want refused as %q", c.form, c.addr, reason, bad, c.want)
		}
	}
}

func TestForbidden_AzureWireServerIsRefused(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"168.63.129.16", "::ffff:168.63.129.16", "64:ff9b::a83f:8110"} {
		if reason, bad := Forbidden(netip.MustParseAddr(s)); !bad || !strings.Contains(reason, "cloud metadata") {
			t.Errorf("Forbidden(%s) = %q, %v; want refused as a cloud metadata address", s, reason, bad)
		}
	}
	for _, s := range []string{"168.63.129.15", "168.63.129.17"} {
		if reason, bad := Forbidden(netip.MustParseAddr(s)); bad {
			t.Errorf("Forbidden(%s) = %q, true; want allowed (only the wire server is refused)", s, reason)
		}
	}
}
