// Package safedial keeps webhook deliveries away from internal networks (SSRF).
//
// The real guard is Control, installed on the net.Dialer that makes delivery
// connections: it sees the address the connection is about to use, after DNS
// resolution, so a hostname that resolves (or re-resolves, DNS rebinding) to a
// loopback, private, link-local or otherwise internal address is refused at
// connect time. CheckURL is the early, best-effort check the API runs when a
// webhook URL is registered, so that obvious mistakes are reported at once.
package safedial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrForbidden is wrapped by every refusal to use an address; the wrapping error
// says why it is refused, and names the address unless it came from resolving a
// name (see AddrError and CheckURL). Test with errors.Is.
var ErrForbidden = errors.New("forbidden address")

// ErrInvalidURL is wrapped by CheckURL errors about the shape of a URL (scheme,
// host, credentials), as opposed to the address it points at.
var ErrInvalidURL = errors.New("invalid webhook url")

// rangeRule names a block of addresses that deliveries must not reach.
type rangeRule struct {
	prefix netip.Prefix
	reason string
}

// forbiddenRanges lists blocks not covered by the netip.Addr predicates used in
// Forbidden. IPv4-mapped IPv6 addresses are unmapped before being checked.
var forbiddenRanges = []rangeRule{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network (0.0.0.0/8)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking network (198.18.0.0/15)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (fec0::/10)"},
	{netip.MustParsePrefix("100::/64"), "discard-only (100::/64)"},
}

// Addresses of cloud instance services, reachable from a VM and never a webhook
// receiver: 169.254.169.254 (AWS, GCP, Azure IMDS and others; link-local too)
// and 168.63.129.16 (Azure's wire server, a public address).
var metadataAddrs = []netip.Addr{
	netip.AddrFrom4([4]byte{169, 254, 169, 254}),
	netip.AddrFrom4([4]byte{168, 63, 129, 16}),
}

// wellKnownNAT64 is the RFC 6052 prefix a DNS64 resolver synthesises for
// IPv4-only hosts on an IPv6-only network: the IPv4 address is always the last
// 32 bits, and the translator reaches exactly that address.
var wellKnownNAT64 = netip.MustParsePrefix("64:ff9b::/96")

