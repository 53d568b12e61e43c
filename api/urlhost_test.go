package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/api"
)

// TestWebhooks_NumericIPv4HostFormsRefused checks that IPv4 addresses written
// as shorthand, decimal, hex or octal are refused on create and update, even
// with private networks allowed (they are ambiguous, not merely private), while
// canonical literals keep today's rules.
func TestWebhooks_NumericIPv4HostFormsRefused(t *testing.T) {
	t.Parallel()
	for _, allowPrivate := range []bool{true, false} {
		e := newEnv(t, func(c *api.Config) { c.AllowPrivate = allowPrivate })
		id := e.createWebhook("https://203.0.113.10/in", nil)["id"].(string)
		for _, host := range []string{
			"127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1",
			"0X7F.0.0.1", "8.8.8.010", "134744072", "1.2.3.4.",
		} {
			u := "http://" + host + ":8080/in"
			for _, r := range []response{
				e.do("POST", "/webhooks", validWebhook(u, nil)),
				e.do("PATCH", "/webhooks/"+id, map[string]any{"url": u}),
			} {
				r.wantError(t, http.StatusBadRequest, "invalid_field", "url: host ")
				if !strings.Contains(string(r.body), "four decimal numbers") {
					t.Errorf("allowPrivate=%v, %s: message does not say why: %s", allowPrivate, u, r.body)
				}
			}
		}
		if n := e.count(`SELECT count(*) FROM hookrelay.webhooks WHERE url <> 'https://203.0.113.10/in'`); n != 0 {
			t.Fatalf("allowPrivate=%v: %d webhooks stored or changed by refused requests", allowPrivate, n)
		}

		// Canonical literals and names ending in a label that is not a number
		// are checked as before.
		for _, u := range []string{"https://203.0.113.11/in", "http://[2001:db8::1]:8080/in", "https://1.example/in", "https://hooks.0x7f.example/in"} {
			e.createWebhook(u, nil)
		}
		if !allowPrivate {
			e.do("POST", "/webhooks", validWebhook("http://127.0.0.1/in", nil)).wantError(t, 400, "invalid_field", "url: must not point at a private")
		} else {
			e.createWebhook("http://127.0.0.1/in", nil)
		}
	}
}
