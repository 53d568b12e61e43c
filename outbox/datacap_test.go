package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/outbox"
)

// sizedEmitters are the three ways to emit, each emitting an event whose data
// is, or contains, the JSON object body.
var sizedEmitters = map[string]func(ctx context.Context, tx pgx.Tx, project uuid.UUID, body string) error{
	"go": func(ctx context.Context, tx pgx.Tx, project uuid.UUID, body string) error {
		_, err := outbox.Emit(ctx, tx, outbox.Event{Type: "a", ProjectID: project, Data: json.RawMessage(body)})
		return err
	},
	"sql": func(ctx context.Context, tx pgx.Tx, project uuid.UUID, body string) error {
		_, err := tx.Exec(ctx, "SELECT hookrelay.emit('a', $1, $2::jsonb)", project, body)
		return err
	},
	"trigger": func(ctx context.Context, tx pgx.Tx, project uuid.UUID, body string) error {
		_, err := tx.Exec(ctx, "INSERT INTO public.docs (project_id, body) VALUES ($1, $2::jsonb)", project, body)
		return err
	},
}

// storedSize is the measure of the cap: the bytes of the text of body as
// Postgres stores it.
func storedSize(t *testing.T, db *testdb.DB, body string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT octet_length($1::jsonb::text)", body).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// list is a JSON object of n zeros in a list (each costs 2 bytes compact, 3
// stored: "0, ") and a string of pad letters (the same either way).
func list(n, pad int) string {
	return `{"l":[` + strings.TrimSuffix(strings.Repeat("0,", n), ",") + `],"s":"` + strings.Repeat("a", pad) + `"}`
}

// escaped is a JSON object of n escaped letters (6 bytes compact, 1 stored)
// and a string of pad letters.
func escaped(n, pad int) string {
	return `{"e":"` + strings.Repeat(`\u0061`, n) + `","s":"` + strings.Repeat("a", pad) + `"}`
}

// The cap on an event's data is one measure, the size of its text as Postgres
// stores it, on all three paths: at the cap is accepted, a byte over is
// refused with the same error, and data whose input and stored sizes fall on
// either side of the cap gets the same verdict whichever path emits it.
func TestEmit_DataCapIsOneMeasureOnEveryPath(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `
		CREATE TABLE public.docs (id int GENERATED ALWAYS AS IDENTITY, project_id uuid NOT NULL, body jsonb NOT NULL);
		CREATE TRIGGER docs_events AFTER INSERT ON public.docs
			FOR EACH ROW EXECUTE FUNCTION hookrelay.emit_row_change('doc.changed', 'project_id');`)
	if err != nil {
		t.Fatal(err)
	}
	// Between the measures: under the cap as sent, over it as stored, and the reverse.
	const zeros, escapes = 120_000, 60_000
	if c, s := len(list(zeros, 0)), storedSize(t, db, list(zeros, 0)); c > outbox.MaxDataBytes || s <= outbox.MaxDataBytes {
		t.Fatalf("list payload is %d bytes sent, %d stored; want at most, then more than, %d", c, s, outbox.MaxDataBytes)
	}
	if c, s := len(escaped(escapes, 0)), storedSize(t, db, escaped(escapes, 0)); c <= outbox.MaxDataBytes || s > outbox.MaxDataBytes {
		t.Fatalf("escaped payload is %d bytes sent, %d stored; want more than, then at most, %d", c, s, outbox.MaxDataBytes)
	}

	for name, emit := range sizedEmitters {
		t.Run(name, func(t *testing.T) {
			// emitted emits body in a transaction it rolls back, and returns
			// the emission's error or else the size of the event's data.
			emitted := func(body string) (int, error) {
				tx, err := db.Pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx) //nolint:errcheck
				project := uuid.New()
				if err := emit(ctx, tx, project, body); err != nil {
					return 0, err
				}
				var n int
				err = tx.QueryRow(ctx, "SELECT octet_length(data::text) FROM hookrelay.outbox WHERE project_id = $1", project).Scan(&n)
				if err != nil {
					t.Fatal(err)
				}
				return n, nil
			}
			// The trigger wraps body in an envelope: what it adds to the size.
			empty, err := emitted(`{}`)
			if err != nil {
				t.Fatal(err)
			}
			overhead := empty - len(`{}`)
			// padFor is the pad that makes build(n, pad) an event of exactly size bytes.
			padFor := func(build func(n, pad int) string, n, size int) int {
				return size - overhead - storedSize(t, db, build(n, 0))
			}
			cases := []struct {
				name string
				body string
				size int // stored size of the event's data
			}{
				{"at the cap", list(1000, padFor(list, 1000, outbox.MaxDataBytes)), outbox.MaxDataBytes},
				{"a byte over", list(1000, padFor(list, 1000, outbox.MaxDataBytes+1)), outbox.MaxDataBytes + 1},
				{"under as sent, over as stored", list(zeros, 0), overhead + storedSize(t, db, list(zeros, 0))},
				{"over as sent, at the cap as stored", escaped(escapes, padFor(escaped, escapes, outbox.MaxDataBytes)), outbox.MaxDataBytes},
			}
			for _, c := range cases {
				n, err := emitted(c.body)
				switch {
				case c.size <= outbox.MaxDataBytes && err != nil:
					t.Errorf("%s (%d bytes stored): refused: %v", c.name, c.size, err)
				case c.size <= outbox.MaxDataBytes && n != c.size:
					t.Errorf("%s: stored %d bytes, want %d", c.name, n, c.size)
				case c.size > outbox.MaxDataBytes && !outbox.IsDataTooLarge(err):
					t.Errorf("%s (%d bytes stored): error = %v, want one IsDataTooLarge recognises", c.name, c.size, err)
				case c.size > outbox.MaxDataBytes && name == "go" && (!errors.Is(err, outbox.ErrDataTooLarge) || !errors.Is(err, outbox.ErrInvalidEvent)):
					t.Errorf("%s: Emit error = %v, want ErrDataTooLarge and ErrInvalidEvent", c.name, err)
				}
			}
		})
	}
}
