package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/outage"
	"github.com/hookrelay/hookrelay/internal/stream"
)

// entry names one stream entry: its key (a shard's) and its id, since two
// shards may hold entries with the same id.
type entry struct{ key, id string }

// ensureGroups creates, on every shard, the stream and the consumer group if
// they are missing, and registers the shards (stream.Shards.Register) so
// that a worker started later with fewer shards drains them.
func (w *Worker) ensureGroups(ctx context.Context) error {
	var errs []error
	for _, key := range w.streams.Keys() {
		errs = append(errs, stream.EnsureGroup(ctx, w.rdb, key, w.cfg.Group))
	}
	errs = append(errs, w.streams.Register(ctx, w.rdb))
	return errors.Join(errs...)
}

// startReader starts a read loop on key, one of the worker's shards or a
// retired key to drain.
func (w *Worker) startReader(ctx, workCtx context.Context, key string) {
	w.loops.Add(1)
	w.readers.Add(1)
	go w.readLoop(ctx, workCtx, key)
}

// isRetired reports whether key is a retired key being drained here.
func (w *Worker) isRetired(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.retired[key]
}

// drainRetired starts a read loop on every retired key (a shard of a past
// shard count, listed in the registry, or the base key when there are
// shards now) that still exists and is not drained here yet. Its group is
// created if missing: a process still running with the old count may have
// recreated the key. A key that no longer exists is forgotten.
//
// It is best effort, tried again at every claim tick; an outage is logged
// once, by drainTrack.
func (w *Worker) drainRetired(ctx, workCtx context.Context) {
	registered, err := w.streams.Registered(ctx, w.rdb)
	if err != nil {
		w.drainTrack.Fail(err)
		return
	}
	failed := false
	for _, key := range w.streams.Retired(registered) {
		if w.isRetired(key) {
			continue
		}
		n, err := w.rdb.Exists(ctx, key).Result()
		if err == nil && n == 0 {
			_, err = w.streams.Retire(ctx, w.rdb, key)
		} else if err == nil {
			err = stream.EnsureGroup(ctx, w.rdb, key, w.cfg.Group)
		}
		if err != nil {
			w.drainTrack.Fail(fmt.Errorf("drain retired stream %s: %w", key, err))
			failed = true
			continue
		}
		if n == 0 {
			continue
		}
		w.mu.Lock()
		w.retired[key] = true
		w.mu.Unlock()
		w.log.Info("draining the stream of a past shard count", "stream", key)
		w.startReader(ctx, workCtx, key)
	}
	if !failed {
		w.drainTrack.OK()
	}
}

// readLoop reads new entries of key until ctx ends or, for a retired key,
// until the key is drained and deleted. A worker with one stream key reads
// as it always has (readAlone); with several, the readers share the slots
// (readShared).
func (w *Worker) readLoop(ctx, workCtx context.Context, key string) {
	defer w.loops.Done()
	defer w.readers.Add(-1)
	tr := w.tracker("redis", "read stream")
	hot := true
	for ctx.Err() == nil {
		var done bool
		if w.readers.Load() == 1 {
			done = w.readAlone(ctx, workCtx, key, tr)
		} else {
			done = w.readShared(ctx, workCtx, key, tr, &hot)
		}
		if done {
			break
		}
	}
	w.mu.Lock()
	delete(w.retired, key)
	w.mu.Unlock()
}

// readAlone reads new entries for as many deliveries as there are free
// slots. It does not wait for their load: it reads on while up to maxLoads
// reads' deliveries are being loaded, and waits only when all of them are,
// so that an entry is read the moment it arrives and a busy Postgres makes
// the reads (and the loads) larger rather than more frequent. It reports
// whether the loop is over.
func (w *Worker) readAlone(ctx, workCtx context.Context, key string, tr *outage.Tracker) bool {
	select {
	case <-ctx.Done():
		return true
	case <-w.loads:
	}
	n := w.acquire(ctx)
	if n == 0 {
		w.loads <- struct{}{}
		return true
	}
	msgs, err := w.read(ctx, key, n, readBlock)
	if err != nil {
		w.release(n)
		w.loads <- struct{}{}
		return w.readFailed(ctx, key, tr, err)
	}
	tr.OK()
	if len(msgs) == 0 && w.isRetired(key) {
		w.release(n)
		w.loads <- struct{}{}
		return w.retire(ctx, key)
	}
	w.dispatch(workCtx, key, msgs, n, true)
	return false
}

// readShared is one read of a shard whose slots other readers share. A
// blocked read must not hold the slots that the other shards' entries are
// waiting for: a reader that found entries last time ("hot") takes every
// free slot and reads without blocking; one that found none blocks with one
// slot until an entry arrives. It reports whether the loop is over.
func (w *Worker) readShared(ctx, workCtx context.Context, key string, tr *outage.Tracker, hot *bool) bool {
	n, block := 0, readBlock
	if *hot {
		n, block = w.acquire(ctx), -1
	} else {
		select {
		case <-ctx.Done():
		case <-w.slots:
			n = 1
		}
	}
	if n == 0 || ctx.Err() != nil {
		w.release(n)
		return true
	}
	msgs, err := w.read(ctx, key, n, block)
	if err != nil {
		w.release(n)
		return w.readFailed(ctx, key, tr, err)
	}
	tr.OK()
	*hot = len(msgs) > 0
	if len(msgs) == 0 {
		w.release(n)
		if !w.isRetired(key) {
			return false
		}
		return w.retire(ctx, key)
	}
	select {
	case <-ctx.Done():
		w.release(n) // the entries stay pending, for reclaim
		return true
	case <-w.loads:
	}
	w.dispatch(workCtx, key, msgs, n, true)
	return false
}

