package httpserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/service"
)

// A server whose listener fails after it started serving stops on its own,
// and the process (service.Run) ends with its error instead of running on
// without it.
func TestServer_ListenerFailureEndsTheProcess(t *testing.T) {
	s := New("api", "127.0.0.1:0", http.NotFoundHandler(), nil)
	done := make(chan error, 1)
	go func() { done <- service.Run(t.Context(), nil, time.Second, s) }()
	<-s.Started()
	s.mu.Lock()
	_ = s.ln.Close() // the listener dies underneath the server
	s.mu.Unlock()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "api stopped on its own") {
			t.Fatalf("Run returned %v; want the api's own stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the process runs on 5 s after its API stopped serving")
	}
	if s.Err() == nil {
		t.Fatal("Err is nil after the server stopped on its own")
	}
}
