package deliver

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"

	"github.com/hookrelay/hookrelay/internal/flow"
	"github.com/hookrelay/hookrelay/internal/httpsend"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/outage"
	"github.com/hookrelay/hookrelay/internal/service"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// Defaults applied by NewWorker to zero Config fields. They are also the
// defaults of HOOKRELAY_WORKER_CONCURRENCY, HOOKRELAY_CLAIM_IDLE and
// HOOKRELAY_MAX_ATTEMPTS; the relay stamps DefaultMaxAttempts on new
// deliveries when it is given no limit.
const (
	// DefaultConcurrency: HTTP attempts wait on receivers, not on this
	// process, so it is sized for I/O (see HOOKRELAY_WORKER_CONCURRENCY in
	// the README for the measurement), not for cores.
	DefaultConcurrency = 256
	DefaultClaimIdle   = time.Minute
	DefaultMaxAttempts = 6
	DefaultPoisonAfter = 5
)

// DefaultRetrySchedule returns the delays before attempts 2..6 that
// NewWorker uses when Config.RetrySchedule is empty, and the default of
// HOOKRELAY_RETRY_SCHEDULE: 1m, 5m, 15m, 1h, 4h. With DefaultMaxAttempts it
// spreads a delivery's attempts over about 5 h 21 min. Each call returns a
// new slice.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 4 * time.Hour}
}

// readBlock bounds how long one XREADGROUP waits for entries, and so how long
// Stop waits for the read loop to notice it.
const readBlock = 500 * time.Millisecond

// maxLoads is how many reads' deliveries may be loading from Postgres at once
// while the read loop reads on. Loading in the read loop made every entry that
// arrived during a load wait for it (about 1 ms of the 2 ms from XADD to POST
// at 1,000 events/s); more loads at once than this only made them smaller.
const maxLoads = 4

// Config tunes a Worker. Zero fields take the defaults above.
type Config struct {
	// Stream is the base of the stream keys (HOOKRELAY_STREAM), Group the
	// consumer group on each of them.
	Stream, Group string
	// Shards is how many stream keys deliveries are spread over
	// (HOOKRELAY_STREAM_SHARDS, see stream.Shards); 0 means 1, the base key
	// alone. The worker consumes every shard, and drains the keys of a
	// previous shard count.
	Shards int
	// Consumer names this worker in the consumer group; it must be unique
	// among live workers. Default: hostname-pid-random.
	Consumer string
	// Concurrency is the most deliveries in flight at once.
	Concurrency int
	// ClaimIdle is how long an entry must sit unacknowledged on another
	// consumer before this worker reclaims it (XAUTOCLAIM min idle). It must
	// exceed the HTTP timeout plus a margin, or slow deliveries are duplicated;
	// start-up configuration checks that.
	ClaimIdle time.Duration
	// RetrySchedule holds the delays before attempts 2..n; its last delay
	// repeats. Default: DefaultRetrySchedule().
	RetrySchedule []time.Duration
	// MaxAttempts is only a default: each delivery carries its own max_attempts.
	MaxAttempts int
	// PoisonAfter is how many times an entry may fail processing (not the HTTP
	// call: loading or recording it) before it is moved to "<Stream>:dead".
	PoisonAfter int
	// RecordBatch is the most attempts recorded in one transaction (group
	// commit) and acknowledged in one round trip.
	RecordBatch int
	// RecordLinger is how long a batch that is not full waits for more
	// attempts before it is recorded. It delays acknowledgement, not the
	// HTTP request.
	RecordLinger time.Duration
	// Send configures the HTTP sender.
	Send SendConfig
	// Breaker is the per-webhook circuit breaker and auto-disable policy.
	Breaker BreakerConfig
	// OnGroupMissing, when not nil, is called (it must not block) each time
	// Redis answers NOGROUP: the stream or the consumer group is gone, so
	// Redis may have lost entries. The worker recreates the group itself;
	// the wiring uses this to ask the reconciler for a run at once.
	OnGroupMissing func()
}

func (c *Config) setDefaults() error {
	if c.Stream == "" || c.Group == "" {
		return errors.New("deliver: Config.Stream and Config.Group are required")
	}
	if c.Consumer == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.Consumer = fmt.Sprintf("%s-%d-%s", cmp.Or(host, "worker"), os.Getpid(), hex.EncodeToString(b))
	}
	c.Concurrency = cmp.Or(max(c.Concurrency, 0), DefaultConcurrency)
	c.ClaimIdle = cmp.Or(max(c.ClaimIdle, 0), DefaultClaimIdle)
	c.MaxAttempts = cmp.Or(max(c.MaxAttempts, 0), DefaultMaxAttempts)
	c.PoisonAfter = cmp.Or(max(c.PoisonAfter, 0), DefaultPoisonAfter)
	c.RecordBatch = cmp.Or(max(c.RecordBatch, 0), DefaultRecordBatch)
	c.RecordLinger = cmp.Or(max(c.RecordLinger, 0), DefaultRecordLinger)
	c.Breaker.setDefaults()
	c.Send.Timeout = cmp.Or(max(c.Send.Timeout, 0), httpsend.DefaultTimeout)
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultRetrySchedule()
	}
	return nil
}