// read reads up to n new entries of key, blocking up to block (not at all
// when block is negative).
func (w *Worker) read(ctx context.Context, key string, n int, block time.Duration) ([]redis.XMessage, error) {
	streams, err := w.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    w.cfg.Group,
		Consumer: w.cfg.Consumer,
		Streams:  []string{key, ">"},
		Count:    int64(n),
		Block:    block,
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var msgs []redis.XMessage
	for _, s := range streams {
		msgs = append(msgs, s.Messages...)
	}
	return msgs, nil
}

// readFailed handles a failed read of key and reports whether the loop is
// over: a retired key whose group is gone was drained and deleted by
// another worker.
func (w *Worker) readFailed(ctx context.Context, key string, tr *outage.Tracker, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	if w.isRetired(key) && stream.IsNoGroup(err) {
		return true
	}
	w.redisTrouble(ctx, tr, key, err)
	return false
}

// retire deletes a drained retired key and reports whether it is gone.
func (w *Worker) retire(ctx context.Context, key string) bool {
	gone, err := w.streams.Retire(ctx, w.rdb, key)
	if err != nil {
		w.log.Warn("retire drained stream", "stream", key, "err", err)
		return false
	}
	if gone {
		w.log.Info("drained and deleted the stream of a past shard count", "stream", key)
	}
	return gone
}

// claimLoop reclaims entries left pending by dead consumers (and by this one,
// after a processing error) once they have been idle for ClaimIdle, and moves
// entries that keep failing to the dead stream, on every key read here; and
// it starts draining retired keys that appeared meanwhile.
func (w *Worker) claimLoop(ctx, workCtx context.Context) {
	defer w.loops.Done()
	tick(ctx, min(max(w.cfg.ClaimIdle/2, 50*time.Millisecond), 30*time.Second), func() {
		w.drainRetired(ctx, workCtx)
		var errs []error
		own := w.streams.Keys()
		for _, key := range w.readKeys() {
			// A retired key may have been drained and deleted meanwhile.
			if err := w.claimAll(ctx, workCtx, key); err != nil && !(stream.IsNoGroup(err) && !slices.Contains(own, key)) {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			if ctx.Err() == nil {
				w.redisTrouble(ctx, w.claimTrack, "", err)
			}
			return
		}
		w.claimTrack.OK()
	})
}

// readKeys lists the keys read here: the shards, then the retired keys
// being drained.
func (w *Worker) readKeys() []string {
	keys := w.streams.Keys()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.retired {
		keys = append(keys, k)
	}
	return keys
}

// tick calls fn every d until ctx ends.
func tick(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// claimAll walks the group's pending entries of key with XAUTOCLAIM until
// every idle one has been claimed.
func (w *Worker) claimAll(ctx, workCtx context.Context, key string) error {
	start := "0-0"
	for {
		n := w.acquire(ctx)
		if n == 0 {
			return nil
		}
		msgs, next, err := w.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream:   key,
			Group:    w.cfg.Group,
			Consumer: w.cfg.Consumer,
			MinIdle:  w.cfg.ClaimIdle,
			Start:    start,
			Count:    int64(n),
		}).Result()
		if err != nil {
			w.release(n)
			return fmt.Errorf("xautoclaim %s: %w", key, err)
		}
		msgs, err = w.setAsidePoison(ctx, key, msgs)
		if err != nil {
			w.release(n)
			return err
		}
		w.dispatch(workCtx, key, msgs, n, false)
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
}

// redisTrouble handles a failed stream command on key ("" for several).
// NOGROUP means the group or the stream is gone (Redis restarted empty, was
// flushed, or lost the key): the worker recreates the groups at once, says
// so through OnGroupMissing, and carries on. Anything else is an outage: tr
// logs its start once and paces the retries.
func (w *Worker) redisTrouble(ctx context.Context, tr *outage.Tracker, key string, err error) {
	if stream.IsNoGroup(err) {
		w.log.Warn("consumer group missing (Redis restarted, flushed or lost the stream?); recreating it", "stream", key)
		if w.cfg.OnGroupMissing != nil {
			w.cfg.OnGroupMissing()
		}
		if err = w.ensureGroups(ctx); err == nil {
			return
		}
	}
	tr.Fail(err)
	tr.Wait(ctx)
}

// heartbeatLoop keeps the entries this worker is processing from looking
// abandoned: every ClaimIdle/4 it resets their idle time (XCLAIM … JUSTID to
// itself, which leaves their delivery counts alone), so that another worker
// reclaims them only once this one has died, not while it waits for a slow
// receiver or for Postgres to come back.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	defer w.recs.Done()
	every := max(w.cfg.ClaimIdle/4, 10*time.Millisecond)
	tick(ctx, every, func() {
		w.mu.Lock()
		ids := make([]entry, 0, len(w.inflight))
		for e := range w.inflight {
			ids = append(ids, e)
		}
		w.mu.Unlock()
		if len(ids) == 0 {
			return
		}
		_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for key, ids := range byKey(ids) {
				p.XClaimJustID(ctx, &redis.XClaimArgs{
					Stream: key, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
					MinIdle: every, Messages: ids,
				})
			}
			return nil
		})
		if err != nil && ctx.Err() == nil && !stream.IsNoGroup(err) {
			w.beatTrack.Fail(err)
			return
		}
		w.beatTrack.OK()
	})
}

// byKey groups entries by stream key.
func byKey(entries []entry) map[string][]string {
	out := make(map[string][]string, 1)
	for _, e := range entries {
		out[e.key] = append(out[e.key], e.id)
	}
	return out
}
