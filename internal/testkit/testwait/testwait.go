// Package testwait is how tests wait: on a condition, with a deadline, never
// a bare sleep.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often Until and For check their condition.
const Interval = 10 * time.Millisecond

// Until polls cond until it holds, failing t with describe() once within has
// passed.
func Until(t testing.TB, within time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	if !Poll(within, Interval, cond) {
		t.Fatalf("after %s: %s", within, describe())
	}
}

// For is Until for a condition named by what.
func For(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	Until(t, within, cond, func() string { return "timed out waiting for " + what })
}

// Poll checks cond every interval until it holds or within has passed, and
// reports whether it held: for a caller that goes on either way (a fault
// suite that reports what is missing, then waits a little longer).
func Poll(within, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}
