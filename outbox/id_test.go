package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/outbox"
)

// Every path gives an event a UUIDv7 of the time it was emitted (migration
// 00010), so that the outbox's primary-key inserts stay at the right edge of
// the index.
func TestEmit_IDsAreVersion7OfTheEmissionTime(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
		CREATE TABLE public.docs (id int GENERATED ALWAYS AS IDENTITY, project_id uuid NOT NULL, body jsonb NOT NULL);
		CREATE TRIGGER docs_events AFTER INSERT ON public.docs
			FOR EACH ROW EXECUTE FUNCTION hookrelay.emit_row_change('doc.changed', 'project_id');`); err != nil {
		t.Fatal(err)
	}
	paths := map[string]func(tx pgx.Tx, project uuid.UUID) error{
		"go": func(tx pgx.Tx, project uuid.UUID) error {
			_, err := outbox.Emit(ctx, tx, outbox.Event{Type: "a", ProjectID: project, Data: map[string]int{}})
			return err
		},
		"sql": func(tx pgx.Tx, project uuid.UUID) error {
			_, err := tx.Exec(ctx, "SELECT hookrelay.emit('a', $1, '{}')", project)
			return err
		},
		"trigger": func(tx pgx.Tx, project uuid.UUID) error {
			_, err := tx.Exec(ctx, "INSERT INTO public.docs (project_id, body) VALUES ($1, '{}')", project)
			return err
		},
	}
	for name, emit := range paths {
		t.Run(name, func(t *testing.T) {
			project := uuid.New()
			before := time.Now().Add(-time.Second) // the database's clock, not ours
			for range 3 {
				err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return emit(tx, project) })
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond) // a new millisecond for each
			}
			rows, err := db.Pool.Query(ctx, "SELECT id FROM hookrelay.outbox WHERE project_id = $1 ORDER BY seq", project)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now().Add(time.Second)
			if len(ids) != 3 {
				t.Fatalf("%d events, want 3", len(ids))
			}
			for i, id := range ids {
				at := time.Unix(id.Time().UnixTime())
				if id.Version() != 7 || id.Variant() != uuid.RFC4122 || at.Before(before) || at.After(after) {
					t.Errorf("id %s: version %d, variant %s, time %s; want version 7, RFC 4122, between %s and %s",
						id, id.Version(), id.Variant(), at, before, after)
				}
				if i > 0 && id.String() <= ids[i-1].String() {
					t.Errorf("id %s emitted after %s sorts before it", id, ids[i-1])
				}
			}
		})
	}
}
