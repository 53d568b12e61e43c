// Package service gives hookrelay's background parts (relay, worker, River
// maintenance, API server) one lifecycle, so a process is a list of services
// started in order and stopped in reverse.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ShutdownTimeout bounds how long a stopping hookrelay process waits for its
// services to finish or hand back in-flight work. A supervisor's grace period
// before SIGKILL (docker-compose.yml's stop_grace_period) must be longer.
const ShutdownTimeout = 30 * time.Second

// Service is a long-running part of a process.
//
// Start launches the service's goroutines and returns once it is running (or
// failed to start). Stop asks it to stop taking work, finish or hand back what
// is in flight, and returns when it has stopped or ctx expires.
type Service interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Run starts services in order, waits until ctx is done or one of them reports
// a fatal error on failed, then stops them in reverse order using stopCtx
// (which bounds the shutdown).
func Run(ctx context.Context, log *slog.Logger, failed <-chan error, stopCtx func() (context.Context, context.CancelFunc), services ...Service) error {
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
		select {
		case <-ctx.Done():
		case err := <-failed:
			runErr = err
		}
	}
	sctx, cancel := stopCtx()
	defer cancel()
	for i := len(started) - 1; i >= 0; i-- {
		if err := started[i].Stop(sctx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("stop %s: %w", started[i].Name(), err))
		}
		log.Info("stopped", "service", started[i].Name())
	}
	return runErr
}
