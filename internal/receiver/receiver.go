// Package receiver is a webhook receiver on loopback, the one that hookrelay's
// demo, bench and tests send to: it records what it gets, answers as it is
// told, and lets a caller wait for what it expects. Flaky answers a share of
// requests badly (500, a hang past the sender's timeout, a reset connection).
package receiver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// Request is one request the receiver got.
type Request struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time // when it arrived
	// Status is what the receiver answered: an HTTP status, or 0 when it
	// hung until the sender gave up or reset the connection instead.
	Status int
	// Answered says the exchange is over (Status is final).
	Answered bool
}

// Respond answers the n-th request (n counts from 1).
type Respond func(n int, w http.ResponseWriter, r *http.Request)

// Options say how a receiver answers and what it keeps.
type Options struct {
	// Respond answers each request; nil answers 200 with an empty body.
	Respond Respond
	// Observe, when set, sees each request once it is answered (the bench
	// notes first receipts there).
	Observe func(Request)
	// Forget keeps no copy of the requests (Requests returns none; Count
	// still counts): for the bench, which receives millions. The Request
	// given to Observe is then valid only during the call.
	Forget bool
}

// Receiver is an HTTP server on 127.0.0.1; it is safe for concurrent use.
type Receiver struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string

	opts Options
	srv  *http.Server

	handlers sync.WaitGroup // requests being served

	mu      sync.Mutex
	n       int // requests arrived
	reqs    []Request
	changed chan struct{} // closed and replaced at every recorded request
}

// Start starts a receiver on a free loopback port; Close stops it.
func Start(opts Options) (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: listen: %w", err)
	}
	r := &Receiver{URL: "http://" + ln.Addr().String(), opts: opts, changed: make(chan struct{})}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Close stops the receiver, cutting requests still held (a hang) short; no
// Observe runs after it returns.
func (r *Receiver) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if r.srv.Shutdown(ctx) != nil {
		_ = r.srv.Close()
	}
	r.handlers.Wait()
}

// MaxBody is the most of a request body the receiver reads and keeps.
const MaxBody = 1 << 20

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.handlers.Add(1)
	defer r.handlers.Done()
	rec := Request{Path: req.URL.Path, Header: req.Header, At: time.Now()}
	rec.Body, _ = io.ReadAll(io.LimitReader(req.Body, MaxBody))
	if !r.opts.Forget {
		rec.Header = req.Header.Clone()
	}
	r.mu.Lock()
	r.n++
	n, i := r.n, -1
	if !r.opts.Forget {
		r.reqs = append(r.reqs, rec)
		i = len(r.reqs) - 1
	}
	r.notifyLocked()
	r.mu.Unlock()

	sw := &statusWriter{ResponseWriter: w}
	if r.opts.Respond != nil {
		req.Body = io.NopCloser(bytes.NewReader(rec.Body))
		r.opts.Respond(n, sw, req)
	}
	switch {
	case sw.hijacked, sw.status == 0 && req.Context().Err() != nil:
		rec.Status = 0 // reset, or held until the sender hung up
	case sw.status == 0:
		rec.Status = http.StatusOK
	default:
		rec.Status = sw.status
	}
	rec.Answered = true
	if r.opts.Observe != nil {
		r.opts.Observe(rec) // before the waiters look again
	}
	r.mu.Lock()
	if i >= 0 {
		r.reqs[i].Status, r.reqs[i].Answered = rec.Status, true
	}
	r.notifyLocked()
	r.mu.Unlock()
}

func (r *Receiver) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Requests returns a copy of what was received so far, in the order of
// arrival. A request is listed as soon as it arrives, unanswered.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Count is how many requests have arrived.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Wait waits until cond holds for the requests received (checked as each
// arrives and as each is answered, after Observe), and returns them; it
// fails when ctx ends first. With Forget, cond sees no requests but may look
// at what Observe keeps.
func (r *Receiver) Wait(ctx context.Context, cond func([]Request) bool) ([]Request, error) {
	for {
		r.mu.Lock()
		reqs, changed := append([]Request(nil), r.reqs...), r.changed
		r.mu.Unlock()
		if cond(reqs) {
			return reqs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return reqs, fmt.Errorf("receiver: %d requests received: %w", len(reqs), ctx.Err())
		}
	}
}

// statusWriter notes the status a Respond wrote and whether it took the
// connection over.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("receiver: connection cannot be taken over")
	}
	w.hijacked = true
	return hj.Hijack()
}

// Behavior sets the share (0..1) of requests a Flaky answers each way; the
// rest get 200.
type Behavior struct {
	Fail  float64 // answer 500
	Hang  float64 // hold the request until the sender gives up
	Reset float64 // close the TCP connection abruptly (RST)
}

// Flaky answers a share of requests badly, as its Behavior says; Set changes
// it while requests flow. Its choices follow a fixed seed, so a run repeats.
type Flaky struct {
	mu  sync.Mutex
	b   Behavior
	rng *rand.Rand
}

// NewFlaky returns a Flaky that answers as b says.
func NewFlaky(b Behavior) *Flaky { return &Flaky{b: b, rng: rand.New(rand.NewPCG(1, 2))} }

// Set changes how later requests are answered.
func (f *Flaky) Set(b Behavior) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.b = b
}

// Respond is a Respond for Options.
func (f *Flaky) Respond(_ int, w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	b, x := f.b, f.rng.Float64()
	f.mu.Unlock()
	switch {
	case x < b.Fail:
		w.WriteHeader(http.StatusInternalServerError)
	case x < b.Fail+b.Hang:
		<-req.Context().Done() // the sender times out and hangs up
	case x < b.Fail+b.Hang+b.Reset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tcp, ok := conn.(*net.TCPConn); ok {
					_ = tcp.SetLinger(0) // close sends RST
				}
				conn.Close()
			}
		}
	default:
		w.WriteHeader(http.StatusOK)
	}
}
