package deliver

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// deferShare: the endpoint held its share of the worker's slots and its
// waiting line was full (metrics.DeliveriesDeferred label).
const deferShare = "share"

// minShare is the fewest slots an endpoint may always hold.
const minShare = 4

// The lines' bounds: an endpoint's line holds at most lineFactor ×
// Concurrency deliveries, and all lines together at most maxLineBytes of
// payload. A hanging endpoint's deliveries so wait in memory until its
// breaker opens (one timeout) and are then parked at once, instead of going
// round through Postgres every second or two meanwhile.
const (
	lineFactor   = 64
	maxLineBytes = 64 << 20
)

// shares keeps one endpoint from holding the worker's slots: an endpoint
// that hangs (every request waits for the timeout) would otherwise take
// every slot within a second, and the others would get nothing until the
// timeout ends and its breaker opens. An endpoint may hold half of the
// slots, or Concurrency / (how many endpoints have requests in flight) when
// more than two do, and at least minShare (a single fast endpoint loses
// nothing measurable: 128 of the default 256 in flight deliver as fast as
// 256 on a loopback receiver). A delivery over its endpoint's share waits in
// that endpoint's line, holding no slot (its stream entry stays pending
// and heartbeated, as it is in flight here), and starts when one of the
// endpoint's requests ends; past the lines' bounds a delivery is deferred
// through Postgres for a second or two instead.
type shares struct {
	mu       sync.Mutex
	inflight map[uuid.UUID]int
	waiting  map[uuid.UUID][]waiter
	bytes    int                // payload held in the lines
	open     map[uuid.UUID]bool // breakers this process knows to be open
}

// waiter is a delivery in its endpoint's line.
type waiter struct {
	j job
	t *target
}

func newShares() *shares {
	return &shares{inflight: map[uuid.UUID]int{}, waiting: map[uuid.UUID][]waiter{}, open: map[uuid.UUID]bool{}}
}

// share is how many slots one endpoint may hold: never more than half, so
// that the worker always has slots to read with and so to find the other
// endpoints' deliveries behind a hanging one; an equal part while several
// have requests in flight.
func (s *shares) share(concurrency int) int {
	return max(minShare, concurrency/max(len(s.inflight), 2))
}

// admit takes a slot of t's endpoint for a delivery that holds a worker
// slot: it reports started (go ahead), or queued (it waits in line and its
// worker slot is free), or neither (the line is full: defer it).
func (s *shares) admit(w waiter, concurrency int) (started, queued bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := w.t.WebhookID
	if _, active := s.inflight[wh]; !active {
		s.inflight[wh] = 0 // counts among the active endpoints from now on
	}
	if s.inflight[wh] < s.share(concurrency) {
		s.inflight[wh]++
		w.t.counted = true
		return true, false
	}
	if len(s.waiting[wh]) < lineFactor*concurrency && s.bytes+len(w.t.Payload) <= maxLineBytes {
		s.waiting[wh] = append(s.waiting[wh], w)
		s.bytes += len(w.t.Payload)
		return false, true
	}
	if s.inflight[wh] == 0 {
		delete(s.inflight, wh)
	}
	return false, false
}

// done ends a request of t's endpoint. It returns the next in the
// endpoint's line to start with the slot this request frees, if the
// endpoint is within its share; or, when this process knows the endpoint's
// breaker to be open, the whole line, to park.
func (s *shares) done(t *target, concurrency int) (next *waiter, park []waiter) {
	if t == nil || !t.counted {
		return nil, nil
	}
	t.counted = false
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := t.WebhookID
	s.inflight[wh]--
	line := s.waiting[wh]
	switch {
	case len(line) > 0 && s.open[wh]:
		park = line
		delete(s.waiting, wh)
		for _, p := range park {
			s.bytes -= len(p.t.Payload)
		}
	case len(line) > 0 && s.inflight[wh] < s.share(concurrency):
		next = &line[0]
		s.bytes -= len(next.t.Payload)
		s.waiting[wh] = line[1:]
		if len(line) == 1 {
			delete(s.waiting, wh)
		}
		s.inflight[wh]++
		next.t.counted = true
	}
	if s.inflight[wh] == 0 && len(s.waiting[wh]) == 0 {
		delete(s.inflight, wh)
	}
	return next, park
}

// setOpen records that webhook's breaker is open, or not.
func (s *shares) setOpen(webhook uuid.UUID, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if open {
		s.open[webhook] = true
	} else {
		delete(s.open, webhook)
	}
}

// launch starts processing a loaded job, which holds a worker slot, within
// its endpoint's share (see shares).
func (w *Worker) launch(ctx context.Context, j job, t *target) {
	if t == nil || !t.sendable() {
		go w.handle(ctx, j, t) // no request: no share
		return
	}
	started, queued := w.shares.admit(waiter{j: j, t: t}, w.cfg.Concurrency)
	switch {
	case started:
		go w.handle(ctx, j, t)
	case queued:
		w.release(1)
	default:
		w.deferJobs(ctx, []deferral{{j: j, webhook: t.WebhookID, at: time.Now().Add(time.Second + spread(time.Second)), slotAt: t.SlotHeld, reason: deferShare}})
	}
}

// next hands the slot of a finished request to the next delivery in its
// endpoint's line, or frees it; a line whose breaker opened meanwhile is
// parked instead of sent.
func (w *Worker) next(ctx context.Context, t *target) {
	n, park := w.shares.done(t, w.cfg.Concurrency)
	if n != nil {
		go w.handle(ctx, n.j, n.t)
	} else {
		w.release(1)
	}
	if len(park) == 0 {
		return
	}
	// In chunks: one transaction over a long line (thousands of rows) held
	// up the recording of every other endpoint's attempts meanwhile.
	for len(park) > 0 {
		n := min(len(park), parkChunk)
		w.parkLine(ctx, park[:n])
		park = park[n:]
	}
}

// parkChunk is how many deliveries of a line one parking transaction takes.
const parkChunk = 500

// parkLine parks deliveries taken from a line; they hold no slot.
func (w *Worker) parkLine(ctx context.Context, line []waiter) {
	jobs := make([]job, len(line))
	targets := make(map[uuid.UUID]*target, len(line))
	for i, p := range line {
		jobs[i], targets[p.j.id] = p.j, p.t
	}
	closed, err := w.park(ctx, jobs, targets)
	if err != nil {
		for _, j := range jobs {
			w.finish(j) // left pending, for reclaim
		}
		return
	}
	for _, j := range closed {
		go w.relaunch(ctx, j, targets[j.id])
	}
}

// relaunch launches a job that holds no slot once it has one.
func (w *Worker) relaunch(ctx context.Context, j job, t *target) {
	select {
	case <-w.slots:
		w.launch(ctx, j, t)
	case <-ctx.Done():
		w.finish(j)
	}
}
