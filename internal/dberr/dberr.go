// Package dberr classifies Postgres errors once, for every retry loop of
// hookrelay: a transient error (the server restarting, a lost connection, a
// lock or statement timeout, a serialization failure) is worth retrying as
// is; any other error is about the statement or its data and will fail again.
package dberr

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
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
		// No answer from the server: a refused or lost connection, a
		// timeout, a closed pool connection.
		return true
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
	return pg.Code == "25P03" // idle_in_transaction_session_timeout
}

// Is reports whether err carries the SQLSTATE code.
func Is(err error, code string) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == code
}
