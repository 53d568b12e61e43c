package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/testkit/testpg"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
)

// listen opens a connection that LISTENs on the relay's wake-up channel.
func (e *env) listen(ctx context.Context) *pgx.Conn {
	e.t.Helper()
	conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN hookrelay_outbox"); err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// emitWithWake emits one event in a transaction of its own connection that
// sets hookrelay.wake to wake before the insert, or after it if after is set,
// and returns the backend's pid.
func (e *env) emitWithWake(ctx context.Context, wake string, after bool) uint32 {
	e.t.Helper()
	conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		set := func() error {
			_, err := tx.Exec(ctx, "SELECT set_config('hookrelay.wake', $1, true)", wake)
			return err
		}
		if !after {
			if err := set(); err != nil {
				return err
			}
		}
		if _, err := outbox.Emit(ctx, tx, outbox.Event{Type: "x", ProjectID: uuid.New(), Data: map[string]int{}}); err != nil {
			return err
		}
		if after {
			return set()
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return conn.PgConn().PID()
}

// TestRelay_SnapshotOlderThanIdleFlagStillNotifies: a REPEATABLE READ (or
// SERIALIZABLE) writer whose snapshot predates the relay going idle must
// still see the flag as it is at commit, or its event waits a poll interval.
func TestRelay_SnapshotOlderThanIdleFlagStillNotifies(t *testing.T) {
	t.Parallel()
	for _, iso := range []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable} {
		t.Run(string(iso), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 4)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, _ := e.relay(time.Hour, 100, false)
			if err := relay.SetIdle(ctx, r, false); err != nil {
				t.Fatal(err)
			}
			listener := e.listen(ctx)

			tx, err := e.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)                              //nolint:errcheck // after Commit, a no-op
			if _, err := tx.Exec(ctx, "SELECT 1"); err != nil { // takes the snapshot
				t.Fatal(err)
			}
			if err := relay.SetIdle(ctx, r, true); err != nil { // the relay goes idle
				t.Fatal(err)
			}
			if _, err := outbox.Emit(ctx, tx, outbox.Event{Type: "x", ProjectID: uuid.New(), Data: map[string]int{}}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			wait, cancelWait := context.WithTimeout(ctx, 5*time.Second)
			defer cancelWait()
			if _, err := listener.WaitForNotification(wait); err != nil {
				t.Fatalf("a %s writer whose snapshot predates the idle flag sent no NOTIFY: %v", iso, err)
			}
		})
	}
}

// TestRelay_WakeOffSendsNoNotify: a transaction that sets hookrelay.wake =
// 'off' (as a two-phase transaction must: NOTIFY cannot be prepared) sends no
// NOTIFY while the relay is idle, whether it sets it before or after its
// insert: the trigger's WHEN (evaluated at the INSERT) queues the wake-up,
// and the function reads the opt-out at commit. PREPARE TRANSACTION itself is
// not run here: the test server has max_prepared_transactions = 0.
func TestRelay_WakeOffSendsNoNotify(t *testing.T) {
	t.Parallel()
	for name, after := range map[string]bool{"set before the insert": false, "set after the insert": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 4)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, _ := e.relay(time.Hour, 100, false)
			if err := relay.SetIdle(ctx, r, true); err != nil {
				t.Fatal(err)
			}
			listener := e.listen(ctx)
			offPID := e.emitWithWake(ctx, "off", after)
			onPID := e.emitWithWake(ctx, "on", after)
			// Notifications arrive in commit order: had the opted-out emission
			// notified, its notification would come first.
			n, err := listener.WaitForNotification(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n.PID != onPID {
				t.Fatalf("first notification from backend %d, want %d; the opted-out emission was %d", n.PID, onPID, offPID)
			}
			if e.unpublished() != 2 {
				t.Fatalf("unpublished events = %d, want both (the opted-out one waits for the poll)", e.unpublished())
			}
		})
	}
}

// TestRelay_WakeOffLetsAnEmittingTransactionBePrepared runs two-phase commit
// on a private cluster that allows it (the shared server has
// max_prepared_transactions = 0): while the relay is idle, PREPARE
// TRANSACTION refuses an emitting transaction (its NOTIFY cannot be
// prepared) unless it set hookrelay.wake = 'off'.
func TestRelay_WakeOffLetsAnEmittingTransactionBePrepared(t *testing.T) {
	t.Parallel()
	e := newEnvAt(t, testpg.Start(t).MigratedDB().URL, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n := e.count(`SELECT current_setting('max_prepared_transactions')::int`); n == 0 {
		t.Fatal("the private cluster has max_prepared_transactions = 0; testpg must enable it")
	}
	r, _ := e.relay(time.Hour, 100, false)
	if err := relay.SetIdle(ctx, r, true); err != nil {
		t.Fatal(err)
	}
	prepare := func(wake string) error {
		conn, err := pgx.ConnectConfig(ctx, e.pool.Config().ConnConfig)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		gid := "hookrelay-test-" + uuid.NewString()
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT set_config('hookrelay.wake', $1, true)", wake); err != nil {
			t.Fatal(err)
		}
		if _, err := outbox.Emit(ctx, conn, outbox.Event{Type: "x", ProjectID: uuid.New(), Data: map[string]int{}}); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "PREPARE TRANSACTION '"+gid+"'"); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "COMMIT PREPARED '"+gid+"'")
		return err
	}
	if err := prepare("on"); err == nil {
		t.Fatal("PREPARE TRANSACTION of an emitting transaction succeeded while the relay is idle; " +
			"the opt-out is no longer needed and the README says otherwise")
	}
	if err := prepare("off"); err != nil {
		t.Fatalf("with hookrelay.wake = 'off': %v", err)
	}
	if n := e.unpublished(); n != 1 {
		t.Fatalf("unpublished events = %d, want the prepared and committed one", n)
	}
}
