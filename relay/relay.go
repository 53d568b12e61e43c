// Package relay moves committed outbox events to the delivery stream.
//
// The outbox is insert-only: the relay never locks or updates an event row.
// Every row carries the id of the transaction that wrote it (xid8), and the
// relay keeps one cursor in hookrelay.relay_cursor: the (xid, seq) position
// at or below which every row is published, plus the transactions that were
// still running below that position when it last read ("pending": they may
// still commit rows there). One relay leads (see lead.go: a session-level
// advisory lock; the others stand by and take over when it goes) and keeps
// the cursor in memory. For each batch it
//
//  1. in one transaction (one pipelined round trip), stores the position the
//     previous batch was published up to (move_relay_cursor, fenced by a
//     version so that a relay that lost the lead cannot move it), reads the
//     committed rows above it and of the pending transactions, creates one
//     delivery row per active, matching webhook (idempotent: deliveries are
//     unique per event × webhook), takes the statement's snapshot, and
//     commits;
//  2. XADDs every pending delivery id of those events to the stream in one
//     pipelined round trip;
//  3. only after Redis accepted them all, moves its in-memory cursor past
//     the rows it read, drops pending transactions that have ended and whose
//     rows it has read, and adds the snapshot's running transactions below
//     the new position as pending. The next batch stores it, or the relay
//     does when it goes idle or stops.
//
// A crash anywhere leaves the stored cursor at most one batch behind: the
// events are read again, the fan-out finds the deliveries already there, and their ids are
// published again (a duplicate stream entry, which workers tolerate). Because
// the fan-out commits before the XADD, a worker never reads a delivery id
// whose row it cannot see. A transaction that commits late is never skipped,
// and a long one delays only its own events. hookrelay.outbox_unpublished
// lists what the cursor has not covered.
//
// # Waking up
//
// The relay wakes on a NOTIFY on channel hookrelay_outbox (a dedicated LISTEN
// connection that reconnects with backoff and catches up after every LISTEN),
// on Wake, and every PollInterval as a safety net. Writers only NOTIFY while
// the sequence hookrelay.relay_idle is 1 (the wake-up trigger is queued only
// if the flag is 1 when the row is inserted — its WHEN clause, so a writer
// pays nothing while the relay is busy — and its deferred function reads the
// flag again at commit; a sequence is read outside the writer's snapshot, so
// REPEATABLE READ and SERIALIZABLE writers see the latest value too), because a NOTIFY
// takes a cluster-wide lock at commit that costs writers most of their
// throughput under load. The relay sets idle=false when woken, before
// draining. Once drained, a relay that found events in the last second
// lingers: it looks for new ones every millisecond with one cheap query
// (peekSQL) and keeps the flag off, so that a steady flow of events never
// makes writers NOTIFY and never waits for a wake-up round. After a second
// without events it sets idle=true and reads once more (an event that
// committed while the flag was false sent no NOTIFY) before it waits.
//
// One race remains: a transaction that inserted its event while the flag was
// 0 and commits after the flip to 1 and after that last read sends no NOTIFY
// and was not read. It waits at most one PollInterval; 50 ms after going idle
// the relay reads once more (without touching the flag), which finds any such
// commit that came within that time. The linger makes the case rarer: the
// flag only flips after a second without events.
package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/outage"
	"github.com/hookrelay/hookrelay/internal/service"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// Config is what a Relay needs to know besides its connections.
type Config struct {
	Stream       string        // HOOKRELAY_STREAM: the stream key deliveries are published to (the base of the shards' keys)
	Shards       int           // HOOKRELAY_STREAM_SHARDS: how many stream keys deliveries are spread over, by webhook (default 1)
	BatchSize    int           // HOOKRELAY_RELAY_BATCH: events per read (default DefaultBatchSize)
	PollInterval time.Duration // HOOKRELAY_POLL_INTERVAL: safety-net poll (default DefaultPollInterval)
	MaxAttempts  int           // HOOKRELAY_MAX_ATTEMPTS: copied into each new delivery row (default deliver.DefaultMaxAttempts)
}

