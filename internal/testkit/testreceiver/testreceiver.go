// Package testreceiver starts hookrelay's loopback receiver (package
// receiver) for a test: it is closed when the test ends, misbehaves on
// demand, and is waited on with a deadline.
package testreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/receiver"
)

// Request and Behavior are the receiver's.
type (
	Request  = receiver.Request
	Behavior = receiver.Behavior
)

// Receiver is a receiver whose answers SetBehavior can spoil.
type Receiver struct {
	*receiver.Receiver
	flaky *receiver.Flaky
}

// New starts a receiver that answers 200 (until SetBehavior says otherwise);
// it is closed when t ends.
func New(t testing.TB) *Receiver {
	t.Helper()
	f := receiver.NewFlaky(Behavior{})
	return &Receiver{Receiver: Start(t, receiver.Options{Respond: f.Respond}), flaky: f}
}

// Start starts a receiver with opts; it is closed when t ends.
func Start(t testing.TB, opts receiver.Options) *receiver.Receiver {
	t.Helper()
	r, err := receiver.Start(opts)
	if err != nil {
		t.Fatalf("testreceiver: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// SetBehavior changes how later requests are answered.
func (r *Receiver) SetBehavior(b Behavior) { r.flaky.Set(b) }

// WaitFor waits until cond holds for the requests received, failing t after
// timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Request) bool) []Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	reqs, err := r.Wait(ctx, cond)
	if err != nil {
		t.Fatalf("receiver: %s did not happen within %s: %v", what, timeout, err)
	}
	return reqs
}
