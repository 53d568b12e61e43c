// Package service gives hookrelay's background parts (relay, worker, River
// client, HTTP servers) one lifecycle, so a process is a list of services
// started in order and stopped in reverse, and it ends when any of them stops
// on its own.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"
)

// ShutdownTimeout bounds how long a stopping hookrelay process waits for its
// services to finish or hand back in-flight work. A supervisor's grace period
// before SIGKILL (docker-compose.yml's stop_grace_period) must be longer.
const ShutdownTimeout = 30 * time.Second

// Service is a long-running part of a process. Embedding Base provides
// Started, Stopped and Err and the rules of Start and Stop.
//
// Start launches the service's goroutines and returns once it is running (or
// failed to start). Stop asks it to stop taking work, finish or hand back what
// is in flight, and returns when it has stopped or ctx expires.
type Service interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	// Stopped is closed once the service has stopped, asked to or not.
	Stopped() <-chan struct{}
	// Err says why a service stopped on its own.
	Err() error
}

// Run starts services in order and waits until ctx is done or one of them
// stops on its own; then it stops those started, in reverse order, each
// within stopTimeout in all. A service that stopped on its own makes Run
// return an error naming it, so the process exits instead of running on
// without it.
func Run(ctx context.Context, log *slog.Logger, stopTimeout time.Duration, services ...Service) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var started []Service
	var runErr error
	for _, s := range services {
		if err := s.Start(ctx); err != nil {
			runErr = fmt.Errorf("start %s: %w", s.Name(), err)
			break
		}
		log.Info("started", "service", s.Name())
		started = append(started, s)
	}
	if runErr == nil {
		runErr = wait(ctx, started)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	for i := len(started) - 1; i >= 0; i-- {
		if err := started[i].Stop(sctx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("stop %s: %w", started[i].Name(), err))
		}
		log.Info("stopped", "service", started[i].Name())
	}
	return runErr
}

// wait returns nil when ctx is done, or an error when a service stops first.
func wait(ctx context.Context, services []Service) error {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	for _, s := range services {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.Stopped())})
	}
	i, _, _ := reflect.Select(cases)
	if i == 0 {
		return nil
	}
	s := services[i-1]
	if err := s.Err(); err != nil {
		return fmt.Errorf("%s stopped on its own: %w", s.Name(), err)
	}
	return fmt.Errorf("%s stopped on its own", s.Name())
}
