// Package dberr classifies Postgres errors once, for every retry loop of
// hookrelay: a transient error (the server restarting or read-only after a
// failover, a lost connection, a lock or statement timeout, a serialization
// failure) is worth retrying as is; any other error — the server's verdict on
// the statement or its data, or the driver's on a value it cannot encode or
// scan — will fail again, and retrying it would only wedge the caller.
package dberr

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// SQLSTATEs hookrelay reacts to by name.
const (
	LockNotAvailable = "55P03" // lock_timeout expired
	UniqueViolation  = "23505"
)

// Transient reports whether err is worth retrying unchanged once Postgres
// is reachable again. Context cancellation is not transient: the caller
// gave up.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return connectionLost(err)
	}
	switch pg.Code[:2] {
	case "08", // connection exception
		"40", // transaction rollback: serialization failure, deadlock
		"53", // insufficient resources: too many connections
		"55", // object not in prerequisite state: lock not available
		"57", // operator intervention: admin shutdown, crash shutdown, cannot connect now, query cancelled
		"58": // system error
		return true
	}
	switch pg.Code {
	case "25P03", // idle_in_transaction_session_timeout
		"25006": // read_only_sql_transaction: a failover left us on a replica
		return true
	}
	return false
}

// connectionLost reports whether err, which the server did not send, says
// the connection failed (refused, reset, closed, timed out) rather than the
// driver refusing a value.
func connectionLost(err error) bool {
	var netErr net.Error
	var connect *pgconn.ConnectError
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.As(err, &netErr) || errors.As(err, &connect) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, context.DeadlineExceeded)
}

// Is reports whether err carries the SQLSTATE code.
func Is(err error, code string) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == code
}

// IsConstraint reports whether err is Postgres refusing a row because of
// the constraint named name (a CHECK, a unique index).
func IsConstraint(err error, name string) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.ConstraintName == name
}
