package relay

import (
	"context"
	"time"
)

// SetAfterPublish installs a hook that runs after the XADD of each batch and
// before the batch is marked published; an error aborts the batch there, as
// if the relay had been killed.
func SetAfterPublish(r *Relay, f func(ctx context.Context) error) { r.afterPublish = f }

// Stopping is closed once Stop has been called.
func Stopping(r *Relay) <-chan struct{} { return r.stopCh }

// SetOnWait installs a hook that runs each time the relay loop starts
// waiting for a wake-up (set it before Start).
func SetOnWait(r *Relay, f func()) { r.onWait = f }

// SetBeforeIdle installs a hook that runs after a drain found nothing, just
// before the relay sets its idle flag (set it before Start).
func SetBeforeIdle(r *Relay, f func()) { r.beforeIdle = f }

// SetSettleDelay changes how long after going idle the relay claims once
// more (set it before Start).
func SetSettleDelay(r *Relay, d time.Duration) { r.settleDelay = d }

// SetIdle sets the idle flag as the relay does when it starts or stops
// waiting for a NOTIFY.
func SetIdle(ctx context.Context, r *Relay, idle bool) error { return r.setIdle(ctx, idle) }

// SetLingerFor changes how long a relay that found events keeps looking for
// more before it goes idle (set it before Start).
func SetLingerFor(r *Relay, d time.Duration) { r.lingerFor = d }
