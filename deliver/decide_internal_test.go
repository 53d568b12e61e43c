package deliver

import (
	"errors"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/httpsend"
)

func TestDecide_NeverDowngradesAFinishedDelivery(t *testing.T) {
	t.Parallel()
	w := &Worker{cfg: Config{RetrySchedule: []time.Duration{time.Minute}}}
	now := time.Now()
	fail := httpsend.Result{StatusCode: 500}
	ok := httpsend.Result{StatusCode: 204}
	timeout := httpsend.Result{ErrorClass: httpsend.ClassTimeout, Err: errors.New("deadline")}

	for _, tc := range []struct {
		name, current string
		attempt, max  int
		res           httpsend.Result
		status        string
		retry         bool
	}{
		{"failure of a pending delivery retries", statusPending, 1, 3, fail, statusPending, true},
		{"timeout of a pending delivery retries", statusPending, 2, 3, timeout, statusPending, true},
		{"last failure fails", statusPending, 3, 3, fail, statusFailed, false},
		{"410 fails at once", statusPending, 1, 3, httpsend.Result{StatusCode: 410}, statusFailed, false},
		{"a duplicate's failure keeps delivered", statusDelivered, 2, 3, fail, statusDelivered, false},
		{"a duplicate's failure keeps skipped", statusSkipped, 1, 3, fail, statusSkipped, false},
		{"a success upgrades failed", statusFailed, 4, 3, ok, statusDelivered, false},
	} {
		d := w.decide(tc.current, tc.attempt, tc.max, tc.res, now)
		if d.status != tc.status || (d.next != nil) != tc.retry {
			t.Errorf("%s: status %s retry %v, want %s retry %v", tc.name, d.status, d.next != nil, tc.status, tc.retry)
		}
		if d.next != nil {
			if gap := d.next.Sub(now); gap < 54*time.Second || gap > 66*time.Second {
				t.Errorf("%s: retry in %s, want 1m ±10%%", tc.name, gap)
			}
		}
	}
}

func TestRetryDelay_LastDelayRepeats(t *testing.T) {
	t.Parallel()
	s := []time.Duration{time.Second, 5 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 5 * time.Second, 9: 5 * time.Second} {
		if got := retryDelay(s, attempt); got != want {
			t.Errorf("retryDelay(%d) = %s, want %s", attempt, got, want)
		}
	}
}
