// Package testreceiver is a webhook receiver for tests: an HTTP server on
// loopback that records every request it gets and can be told to misbehave
// (answer 500, hang past the sender's timeout, reset the connection) for a
// share of requests.
package testreceiver

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Request is one request the receiver got.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
	// Status is what the receiver answered: an HTTP status, or 0 when it hung
	// or reset the connection instead.
	Status int
}

// Behavior sets the share (0..1) of requests answered each way; the rest get 200.
type Behavior struct {
	Fail  float64 // answer 500
	Hang  float64 // hold the request until the client gives up
	Reset float64 // close the TCP connection abruptly (RST)
}

// Receiver records requests; it is safe for concurrent use.
type Receiver struct {
	URL string

	srv      *httptest.Server
	mu       sync.Mutex
	reqs     []Request
	behavior Behavior
	rng      *rand.Rand
	changed  chan struct{}
}

// New starts a receiver on 127.0.0.1 that is closed when t ends.
func New(t testing.TB) *Receiver {
	r := &Receiver{rng: rand.New(rand.NewPCG(1, 2)), changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// SetBehavior changes how later requests are answered.
func (r *Receiver) SetBehavior(b Behavior) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.behavior = b
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	b, x := r.behavior, r.rng.Float64()
	r.mu.Unlock()
	rec := Request{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, At: time.Now()}
	switch {
	case x < b.Fail:
		rec.Status = http.StatusInternalServerError
	case x < b.Fail+b.Hang:
		r.record(rec)
		<-req.Context().Done() // the sender times out and hangs up
		return
	case x < b.Fail+b.Hang+b.Reset:
		r.record(rec)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tcp, ok := conn.(*net.TCPConn); ok {
					_ = tcp.SetLinger(0) // close sends RST
				}
				conn.Close()
			}
		}
		return
	default:
		rec.Status = http.StatusOK
	}
	r.record(rec)
	w.WriteHeader(rec.Status)
}

func (r *Receiver) record(rec Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, rec)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Requests returns a copy of what was received so far.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// WaitFor waits until cond holds for the requests received, failing t after timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Request) bool) []Request {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		reqs, changed := append([]Request(nil), r.reqs...), r.changed
		r.mu.Unlock()
		if cond(reqs) {
			return reqs
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("receiver: %s did not happen within %s (%d requests received)", what, timeout, len(reqs))
		}
	}
}