// Defaults applied by New to zero (or negative) Config fields, and the
// defaults of HOOKRELAY_RELAY_BATCH and HOOKRELAY_POLL_INTERVAL. The attempt
// limit is the worker's business: its default is deliver.DefaultMaxAttempts.
const (
	DefaultBatchSize    = 500
	DefaultPollInterval = time.Second
)

const (
	// lagEvery bounds how often the lag gauge is refreshed.
	lagEvery = 5 * time.Second
	// defaultSettleDelay is how long after going idle the relay reads once
	// more, for a writer whose commit was in flight while the flag flipped.
	defaultSettleDelay = 50 * time.Millisecond
	// defaultLingerFor is how long a relay that found events keeps looking
	// for more every lingerPoll before it goes idle and asks for NOTIFYs.
	defaultLingerFor = time.Second
	lingerPoll       = time.Millisecond
)

// Relay publishes committed outbox events to the stream. It is a
// service.Service. Its pool must allow at least two connections (a batch
// holds one while the fan-out uses another); the LISTEN connection is opened
// separately from the pool's configuration.
type Relay struct {
	pool *pgxpool.Pool
	rdb  redis.UniversalClient
	cfg  Config
	m    *metrics.Metrics
	log  *slog.Logger

	streams stream.Shards // where each delivery is published

	wake chan struct{}

	batchMu sync.Mutex // one batch at a time: the loop's and Drain's
	lead    lead       // guarded by batchMu

	life       service.Base  // Start/Stop state; not exported, so callers cannot Exit it
	stopCh     chan struct{} // closed by Stop: finish the batch in hand
	cancelWork context.CancelFunc
	done       chan struct{} // closed when the relay loop has returned
	listenDone chan struct{} // closed when the listener has returned

	// passTrack and listenTrack log an outage of Postgres or Redis once, as
	// the relay loop and the LISTEN connection see it, and pace retries.
	passTrack, listenTrack *outage.Tracker

	lagAt       time.Time     // last lag refresh; only touched by the relay loop
	settleDelay time.Duration // see run
	lingerFor   time.Duration // see linger

	// afterPublish, when set (tests only), runs after the XADD and before
	// the rows are marked published; an error aborts the batch there.
	afterPublish func(ctx context.Context) error
	// onWait, when set (tests only), runs each time the loop starts waiting.
	onWait func()
	// beforeIdle, when set (tests only), runs after a drain found nothing and
	// before the flag is set to idle.
	beforeIdle func()
}

// New returns a relay; nothing runs until Start. Zero Config fields take the
// defaults above. The relay's metrics are registered on reg; a nil reg means
// metrics off and a nil log discards.
func New(pool *pgxpool.Pool, rdb redis.UniversalClient, cfg Config, reg prometheus.Registerer, log *slog.Logger) *Relay {
	m := metrics.New(reg)
	cfg.BatchSize = cmp.Or(max(cfg.BatchSize, 0), DefaultBatchSize)
	cfg.PollInterval = cmp.Or(max(cfg.PollInterval, 0), DefaultPollInterval)
	cfg.MaxAttempts = cmp.Or(max(cfg.MaxAttempts, 0), deliver.DefaultMaxAttempts)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		passTrack: outage.New("relay pass (postgres or redis)", log,
			m.DependencyErrors.WithLabelValues("postgres_or_redis", "relay pass")),
		listenTrack: outage.New("postgres: LISTEN "+Channel, log,
			m.DependencyErrors.WithLabelValues("postgres", "listen")),
		pool:        pool,
		rdb:         rdb,
		cfg:         cfg,
		m:           m,
		log:         log,
		streams:     stream.Shards{Base: cfg.Stream, N: cfg.Shards},
		wake:        make(chan struct{}, 1),
		stopCh:      make(chan struct{}),
		settleDelay: defaultSettleDelay,
		lingerFor:   defaultLingerFor,
	}
}

// Name is the service name, "relay".
func (r *Relay) Name() string { return "relay" }

