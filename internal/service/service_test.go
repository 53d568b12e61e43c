package service_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/service"
)

// fake is a service that counts its starts and stops and can die on its own.
type fake struct {
	service.Base
	name          string
	starts, stops int
	failStart     error
	order         *[]string
	mu            *sync.Mutex
}

func (f *fake) Name() string { return f.name }

func (f *fake) Start(context.Context) error {
	return f.Base.Start(func() error {
		if f.failStart != nil {
			return f.failStart
		}
		f.starts++
		return nil
	})
}

func (f *fake) Stop(context.Context) error {
	return f.Base.Stop(func() error {
		f.stops++
		if f.order != nil {
			f.mu.Lock()
			*f.order = append(*f.order, f.name)
			f.mu.Unlock()
		}
		return nil
	})
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestBase_StartIsIdempotentAndStopIsSafeBeforeStartAndTwice(t *testing.T) {
	f := &fake{name: "f"}
	ctx := t.Context()
	if err := f.Stop(ctx); err != nil || f.stops != 0 {
		t.Fatalf("Stop before Start: err %v, stops %d; want nil and no stop work", err, f.stops)
	}
	if closed(f.Started()) || closed(f.Stopped()) {
		t.Fatal("Started or Stopped closed before Start")
	}
	for range 2 {
		if err := f.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	if f.starts != 1 || !closed(f.Started()) || closed(f.Stopped()) {
		t.Fatalf("after two Starts: %d starts, started %v, stopped %v; want 1, true, false",
			f.starts, closed(f.Started()), closed(f.Stopped()))
	}
	for range 2 {
		if err := f.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	if f.stops != 1 || !closed(f.Stopped()) || f.Err() != nil {
		t.Fatalf("after two Stops: %d stops, stopped %v, err %v; want 1, true, nil", f.stops, closed(f.Stopped()), f.Err())
	}
	if err := f.Start(ctx); !errors.Is(err, service.ErrStopped) {
		t.Fatalf("Start after Stop: %v, want ErrStopped", err)
	}
}

func TestBase_FailedStartLeavesItStartable(t *testing.T) {
	f := &fake{name: "f", failStart: errors.New("no")}
	if err := f.Start(t.Context()); err == nil || closed(f.Started()) {
		t.Fatalf("failing Start: err %v, started %v", err, closed(f.Started()))
	}
	f.failStart = nil
	if err := f.Start(t.Context()); err != nil || f.starts != 1 {
		t.Fatalf("second Start: err %v, starts %d", err, f.starts)
	}
}

func TestBase_ExitDuringStopIsNotAnError(t *testing.T) {
	f := &fake{name: "f"}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = f.Base.Stop(func() error { f.Exit(errors.New("loop ended")); return nil })
	if f.Err() != nil {
		t.Fatalf("Err after an exit during Stop: %v, want nil", f.Err())
	}
}

func TestRun_EndsWhenAServiceStopsOnItsOwnAndStopsTheRestInReverse(t *testing.T) {
	var order []string
	var mu sync.Mutex
	a := &fake{name: "a", order: &order, mu: &mu}
	b := &fake{name: "b", order: &order, mu: &mu}
	c := &fake{name: "c", order: &order, mu: &mu}
	done := make(chan error, 1)
	go func() { done <- service.Run(t.Context(), nil, time.Second, a, b, c) }()
	<-c.Started()
	b.Exit(errors.New("bind: address in use"))
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "b stopped on its own") || !strings.Contains(err.Error(), "address in use") {
			t.Fatalf("Run returned %v; want b's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running 5 s after a service stopped on its own")
	}
	// b's Stop runs too: a service that died may still hold resources.
	if !slices.Equal(order, []string{"c", "b", "a"}) {
		t.Fatalf("stop order %v, want [c b a]", order)
	}
}

func TestRun_StopsWhatStartedWhenAStartFails(t *testing.T) {
	var order []string
	var mu sync.Mutex
	a := &fake{name: "a", order: &order, mu: &mu}
	b := &fake{name: "b", failStart: errors.New("no schema")}
	c := &fake{name: "c"}
	err := service.Run(t.Context(), nil, time.Second, a, b, c)
	if err == nil || !strings.Contains(err.Error(), "start b: no schema") {
		t.Fatalf("Run returned %v; want start b's error", err)
	}
	if !slices.Equal(order, []string{"a"}) || c.starts != 0 {
		t.Fatalf("stopped %v, c started %d times; want [a] and 0", order, c.starts)
	}
}

func TestRun_ReturnsNilWhenContextEnds(t *testing.T) {
	a := &fake{name: "a"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, nil, time.Second, a) }()
	<-a.Started()
	cancel()
	if err := <-done; err != nil || a.stops != 1 {
		t.Fatalf("Run after cancel: %v, stops %d; want nil, 1", err, a.stops)
	}
}
