package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/internal/httpsend"
	loopback "github.com/hookrelay/hookrelay/internal/receiver"
)

// receiver is the loopback receiver (package receiver) with the bench's
// bookkeeping: it answers 200 with no body, keeps no copy of the requests,
// and remembers when each event first arrived and which delivery ids it saw
// (to count duplicates).
type receiver struct {
	URL string

	srv      *loopback.Receiver
	requests atomic.Int64

	mu         sync.Mutex
	deliveries map[string]struct{}
	firstSeen  map[uuid.UUID]time.Time // event id → first receipt
	header     string                  // the delivery-id header
}

// newReceiver starts a receiver on 127.0.0.1; close it with close.
func newReceiver() (*receiver, error) {
	r := &receiver{
		deliveries: make(map[string]struct{}),
		firstSeen:  make(map[uuid.UUID]time.Time),
		header:     httpsend.DefaultHeaderPrefix + "-Delivery",
	}
	srv, err := loopback.Start(loopback.Options{Forget: true, Observe: r.observe})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r.srv, r.URL = srv, srv.URL+"/hook"
	return r, nil
}

// fixture is what a delivering scenario starts from: a receiver, a webhook
// that delivers to it, and a fresh stream key and group.
type fixture struct {
	rcv        *receiver
	hook       hook
	key, group string
}

// fixture starts a receiver (the caller closes it) and creates the webhook.
func (e *env) fixture(ctx context.Context) (fixture, error) {
	rcv, err := newReceiver()
	if err != nil {
		return fixture{}, err
	}
	h, err := e.webhook(ctx, rcv.URL)
	if err != nil {
		rcv.close()
		return fixture{}, err
	}
	key, group := e.stream()
	return fixture{rcv: rcv, hook: h, key: key, group: group}, nil
}

func (r *receiver) close() { r.srv.Close() }

func (r *receiver) observe(req loopback.Request) {
	event, ok := eventID(req.Body)
	r.requests.Add(1)
	r.mu.Lock()
	r.deliveries[req.Header.Get(r.header)] = struct{}{}
	if ok {
		if _, seen := r.firstSeen[event]; !seen {
			r.firstSeen[event] = req.At
		}
	}
	r.mu.Unlock()
}

// eventID reads the envelope's id, which deliver.Envelope encodes first.
func eventID(body []byte) (uuid.UUID, bool) {
	const prefix = `{"id":"`
	if bytes.HasPrefix(body, []byte(prefix)) && len(body) >= len(prefix)+36 {
		if id, err := uuid.ParseBytes(body[len(prefix) : len(prefix)+36]); err == nil {
			return id, true
		}
	}
	var env struct {
		ID uuid.UUID `json:"id"`
	}
	if json.Unmarshal(body, &env) != nil {
		return uuid.Nil, false
	}
	return env.ID, true
}

// counts returns how many requests arrived and how many distinct delivery
// ids they carried.
func (r *receiver) counts() (requests, distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int(r.requests.Load()), len(r.deliveries)
}

// reset forgets everything received.
func (r *receiver) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests.Store(0)
	r.deliveries = make(map[string]struct{})
	r.firstSeen = make(map[uuid.UUID]time.Time)
}

// received returns when each of ids first arrived (missing ones are absent).
func (r *receiver) received(ids []uuid.UUID) map[uuid.UUID]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[uuid.UUID]time.Time, len(ids))
	for _, id := range ids {
		if t, ok := r.firstSeen[id]; ok {
			out[id] = t
		}
	}
	return out
}

// arrivals returns when each distinct event first arrived, in order.
func (r *receiver) arrivals() []time.Time {
	r.mu.Lock()
	out := make([]time.Time, 0, len(r.firstSeen))
	for _, t := range r.firstSeen {
		out = append(out, t)
	}
	r.mu.Unlock()
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// newDeadReceiver starts an endpoint that accepts every request and never
// answers: each one hangs until the sender's timeout (Close cuts them short).
// Count says how many arrived.
func newDeadReceiver() (*loopback.Receiver, error) {
	srv, err := loopback.Start(loopback.Options{Forget: true, Respond: loopback.NewFlaky(loopback.Behavior{Hang: 1}).Respond})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return srv, nil
}

// firstCount is how many distinct events arrived.
func (r *receiver) firstCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.firstSeen)
}

// waitDistinct waits until n distinct deliveries arrived, or timeout.
func (r *receiver) waitDistinct(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := r.srv.Wait(ctx, func([]loopback.Request) bool {
		_, distinct := r.counts()
		return distinct >= n
	})
	if err != nil {
		_, got := r.counts()
		return fmt.Errorf("bench: %d of %d deliveries received within %s: %w", got, n, timeout, err)
	}
	return nil
}

// errTimeout is returned by waitUntil when the condition never held.
var errTimeout = errors.New("condition not met in time")

// waitUntil polls cond every interval until it holds, fails, or timeout passes.
func waitUntil(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