// DeadStream is the stream that receives the entries of stream (a shard's
// key) moved aside as poison: one per shard, in the shard's slot.
func DeadStream(stream string) string { return stream + ":dead" }

// Streams says where deliveries are published and read: the base key
// (HOOKRELAY_STREAM) and the number of shards (HOOKRELAY_STREAM_SHARDS).
// Every publisher puts a delivery on the shard of its webhook.
type Streams = stream.Shards

// SendConfig is how a worker sends attempts: timeout, identifying headers,
// signature scheme and network policy.
type SendConfig = httpsend.Config

// Worker consumes the delivery stream: it delivers each entry's webhook,
// records the attempt and its outcome in Postgres (scheduling a River retry job
// in the same transaction when the attempt failed) and only then acknowledges
// and deletes the entry. Entries it never finishes stay pending in the consumer
// group, where another worker reclaims them after Config.ClaimIdle.
//
// Worker implements service.Service.
type Worker struct {
	life service.Base // Start/Stop state; not exported, so callers cannot Exit it

	pool    *pgxpool.Pool
	rdb     redis.UniversalClient
	jobs    *river.Client[pgx.Tx]
	cfg     Config
	streams Streams // the keys read, and the base of the retired ones
	m       *metrics.Metrics
	log     *slog.Logger
	sender  *httpsend.Sender
	flow    *flow.Limiter // per-endpoint rate and in-flight limits, shared through Redis
	shares  *shares       // each endpoint's share of this worker's slots

	slots chan struct{} // one token per HTTP attempt that may be in flight
	loads chan struct{} // one token per load of a read's deliveries that may be in flight

	recIn      chan attempted   // finished attempts, to collect
	recBatches chan []attempted // collected batches, to record
	recs       sync.WaitGroup   // collect and flush loops
	recordTxs  atomic.Int64     // recording transactions committed

	// One tracker per loop that retries a dependency.
	claimTrack, beatTrack  *outage.Tracker // Redis (each read loop has its own)
	drainTrack             *outage.Tracker // Redis, for draining retired shards
	loadTrack, finishTrack *outage.Tracker // Postgres (each flusher has its own)
	flowTrack              *outage.Tracker // Redis, for flow control
	afterRecord            func()          // tests: runs between recording a batch and acknowledging it
	draining               chan struct{}   // closed by Stop: record batches without lingering

	mu       sync.Mutex
	inflight map[entry]uuid.UUID   // stream entry → delivery id, being processed here
	held     map[uuid.UUID][]entry // deliveries being processed here → their duplicate entries held
	retired  map[string]bool       // keys of a past shard count being drained here
	readers  atomic.Int32          // read loops running: one alone reads as before shards
	stop     context.CancelFunc    // stops the read and claim loops
	abandon  context.CancelFunc    // cancels in-flight deliveries (hard stop)
	killed   bool                  // in-flight deliveries must neither record nor ack
	loops    sync.WaitGroup
	work     sync.WaitGroup // jobs from dispatch until their entry is settled
}

// NewWorker returns a Worker; Start runs it. jobs is the River client that
// retry jobs are inserted with (jobs.Client.River).
// Its metrics are registered on reg; a nil reg means metrics off and a nil
// log discards.
func NewWorker(pool *pgxpool.Pool, rdb redis.UniversalClient, jobs *river.Client[pgx.Tx], cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Worker, error) {
	if pool == nil || rdb == nil || jobs == nil {
		return nil, errors.New("deliver: NewWorker needs a pool, a Redis client and a River client")
	}
	m := metrics.New(reg)
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		pool:     pool,
		rdb:      rdb,
		jobs:     jobs,
		cfg:      cfg,
		streams:  Streams{Base: cfg.Stream, N: cfg.Shards},
		m:        m,
		log:      log.With("consumer", cfg.Consumer),
		sender:   httpsend.New(cfg.Send),
		flow:     flow.New(rdb, cfg.Stream),
		shares:   newShares(cfg.Breaker.Failures),
		slots:    make(chan struct{}, cfg.Concurrency),
		loads:    make(chan struct{}, maxLoads),
		inflight: make(map[entry]uuid.UUID),
		held:     make(map[uuid.UUID][]entry),
		retired:  make(map[string]bool),

		recIn:      make(chan attempted),
		recBatches: make(chan []attempted),
		draining:   make(chan struct{}),
	}
	track := w.tracker
	w.claimTrack, w.beatTrack = track("redis", "reclaim entries"), track("redis", "heartbeat")
	w.loadTrack, w.finishTrack = track("postgres", "load deliveries"), track("postgres", "finish unsent deliveries")
	w.flowTrack = track("redis", "flow control")
	w.drainTrack = track("redis", "drain retired shards")
	for range cfg.Concurrency {
		w.slots <- struct{}{}
	}
	for range maxLoads {
		w.loads <- struct{}{}
	}
	return w, nil
}

