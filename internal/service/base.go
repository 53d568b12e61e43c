package service

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrStopped is returned by Start once a service has been stopped: a
// hookrelay service runs once.
var ErrStopped = errors.New("service already stopped; it runs once")

type state int

const (
	idle state = iota
	running
	stopped
)

// Base is the lifecycle every hookrelay service embeds, in the manner of
// River's startstop.BaseStartStop: Start is idempotent (a second call while
// running does nothing), Stop is safe before Start and twice, and the
// Started and Stopped channels say where the service is. A service whose work
// ends on its own (its server failed, its client died) calls Exit, which
// closes Stopped with the reason; Run then ends the process.
//
// The zero Base is ready to use. An internal service embeds it; a public one
// (relay.Relay, deliver.Worker) keeps it in an unexported field and forwards
// Started, Stopped and Err, so that its users cannot call Exit. The service's
// own Start and Stop pass their specific work to Base.Start and Base.Stop:
//
//	func (s *S) Start(ctx context.Context) error {
//		return s.Base.Start(func() error { …; go s.loop(); return nil })
//	}
//	func (s *S) Stop(ctx context.Context) error {
//		return s.Base.Stop(func() error { …; return nil })
//	}
type Base struct {
	mu    sync.Mutex
	state state

	chans     sync.Once
	started   chan struct{}
	stoppedCh chan struct{}

	stopping atomic.Bool // Stop was called: an exit from now on was asked for
	exit     sync.Once
	err      error
}

func (b *Base) init() {
	b.chans.Do(func() {
		b.started = make(chan struct{})
		b.stoppedCh = make(chan struct{})
	})
}

// Start runs start unless the service is already running (then it returns
// nil) or was stopped (then ErrStopped). When start fails the service stays
// unstarted and may be started again.
func (b *Base) Start(start func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	switch b.state {
	case running:
		return nil
	case stopped:
		return ErrStopped
	}
	if err := start(); err != nil {
		return err
	}
	b.state = running
	close(b.started)
	return nil
}

// Stop runs stop once, if the service is running, then closes Stopped (unless
// the service had already exited on its own). Before Start, and after a first
// Stop, it does nothing and returns nil.
func (b *Base) Stop(stop func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if b.state != running {
		return nil
	}
	b.state = stopped
	b.stopping.Store(true)
	err := stop()
	b.Exit(nil)
	return err
}

// Exit reports that the service's work has ended on its own, with err saying
// why. Only the first call counts, and none once Stop has begun (work ending
// then was asked to). It never blocks, so the service's own goroutines may
// call it.
func (b *Base) Exit(err error) {
	b.init()
	b.exit.Do(func() {
		if b.stopping.Load() {
			err = nil
		}
		b.err = err
		close(b.stoppedCh)
	})
}

// Started is closed once Start has succeeded.
func (b *Base) Started() <-chan struct{} {
	b.init()
	return b.started
}

// Stopped is closed once the service has stopped, by Stop or on its own.
func (b *Base) Stopped() <-chan struct{} {
	b.init()
	return b.stoppedCh
}

// Err is why the service stopped on its own (see Exit); nil while it runs and
// after a requested stop.
func (b *Base) Err() error {
	select {
	case <-b.Stopped():
		return b.err
	default:
		return nil
	}
}
