package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves an http.Handler as a service.Service named "api": Start
// listens and serves in the background, Stop shuts down gracefully, letting
// in-flight requests finish until its context expires.
type Server struct {
	addr string
	srv  *http.Server
	log  *slog.Logger

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{}
}

// NewServer returns a Server that will listen on addr (":0" picks a free port;
// Addr tells which) and serve h.
func NewServer(addr string, h http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		addr: addr,
		log:  log,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			// The test route waits for a receiver up to the delivery timeout.
			WriteTimeout:   2 * time.Minute,
			IdleTimeout:    2 * time.Minute,
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
}

// Name implements service.Service.
func (s *Server) Name() string { return "api" }

// Start listens on the address and serves in the background. It returns once
// the listener is bound, so requests may be sent as soon as it returns.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("api listen on %s: %w", s.addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.done = make(chan struct{})
	s.mu.Unlock()
	s.log.Info("api listening", "addr", ln.Addr().String())
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "err", err)
		}
	}()
	return nil
}

// Stop stops accepting connections and waits for in-flight requests to
// finish, or for ctx to expire, in which case remaining connections are closed.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("api graceful shutdown: %w", err), s.srv.Close())
	}
	<-done
	return err
}

// Addr returns the address the server listens on once started (the real
// port when the configured address was ":0"), else the configured address.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}
