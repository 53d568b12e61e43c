package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the NOTIFY channel emission uses (see hookrelay.outbox_wake).
const Channel = "hookrelay_outbox"

// listen keeps a dedicated connection LISTENing on Channel and turns every
// notification into a Wake. A notification sent while it is disconnected is
// lost, so after every (re)LISTEN it wakes the relay to catch up.
func (r *Relay) listen(ctx context.Context) {
	defer close(r.listenDone)
	stop := func() bool { return r.stopping() || ctx.Err() != nil }
	for !stop() {
		err := r.listenOnce(ctx)
		if stop() {
			return
		}
		r.listenTrack.Fail(fmt.Errorf("LISTEN connection lost; reconnecting: %w", err))
		t := time.NewTimer(r.listenTrack.Backoff())
		select {
		case <-t.C:
		case <-r.stopCh:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// listenOnce connects, LISTENs and forwards notifications until the
// connection fails or the relay stops.
func (r *Relay) listenOnce(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer ccancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen %s: %w", Channel, err)
	}
	r.listenTrack.OK()
	r.Wake() // catch up on what was committed while no one listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		r.Wake()
	}
}
