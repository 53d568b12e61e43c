// Package outage tracks one dependency (Postgres, Redis) as seen by one loop
// of one process: it turns a run of failures and the success that ends it
// into two log lines — one when the dependency becomes unavailable, one when
// it is back — counts every failure in between, and paces the retries with
// capped exponential backoff. A loop that retries through an outage thus
// neither hot-loops nor writes a line per attempt.
package outage

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the backoff between retries.
const (
	DefaultMinWait = 50 * time.Millisecond
	DefaultMaxWait = 5 * time.Second
)

// Tracker follows one dependency for one loop. The zero value is not usable;
// a nil *Tracker is (it logs and counts nothing, and waits DefaultMinWait).
type Tracker struct {
	what     string // e.g. "postgres: record deliveries"
	log      *slog.Logger
	failures prometheus.Counter // may be nil

	mu    sync.Mutex
	run   int       // failures since the last success
	since time.Time // first failure of the current run
}

// New returns a tracker of what (named in its log lines). log may be nil
// (discard); failures, when not nil, counts every failure.
func New(what string, log *slog.Logger, failures prometheus.Counter) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{what: what, log: log, failures: failures}
}

// Fail records a failure. The first of a run logs one warning with err; the
// others are only counted.
func (t *Tracker) Fail(err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.run++
	first := t.run == 1
	if first {
		t.since = time.Now()
	}
	t.mu.Unlock()
	if t.failures != nil {
		t.failures.Inc()
	}
	if first {
		t.log.Warn("dependency unavailable; retrying with backoff", "op", t.what, "err", err)
	}
}

// OK records a success; if it ends a run of failures, it logs how long the
// outage lasted and how many attempts failed.
func (t *Tracker) OK() {
	if t == nil {
		return
	}
	t.mu.Lock()
	run, since := t.run, t.since
	t.run = 0
	t.mu.Unlock()
	if run > 0 {
		t.log.Info("dependency available again", "op", t.what, "failed_attempts", run,
			"outage", time.Since(since).Round(time.Millisecond))
	}
}

// Down reports whether the last attempt failed.
func (t *Tracker) Down() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.run > 0
}

// Wait sleeps the backoff for the current run of failures (DefaultMinWait
// doubling up to DefaultMaxWait, ±20 %), or until ctx ends; it reports
// whether ctx is still alive.
func (t *Tracker) Wait(ctx context.Context) bool {
	timer := time.NewTimer(t.Backoff())
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// Backoff is the wait before the next retry of the current run.
func (t *Tracker) Backoff() time.Duration {
	run := 1
	if t != nil {
		t.mu.Lock()
		run = max(t.run, 1)
		t.mu.Unlock()
	}
	return Backoff(run)
}

// Backoff is the wait after the n-th consecutive failure (n >= 1).
func Backoff(n int) time.Duration {
	d := DefaultMinWait << min(max(n-1, 0), 10)
	d = min(d, DefaultMaxWait)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
