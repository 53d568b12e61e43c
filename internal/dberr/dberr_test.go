package dberr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hookrelay/hookrelay/internal/dberr"
)

func TestTransient_ByClass(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("query: %w", pgconn.ErrConnClosed), true},
		{&pgconn.PgError{Code: "25006"}, true}, // read-only after a failover
		{errors.New("can't scan into dest[0]: cannot scan NULL into *string"), false},
		{fmt.Errorf("record: %w", &pgconn.PgError{Code: "57P01"}), true}, // admin shutdown
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{&pgconn.PgError{Code: dberr.LockNotAvailable}, true},
		{&pgconn.PgError{Code: "25P03"}, true},
		{&pgconn.PgError{Code: "22P02"}, false}, // invalid text representation
		{&pgconn.PgError{Code: dberr.UniqueViolation}, false},
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table
	} {
		if got := dberr.Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %t, want %t", c.err, got, c.want)
		}
	}
}
