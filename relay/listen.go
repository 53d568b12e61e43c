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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.listenTrack.Fail(fmt.Errorf("LISTEN connection lost; reconnecting: %w", err))
		r.listenTrack.Wait(ctx)
	}
}

// listenOnce connects, LISTENs and forwards notifications until the
// connection fails or ctx (cancelled by Stop) ends.
func (r *Relay) listenOnce(ctx context.Context) error {
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