// tracker follows one loop's view of dep (postgres, redis) doing op.
func (w *Worker) tracker(dep, op string) *outage.Tracker {
	return outage.New(dep+": "+op, w.log, w.m.DependencyErrors.WithLabelValues(dep, op))
}

// Name implements service.Service.
func (w *Worker) Name() string { return "worker" }

// Start joins the consumer group (creating the stream and group if needed)
// and starts reading. Redis being unavailable does not fail Start: the loops
// keep retrying.
func (w *Worker) Start(ctx context.Context) error {
	return w.life.Start(func() error {
		if err := w.ensureGroups(ctx); err != nil {
			w.log.Warn("cannot join consumer group yet; will retry", "err", err)
		}
		// The loops outlive the start context; Stop ends them.
		base := context.WithoutCancel(ctx)
		loopCtx, stop := context.WithCancel(base)
		workCtx, abandon := context.WithCancel(base)
		w.mu.Lock()
		w.stop, w.abandon = stop, abandon
		w.mu.Unlock()
		w.loops.Add(1)
		for _, key := range w.streams.Keys() {
			w.startReader(loopCtx, workCtx, key)
		}
		w.drainRetired(loopCtx, workCtx)
		go w.claimLoop(loopCtx, workCtx)
		w.recs.Add(1)
		go w.heartbeatLoop(workCtx)
		w.recs.Add(1 + recordFlushers)
		go w.collect(workCtx)
		for range recordFlushers {
			go w.flushLoop(workCtx)
		}
		return nil
	})
}

// Stop stops reading, waits for the deliveries in flight to finish and to be
// recorded and acknowledged, and returns. If ctx ends first, the unfinished
// deliveries are abandoned: their entries stay pending in the consumer group
// for another worker.
func (w *Worker) Stop(ctx context.Context) error {
	return w.life.Stop(func() error {
		w.mu.Lock()
		stop, abandon := w.stop, w.abandon
		w.mu.Unlock()
		stop()
		close(w.draining)
		done := make(chan struct{})
		go func() {
			w.loops.Wait()
			w.work.Wait()
			close(done)
		}()
		select {
		case <-done:
			abandon() // ends the recorder, idle by now
			w.recs.Wait()
			w.sender.Close()
			w.leaveGroup(ctx)
			return nil
		case <-ctx.Done():
			w.kill()
			return fmt.Errorf("stop worker: in-flight deliveries abandoned: %w", ctx.Err())
		}
	})
}

// Started is closed once Start has succeeded.
func (w *Worker) Started() <-chan struct{} { return w.life.Started() }

// Stopped is closed once the worker has stopped.
func (w *Worker) Stopped() <-chan struct{} { return w.life.Stopped() }

// Err is why the worker stopped on its own; nil while it runs and after Stop.
func (w *Worker) Err() error { return w.life.Err() }

// leaveGroup removes this consumer from the group after a clean stop, so
// that consumers of past processes do not pile up. It keeps the consumer when
// entries are still pending on it (deleting it would drop them from the group).
func (w *Worker) leaveGroup(ctx context.Context) {
	for _, key := range w.streams.Keys() {
		if err := stream.LeaveGroup(ctx, w.rdb, key, w.cfg.Group, w.cfg.Consumer); err != nil {
			w.log.Debug("leave consumer group", "stream", key, "err", err)
		}
	}
}

// kill stops the worker at once, as a crash would: in-flight deliveries are
// cancelled and neither recorded nor acknowledged.
func (w *Worker) kill() {
	w.mu.Lock()
	w.killed = true
	stop, abandon := w.stop, w.abandon
	w.mu.Unlock()
	if stop != nil {
		stop()
		abandon()
	}
}

func (w *Worker) isKilled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killed
}

// acquire waits for at least one free slot and takes every free slot, up to
// Concurrency. It returns 0 when ctx ends.
func (w *Worker) acquire(ctx context.Context) int {
	select {
	case <-ctx.Done():
		return 0
	case <-w.slots:
	}
	n := 1
	for {
		select {
		case <-w.slots:
			n++
		default:
			return n
		}
	}
}

func (w *Worker) release(n int) {
	for range n {
		w.slots <- struct{}{}
	}
}

// trySlot takes a free slot if there is one.
func (w *Worker) trySlot() bool {
	select {
	case <-w.slots:
		return true
	default:
		return false
	}
}
