package httpserver_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/httpserver"
	"github.com/hookrelay/hookrelay/internal/service"
)

var hello = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })

func TestServer_StartTwiceListensOnceAndStopEndsServing(t *testing.T) {
	s := httpserver.New("metrics", "127.0.0.1:0", hello, nil)
	if s.Name() != "metrics" {
		t.Fatalf("Name %q, want metrics", s.Name())
	}
	for range 2 {
		if err := s.Start(t.Context()); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	resp, err := http.Get("http://" + s.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for range 2 {
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	if _, err := http.Get("http://" + s.Addr() + "/"); err == nil {
		t.Fatal("still serving after Stop")
	}
	if s.Err() != nil {
		t.Fatalf("Err after a requested stop: %v", s.Err())
	}
}

// A process whose API cannot bind must not start the rest and run on
// without it.
func TestServer_AddressInUseFailsTheProcess(t *testing.T) {
	first := httpserver.New("api", "127.0.0.1:0", hello, nil)
	if err := first.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Stop(context.Background()) })
	second := httpserver.New("api", first.Addr(), hello, nil)
	err := service.Run(t.Context(), nil, time.Second, second)
	if err == nil || !strings.Contains(err.Error(), "start api") {
		t.Fatalf("Run with the address taken: %v; want a start error naming api", err)
	}
}
