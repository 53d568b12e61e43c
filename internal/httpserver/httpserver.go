// Package httpserver serves an http.Handler as a hookrelay service: the API
// and the metrics listener are both one of these, named after what they serve.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/internal/service"
)

// MaxHeaderBytes is the largest request line and header block the server
// reads (net/http's default). Beyond it net/http answers a plain-text 431
// before the handler runs, so a handler with a tighter limit (the API's is
// 64 KiB) enforces it itself, in its own error format.
const MaxHeaderBytes = http.DefaultMaxHeaderBytes

// Server serves a handler on an address. Start listens and serves in the
// background; Stop shuts down gracefully, letting in-flight requests finish
// until its context expires. A server that stops serving on its own (its
// listener failed) reports it through Stopped and Err.
type Server struct {
	service.Base

	name string
	addr string
	srv  *http.Server
	log  *slog.Logger

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{}
}

// New returns a Server called name that will listen on addr (":0" picks a
// free port; Addr tells which) and serve h. A nil log discards.
func New(name, addr string, h http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		name: name,
		addr: addr,
		log:  log,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			// The API's test route waits for a receiver up to the delivery timeout.
			WriteTimeout:   2 * time.Minute,
			IdleTimeout:    2 * time.Minute,
			MaxHeaderBytes: MaxHeaderBytes,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
}

// Name implements service.Service.
func (s *Server) Name() string { return s.name }

// Start listens on the address and serves in the background. It returns once
// the listener is bound, so requests may be sent as soon as it returns.
func (s *Server) Start(ctx context.Context) error {
	return s.Base.Start(func() error {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", s.addr)
		if err != nil {
			return fmt.Errorf("%s listen on %s: %w", s.name, s.addr, err)
		}
		s.mu.Lock()
		s.ln = ln
		s.done = make(chan struct{})
		s.mu.Unlock()
		s.log.Info("listening", "addr", ln.Addr().String())
		go func() {
			defer close(s.done)
			if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Exit(fmt.Errorf("serve: %w", err))
			}
		}()
		return nil
	})
}

// Stop stops accepting connections and waits for in-flight requests to
// finish, or for ctx to expire, in which case remaining connections are closed.
func (s *Server) Stop(ctx context.Context) error {
	return s.Base.Stop(func() error {
		err := s.srv.Shutdown(ctx)
		if err != nil {
			err = errors.Join(fmt.Errorf("%s graceful shutdown: %w", s.name, err), s.srv.Close())
		}
		<-s.done
		return err
	})
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
