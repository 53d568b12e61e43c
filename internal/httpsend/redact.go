package httpsend

import "strings"

// Redacted replaces the value of a sensitive header.
const Redacted = "[redacted]"

// sensitiveNames are headers always redacted (lower case).
var sensitiveNames = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
	"set-cookie":          true,
	"x-api-key":           true,
}

// sensitiveParts redact any header whose lower-cased name contains one of them.
var sensitiveParts = []string{"token", "secret", "key", "auth", "passw", "cookie", "session", "signature", "credential"}

// Redact returns a copy of headers, for anything stored or logged, in which the
// values of Authorization, Proxy-Authorization, Cookie, X-Api-Key and any header
// whose name contains "token", "secret", "key", "auth" (and a few similar words)
// are replaced by "[redacted]". Names are compared case-insensitively.
func Redact(headers map[string]string) map[string]string {
	if headers == nil {
		return nil
	}
	out := make(map[string]string, len(headers))
	for k, v := range headers {
		if Sensitive(k) {
			v = Redacted
		}
		out[k] = v
	}
	return out
}

// Sensitive reports whether Redact hides the value of the header named name.
func Sensitive(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	if sensitiveNames[n] {
		return true
	}
	for _, p := range sensitiveParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}
