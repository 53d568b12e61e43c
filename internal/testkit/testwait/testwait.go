// Package testwait is how tests wait: on a condition, with a deadline, never
// a bare sleep.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 10 * time.Millisecond

// Until polls cond until it holds, failing t with describe() once within has
// passed.
func Until(t testing.TB, within time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, describe())
		}
		time.Sleep(Interval)
	}
}
