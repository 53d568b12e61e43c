package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/outbox"
)

// The wake-up NOTIFY is sent only while a relay has declared itself idle, so
// that writers under sustained load do not pay for it. It needs the relay
// idle both when the event is inserted (the trigger's WHEN, migration 00010:
// a writer inserting while the relay is busy queues nothing and calls no
// function at commit) and when it commits (the trigger function reads the
// flag again). An emission that saw the relay busy at its INSERT sends no
// NOTIFY even if the relay is idle by its commit: that is the documented
// price of the WHEN, covered by the relay's settle claim and poll.
func TestEmit_NotifiesOnlyIfTheRelayIsIdleAtInsertAndAtCommit(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listener, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN hookrelay_outbox"); err != nil {
		t.Fatal(err)
	}
	setIdle := func(conn *pgx.Conn, idle bool) {
		if _, err := conn.Exec(ctx, "SELECT setval('hookrelay.relay_idle', $1::boolean::int)", idle); err != nil {
			t.Fatal(err)
		}
	}
	// emit inserts with the flag at atInsert and commits with it at atCommit,
	// and returns the backend's pid.
	emit := func(atInsert, atCommit bool) uint32 {
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		setIdle(conn, atInsert)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := outbox.Emit(ctx, tx, outbox.Event{Type: "x", ProjectID: uuid.New(), Data: map[string]int{}}); err != nil {
				return err
			}
			setIdle(conn, atCommit) // setval is not transactional: the flag flips now
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return conn.PgConn().PID()
	}
	busyBoth := emit(false, false)
	busyThenIdle := emit(false, true)
	idleThenBusy := emit(true, false)
	idleBoth := emit(true, true)
	// Notifications arrive in commit order: had any of the first three
	// notified, its notification would come first.
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switch n.PID {
	case idleBoth:
	case busyBoth:
		t.Fatal("an emission while the relay was busy throughout notified")
	case busyThenIdle:
		t.Fatal("an emission that inserted while the relay was busy notified; migration 00010 says it does not, and the docs describe that race")
	case idleThenBusy:
		t.Fatal("an emission that committed while the relay was busy notified: the commit-time check of the flag is gone")
	default:
		t.Fatalf("notification from unknown backend %d", n.PID)
	}
}

// The cap's refusal keeps its SQLSTATE and constraint name now that the
// trigger function only runs behind a WHEN, on an UPDATE of data as on an
// INSERT, and data at the cap still passes both.
func TestOutbox_DataCapRefusalIsTheSameOnInsertAndUpdate(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	var atCap string
	// {"s": "<pad>"} is 9 bytes of text around the pad.
	if err := db.Pool.QueryRow(ctx, "SELECT jsonb_build_object('s', repeat('a', $1::int))::text", outbox.MaxDataBytes-9).Scan(&atCap); err != nil {
		t.Fatal(err)
	}
	var id uuid.UUID
	err := db.Pool.QueryRow(ctx, `INSERT INTO hookrelay.outbox (event_type, project_id, data)
		VALUES ('a', gen_random_uuid(), $1::jsonb) RETURNING id`, atCap).Scan(&id)
	if err != nil {
		t.Fatalf("data of exactly %d bytes refused: %v", outbox.MaxDataBytes, err)
	}
	refusals := map[string]error{}
	_, refusals["insert"] = db.Pool.Exec(ctx, `INSERT INTO hookrelay.outbox (event_type, project_id, data)
		VALUES ('a', gen_random_uuid(), $1::jsonb || '{"t": "b"}')`, atCap)
	_, refusals["update"] = db.Pool.Exec(ctx, `UPDATE hookrelay.outbox SET data = data || '{"t": "b"}' WHERE id = $1`, id)
	for name, err := range refusals {
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "22023" || pg.ConstraintName != "outbox_data_size" || !outbox.IsDataTooLarge(err) {
			t.Errorf("%s over the cap: %v, want SQLSTATE 22023 on constraint outbox_data_size", name, err)
		}
	}
	// An update that leaves data alone does not measure it.
	if _, err := db.Pool.Exec(ctx, "UPDATE hookrelay.outbox SET created_at = now() WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
}
