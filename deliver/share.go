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
	start    int // an endpoint's first window (see limit)
	inflight map[uuid.UUID]int
	window   map[uuid.UUID]int // each active endpoint's slow-start window (see limit)
	waiting  map[uuid.UUID][]waiter
	bytes    int                // payload held in the lines
	open     map[uuid.UUID]bool // breakers this process knows to be open
}

// waiter is a delivery in its endpoint's line.
type waiter struct {
	j job
	t *target
}

// newShares starts each endpoint at a window of start requests: the
// breaker's threshold, so that an endpoint that hangs gets the failures that
// open its breaker and not many more.
func newShares(start int) *shares {
	return &shares{start: max(start, 1), inflight: map[uuid.UUID]int{}, window: map[uuid.UUID]int{},
		waiting: map[uuid.UUID][]waiter{}, open: map[uuid.UUID]bool{}}
}

// share is how many slots one endpoint may hold: never more than half, so
// that the worker always has slots to read with and so to find the other
// endpoints' deliveries behind a hanging one; an equal part while several
// have requests in flight.
func (s *shares) share(concurrency int) int {
	return max(minShare, concurrency/max(len(s.inflight), 2))
}

// limit is how many requests webhook may have in flight now: its share, or
// its window if smaller. The window is a slow start, as TCP's: an endpoint
// that becomes active starts at s.start requests, gains one with each
// success (so it doubles with each round of answers) and loses one with each
// failure that counts for its breaker, down to one. A fast endpoint reaches
// its share within a few milliseconds; one that hangs holds s.start slots
// until its timeout, and its breaker opens on those failures, where its
// whole share (half the worker's slots) went to it and hung before. The
// window lives while the endpoint is active here (requests in flight or in
// line), and starts again when it becomes active again.
func (s *shares) limit(webhook uuid.UUID, concurrency int) int {
	return min(s.share(concurrency), s.window[webhook])
}

// answered moves webhook's window after a request's answer.
func (s *shares) answered(webhook uuid.UUID, o outcome, concurrency int) {
	switch o {
	case outcomeSuccess:
		s.window[webhook] = min(s.window[webhook]+1, max(concurrency, s.start))
	case outcomeFailure:
		s.window[webhook] = max(s.window[webhook]-1, 1)
	}
}

// idle forgets an endpoint that has nothing in flight or in line here.
func (s *shares) idle(webhook uuid.UUID) {
	delete(s.inflight, webhook)
	delete(s.window, webhook)
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
		s.window[wh] = s.start
	}
	if s.inflight[wh] < s.limit(wh, concurrency) {
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
		s.idle(wh)
	}
	return false, false
}

// done ends a request of t's endpoint. It returns the next in the
// endpoint's line to start, as many as its limit now allows (the first takes
// the slot this request frees; see giveBack); or, when this process knows
// the endpoint's breaker to be open, the whole line, to park.
func (s *shares) done(t *target, concurrency int) (next, park []waiter) {
	if t == nil || !t.counted {
		return nil, nil
	}
	t.counted = false
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := t.WebhookID
	s.inflight[wh]--
	s.answered(wh, t.outcome, concurrency)
	line := s.waiting[wh]
	switch {
	case len(line) > 0 && s.open[wh]:
		park = s.takeLine(wh)
	case len(line) > 0:
		n := min(len(line), s.limit(wh, concurrency)-s.inflight[wh])
		if n <= 0 {
			break
		}
		next = line[:n:n]
		s.waiting[wh] = line[n:]
		if len(line) == n {
			delete(s.waiting, wh)
		}
		for _, w := range next {
			s.bytes -= len(w.t.Payload)
			w.t.counted = true
		}
		s.inflight[wh] += n
	}
	if s.inflight[wh] == 0 && len(s.waiting[wh]) == 0 {
		s.idle(wh)
	}
	return next, park
}

// takeLine empties webhook's line and returns what it held; s.mu is held.
func (s *shares) takeLine(webhook uuid.UUID) []waiter {
	line := s.waiting[webhook]
	delete(s.waiting, webhook)
	for _, p := range line {
		s.bytes -= len(p.t.Payload)
	}
	return line
}

// giveBack returns deliveries that done let start but found no worker slot
// to the front of their endpoint's line. The caller has not started the
// first of done's deliveries yet, so the endpoint has a request that will
// end and drain the line.
func (s *shares) giveBack(ws []waiter) {
	if len(ws) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wh := ws[0].t.WebhookID
	for _, w := range ws {
		w.t.counted = false
		s.bytes += len(w.t.Payload)
	}
	s.inflight[wh] -= len(ws)
	s.waiting[wh] = append(ws[:len(ws):len(ws)], s.waiting[wh]...)
}

// setOpen records that webhook's breaker is open, or not. When it opens,
// it returns the endpoint's line, to park at once rather than when the
// endpoint's next request ends (a hanging one's ends only at its timeout).
func (s *shares) setOpen(webhook uuid.UUID, open bool) (park []waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !open {
		delete(s.open, webhook)
		return nil
	}
	s.open[webhook] = true
	park = s.takeLine(webhook)
	if s.inflight[webhook] == 0 {
		s.idle(webhook)
	}
	return park
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
// endpoint's line, or frees it; a window that grew starts more of the line
// with slots that are free. A line whose breaker opened meanwhile is parked
// instead of sent.
func (w *Worker) next(ctx context.Context, t *target) {
	starts, park := w.shares.done(t, w.cfg.Concurrency)
	if len(starts) == 0 {
		w.release(1)
	}
	// Slots first, then starts: a delivery given back after another had
	// started could come back to a line whose last request had ended
	// meanwhile, with nothing left to drain it.
	n := min(len(starts), 1) // the slot this request frees
	for n < len(starts) && w.trySlot() {
		n++
	}
	w.shares.giveBack(starts[n:])
	for _, s := range starts[:n] {
		go w.handle(ctx, s.j, s.t)
	}
	w.parkLines(ctx, park)
}

// parkLines parks deliveries taken from their endpoint's line (they hold no
// slot), in chunks: one transaction over a long line (thousands of rows)
// held up the recording of every other endpoint's attempts meanwhile.
func (w *Worker) parkLines(ctx context.Context, park []waiter) {
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