// Start checks that Postgres (with hookrelay's schema) and Redis answer, then
// launches the relay loop and the LISTEN connection and returns. The relay
// first catches up on everything past its cursor. The work outlives ctx; end it
// with Stop.
func (r *Relay) Start(ctx context.Context) error {
	return r.life.Start(func() error {
		if r.cfg.Stream == "" {
			return errors.New("relay: no stream key configured")
		}
		if _, err := r.pool.Exec(ctx, `SELECT last_value FROM hookrelay.relay_idle`); err != nil {
			return fmt.Errorf("relay: check hookrelay schema (was it migrated?): %w", err)
		}
		if err := r.rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("relay: ping redis: %w", err)
		}
		// Workers started later with fewer shards drain the ones this
		// relay publishes to.
		if err := r.streams.Register(ctx, r.rdb); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		work, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r.cancelWork = cancel
		r.done, r.listenDone = make(chan struct{}), make(chan struct{})
		go r.listen(work)
		go r.run(work)
		return nil
	})
}

// Stop stops taking work: the relay finishes the batch in hand (marking it
// published), lets go of the LISTEN connection and returns. If ctx expires
// first, the batch in hand is abandoned with the cursor where it was (it is
// read again later) and Stop returns ctx's error.
func (r *Relay) Stop(ctx context.Context) error {
	return r.life.Stop(func() error {
		close(r.stopCh)
		var err error
		select {
		case <-r.done:
		case <-ctx.Done():
			err = fmt.Errorf("relay: stop: batch in hand abandoned: %w", ctx.Err())
		}
		r.cancelWork()
		<-r.done
		<-r.listenDone
		return err
	})
}

// Started is closed once Start has succeeded.
func (r *Relay) Started() <-chan struct{} { return r.life.Started() }

// Stopped is closed once the relay has stopped.
func (r *Relay) Stopped() <-chan struct{} { return r.life.Stopped() }

// Err is why the relay stopped on its own; nil while it runs and after Stop.
func (r *Relay) Err() error { return r.life.Err() }

// Wake nudges the relay to look for unpublished events now. It never blocks;
// nudges that arrive while one is pending are merged.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Drain reads and publishes batches until a read finds nothing past the
// cursor, and returns how many events it published. It works whether or not the relay was started.
func (r *Relay) Drain(ctx context.Context) (events int, err error) {
	if !r.running() {
		defer func() {
			r.batchMu.Lock()
			r.forget() // an unstarted relay does not keep the lead after draining
			r.batchMu.Unlock()
		}()
	}
	for {
		n, err := r.batch(ctx)
		events += n
		if err != nil {
			return events, err
		}
		if n == 0 {
			break
		}
	}
	return events, r.storeCursor(ctx)
}

// running reports whether the relay loop runs.
func (r *Relay) running() bool {
	select {
	case <-r.life.Started():
		return !r.stopping()
	default:
		return false
	}
}

func (r *Relay) stopping() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

// run is the relay loop: a pass, then a wait for a wake-up, a poll tick or
// Stop. A failed pass is retried with backoff. After a successful pass the
// relay first waits only settleDelay and reads once more (without touching
// the idle flag): that finds, within milliseconds rather than a poll interval,
// the writer of the documented race whose commit was still in flight.
func (r *Relay) run(ctx context.Context) {
	defer close(r.done)
	defer r.markIdleOnExit(ctx)
	for !r.stopping() {
		err := r.pass(ctx)
		if err != nil {
			// The lock's session may have ended with the failure (a Postgres
			// restart): check it before the next batch.
			r.batchMu.Lock()
			r.lead.suspect = true
			r.batchMu.Unlock()
			if r.stopping() || ctx.Err() != nil {
				return
			}
			r.passTrack.Fail(err) // logged once per outage, counted always
			if r.waitWake(r.passTrack.Backoff()) == stopped {
				return
			}
			continue
		}
		if r.leading() {
			r.passTrack.OK() // a standby's empty pass says nothing about an outage
		}
		if r.onWait != nil {
			r.onWait()
		}
		switch r.waitWake(min(r.settleDelay, r.cfg.PollInterval)) {
		case stopped:
			return
		case woken:
			continue
		}
		n, err := r.batch(ctx)
		if err != nil || n > 0 {
			continue // busy again (or failing): a full pass sorts it out
		}
		if r.waitWake(r.cfg.PollInterval) == stopped {
			return
		}
	}
}

