package api

import (
	"net/netip"
	"net/url"
	"strings"
)

// numericHost returns the host of raw when it is an IPv4 address written in
// another form than four decimal numbers: shorthand ("127.1"), one decimal
// number ("2130706433"), hex ("0x7f000001", "0x7f.1") or octal ("0177.0.0.1").
// It follows the WHATWG URL standard: a host whose last label is a number
// (decimal, or hex with 0x) is an IPv4 address, never a name — no top-level
// domain is numeric. Parsers disagree about these forms (inet_aton reads
// "0177" as octal, others as decimal or not at all), so the address checked
// here could differ from the one a resolver or proxy on the way connects to;
// such hosts are refused rather than interpreted. Canonical dotted quads and
// bracketed IPv6 literals are not numeric hosts here: they are checked as
// addresses.
func numericHost(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || strings.HasPrefix(u.Host, "[") {
		return "", false
	}
	host := u.Hostname()
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if !isNumberLabel(labels[len(labels)-1]) {
		return "", false
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		return "", false
	}
	return host, true
}

// isNumberLabel reports whether s is a decimal number or a 0x hex number (the
// digits may be absent: "0x" is zero to a WHATWG parser).
func isNumberLabel(s string) bool {
	if hex, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return s != "" && strings.Trim(s, "0123456789") == ""
}
