package dberr_test

import (
	"context"
	"errors"
	"fmt"
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
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), true},
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