// pass drains until the idle protocol says there is nothing left: drain with
// idle=false, then set idle=true and read once more; only an empty last
// read ends the pass.
func (r *Relay) pass(ctx context.Context) error {
	// A relay standing by leaves the idle flag alone: the leader's protocol
	// decides when writers NOTIFY.
	if ok, err := r.leads(ctx); !ok || err != nil {
		return err
	}
	for {
		if err := r.setIdle(ctx, false); err != nil {
			return err
		}
		var busyAt time.Time // when a batch last found events
		for !r.stopping() {
			n, err := r.batch(ctx)
			if err != nil {
				return err
			}
			r.refreshLag(ctx)
			if n > 0 {
				busyAt = time.Now()
				if n >= r.cfg.BatchSize {
					continue // a full batch: more is likely waiting
				}
				// A short batch read all there was: linger rather than
				// spend a transaction on reading nothing.
			}
			more, err := r.linger(ctx, busyAt)
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
		if r.stopping() {
			return nil
		}
		if r.beforeIdle != nil {
			r.beforeIdle()
		}
		if err := r.storeCursor(ctx); err != nil {
			return err
		}
		if err := r.setIdle(ctx, true); err != nil {
			return err
		}
		// An event that committed while the flag was false sent no NOTIFY:
		// look once more now that writers will notify. (A writer that read
		// false just before the flip and commits after this claim is found
		// by the settle read in run, or the next poll; see the package
		// documentation.)
		n, err := r.batch(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// linger keeps a relay that found events within the last lingerFor from
// going idle: it looks every lingerPoll (or at once when woken) for events
// past the cursor with one cheap query, and reports whether it found some.
// While it lingers the idle flag stays off, so writers send no NOTIFY: a
// steady stream of events never pays for one, and each event waits at most
// a lingerPoll for the relay instead of a wake-up and idle round.
func (r *Relay) linger(ctx context.Context, busyAt time.Time) (bool, error) {
	if time.Since(busyAt) >= r.lingerFor {
		return false, nil
	}
	if err := r.storeCursor(ctx); err != nil {
		return false, err
	}
	for time.Since(busyAt) < r.lingerFor {
		if r.waitWake(lingerPoll) == stopped {
			return false, nil
		}
		var more bool
		if err := r.pool.QueryRow(ctx, peekSQL).Scan(&more); err != nil {
			return false, fmt.Errorf("look for events past the relay cursor: %w", err)
		}
		if more {
			return true, nil
		}
	}
	return false, nil
}

type wakeReason int

const (
	woken wakeReason = iota
	timedOut
	stopped
)

// waitWake waits for a wake-up, for d, or for Stop, and says which came.
func (r *Relay) waitWake(d time.Duration) wakeReason {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.stopCh:
		return stopped
	case <-r.wake:
		return woken
	case <-t.C:
		return timedOut
	}
}

// markIdleOnExit leaves the flag at idle=true so that writers wake the relays
// still running (or the next one to start, which catches up anyway).
func (r *Relay) markIdleOnExit(ctx context.Context) {
	defer func() {
		r.batchMu.Lock()
		r.forget()
		r.batchMu.Unlock()
	}()
	r.batchMu.Lock()
	leading := r.lead.held
	r.batchMu.Unlock()
	if ctx.Err() != nil || !leading {
		return // a relay standing by leaves the flag to the leader
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.storeCursor(ctx); err != nil {
		r.log.Warn("relay: could not store its cursor on exit (the next leader reads the last batch again)", "err", err)
	}
	if err := r.setIdle(ctx, true); err != nil {
		r.log.Warn("relay: could not mark itself idle on exit", "err", err)
	}
}