// translationPrefixes are IPv6 blocks that carry an IPv4 address (or hand the
// packet to a translator or tunnel) other than the well-known NAT64 prefix.
// They are refused whatever IPv4 address they embed: where that address sits
// is chosen by the operator (local-use NAT64, RFC 8215: /32 to /96), obfuscated
// or doubled (Teredo: server and XOR-ed client), or the mechanism is deprecated
// and unrouted on the Internet (6to4 relays, RFC 7526; IPv4-compatible, RFC
// 4291; IPv4-translated SIIT addresses, RFC 2765). Extracting an IPv4 address
// from them would mean guessing what a gateway on the path does with it; no
// webhook receiver needs them, so refusing them outright cannot be fooled.
var translationPrefixes = []rangeRule{
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 (64:ff9b:1::/48)"},
	{netip.MustParsePrefix("2002::/16"), "6to4 (2002::/16)"},
	{netip.MustParsePrefix("2001::/32"), "Teredo (2001::/32)"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated (::ffff:0:0:0/96)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (::/96)"},
}

// Forbidden reports whether deliveries must not connect to ip, and why: loopback,
// private (RFC 1918, fc00::/7), link-local, the cloud metadata addresses
// (169.254.169.254, Azure's 168.63.129.16), unspecified, multicast, broadcast,
// carrier-grade NAT, 0.0.0.0/8 and other reserved blocks. An IPv4-mapped address
// (::ffff:a.b.c.d) and a well-known NAT64 address (64:ff9b::a.b.c.d) are judged
// by the IPv4 address they carry; every other IPv6 form that embeds an IPv4
// address or leads to a tunnel (6to4, Teredo, local-use NAT64, IPv4-translated,
// IPv4-compatible) is forbidden whatever it embeds. An invalid address is
// forbidden.
func Forbidden(ip netip.Addr) (reason string, forbidden bool) {
	if !ip.IsValid() {
		return "invalid address", true
	}
	ip = ip.WithZone("").Unmap()
	if wellKnownNAT64.Contains(ip) {
		b := ip.As16()
		if r, bad := Forbidden(netip.AddrFrom4([4]byte(b[12:16]))); bad {
			return r + " embedded in " + wellKnownNAT64.String(), true
		}
		return "", false
	}
	switch {
	case ip.IsUnspecified():
		return "unspecified address", true
	case ip.IsLoopback():
		return "loopback address", true
	case ip.IsPrivate():
		return "private network address", true
	case slices.Contains(metadataAddrs, ip):
		return "cloud metadata address", true
	case ip.IsLinkLocalUnicast():
		return "link-local address", true
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast address", true
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast address", true
	}
	for _, rules := range [][]rangeRule{forbiddenRanges, translationPrefixes} {
		for _, r := range rules {
			if r.prefix.Contains(ip) {
				return r.reason, true
			}
		}
	}
	return "", false
}

// AddrError is the refusal of one address: Control returns it (wrapped by the
// dialer in a *net.OpError) and CheckURL for a literal address. It wraps
// ErrForbidden. Its message names the address; Reason alone does not, for
// callers that must not reveal what a name resolved to.
type AddrError struct {
	Addr   netip.Addr
	Reason string // as returned by Forbidden: "loopback address", "6to4 (2002::/16)", …
}

// Error implements error.
func (e *AddrError) Error() string {
	return fmt.Sprintf("%v: %s (%s)", ErrForbidden, e.Addr, e.Reason)
}

// Unwrap returns ErrForbidden.
func (e *AddrError) Unwrap() error { return ErrForbidden }

// check returns an *AddrError when ip must not be used.
func check(ip netip.Addr) error {
	if reason, bad := Forbidden(ip); bad {
		return &AddrError{Addr: ip, Reason: reason}
	}
	return nil
}

// Control returns a function for net.Dialer.Control that refuses, before the
// connection is made, any resolved address Forbidden rejects. With allowPrivate
// every address is allowed (development and tests against loopback receivers).
// The error it returns wraps ErrForbidden.
func Control(allowPrivate bool) func(network, address string, c syscall.RawConn) error {
	if allowPrivate {
		return func(string, string, syscall.RawConn) error { return nil }
	}
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			// The dialer always passes a resolved ip:port; anything else is refused
			// rather than trusted.
			return fmt.Errorf("%w: cannot parse dial address %q: %v", ErrForbidden, address, err)
		}
		return check(ap.Addr())
	}
}

// CheckURL checks a webhook URL when it is registered. The URL must be absolute
// http or https, with a host and without user:password. Unless allowPrivate, a
// literal IP address or a localhost name is refused when Forbidden, and a
// hostname is resolved with resolver (nil: net.DefaultResolver) and refused when
// any of its addresses is forbidden; that error gives the reason but not the
// resolved address. A failed resolution is not an error: the
// name may only resolve later, and the dialer re-checks at every connection.
// Shape errors wrap ErrInvalidURL; address errors wrap ErrForbidden.
func CheckURL(ctx context.Context, raw string, allowPrivate bool, resolver *net.Resolver) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme must be http or https, got %q", ErrInvalidURL, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: credentials in the URL are not allowed; use a custom header", ErrInvalidURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port %q out of range", ErrInvalidURL, p)
		}
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := check(ip); err != nil {
			return fmt.Errorf("check url host: %w", err)
		}
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("check url host: %w: %s (loopback name)", ErrForbidden, host)
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	addrs, err := resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil // best effort: the dialer is the real guard
	}
	for _, a := range addrs {
		// The name is the caller's, the address is what DNS answered: naming
		// it would let whoever registers webhooks read internal DNS.
		if reason, bad := Forbidden(a); bad {
			return fmt.Errorf("check url host %s: %w: resolves to a forbidden address (%s)", host, ErrForbidden, reason)
		}
	}
	return nil
}
