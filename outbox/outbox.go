// Package outbox records events in hookrelay's transactional outbox.
//
// Emit writes the event in the caller's transaction: the event exists if and
// only if that transaction commits, and emitting does no network I/O. The
// relay (package relay) later publishes committed events to the webhooks
// subscribed to them.
//
// The package is deliberately light: an application that imports it pulls in
// pgx and nothing of the relay, the worker or the API.
package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MaxDataBytes caps an event's data (256 KiB), measured as Postgres stores
// it: the bytes of the jsonb's text, octet_length(data::text), with a space
// after every ':' and ',', keys sorted and deduplicated, numbers written out
// and escapes resolved. The outbox table enforces it on every insert, so Emit,
// hookrelay.emit() and triggers refuse exactly the same data; Emit and
// Validate do not guess it from the bytes they are given.
const MaxDataBytes = 256 << 10

// MaxTypeLength caps an event type's length in characters.
const MaxTypeLength = 128

// ErrInvalidEvent is wrapped by every validation error of Emit.
var ErrInvalidEvent = errors.New("invalid event")

// ErrDataTooLarge is wrapped, with ErrInvalidEvent, by Emit's error when the
// database refuses the event's data as larger than MaxDataBytes.
var ErrDataTooLarge = errors.New("data too large")

// dataSizeConstraint names the outbox table's refusal of data larger than
// MaxDataBytes (migrations/00008_payload_cap.sql).
const dataSizeConstraint = "outbox_data_size"

// IsDataTooLarge reports whether err is the database refusing an event's data
// as larger than MaxDataBytes, whichever path emitted it: Emit,
// hookrelay.emit() or a trigger.
func IsDataTooLarge(err error) bool {
	var pg *pgconn.PgError
	return errors.Is(err, ErrDataTooLarge) ||
		errors.As(err, &pg) && pg.Code == "22023" && pg.ConstraintName == dataSizeConstraint
}

// DBTX is what Emit needs from the database: a pgx.Tx satisfies it, and so do
// *pgxpool.Pool and *pgx.Conn (the event is then its own transaction).
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Event is one thing that happened, addressed to the webhooks of a project.
type Event struct {
	// Type names the event, such as "config.deployed". Required.
	Type string
	// ProjectID is the project whose webhooks receive the event. Required.
	ProjectID uuid.UUID
	// Data must encode to a JSON object of at most MaxDataBytes as stored: a
	// struct, a map, or a json.RawMessage. Webhook filters match data.application.id and
	// data.environment.name.
	Data any
}

// insertSQL names the id: Emit makes it (see Emit).
const insertSQL = `INSERT INTO hookrelay.outbox (id, event_type, project_id, data) VALUES ($1, $2, $3, $4)`

// Emit records e in the outbox through db (normally the caller's transaction)
// and returns the event's id. Invalid events are refused with an error
// wrapping ErrInvalidEvent that names the field, and nothing is written; data
// larger than MaxDataBytes also wraps ErrDataTooLarge. A refusal by the
// database aborts a caller's transaction, as any failed statement does.
//
// The id is a UUIDv7 (RFC 9562: a millisecond timestamp, then random bits),
// made here rather than by the table's default, hookrelay.uuidv7(), which
// the SQL paths use: time-ordered ids keep the outbox's primary-key inserts
// at the right edge of the index instead of on a random page of it, and
// making them in Go costs the database nothing.
func Emit(ctx context.Context, db DBTX, e Event) (uuid.UUID, error) {
	data, err := e.validate()
	if err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, fmt.Errorf("emit %s: make id: %w", e.Type, err)
	}
	_, err = db.Exec(ctx, insertSQL, id, e.Type, e.ProjectID, data)
	if IsDataTooLarge(err) {
		return uuid.Nil, fmt.Errorf("emit %s: %w: %w: %w", e.Type, ErrInvalidEvent, ErrDataTooLarge, err)
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("emit %s: %w", e.Type, err)
	}
	return id, nil
}

// Validate reports whether e would pass Emit's own checks. The size of data
// is not one of them: only the database measures it (see MaxDataBytes).
func (e Event) Validate() error {
	_, err := e.validate()
	return err
}

func (e Event) validate() (json.RawMessage, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
	}
	switch {
	case len(bytes.TrimSpace([]byte(e.Type))) == 0:
		return nil, invalid("type must not be empty")
	case len([]rune(e.Type)) > MaxTypeLength:
		return nil, invalid("type is longer than %d characters", MaxTypeLength)
	case e.ProjectID == uuid.Nil:
		return nil, invalid("project_id must be set")
	}
	var data []byte
	switch d := e.Data.(type) {
	case json.RawMessage:
		data = d
	case []byte:
		data = d
	default:
		var err error
		if data, err = json.Marshal(d); err != nil {
			return nil, invalid("data does not encode to JSON: %v", err)
		}
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return nil, invalid("data must be a JSON object")
	}
	return data, nil
}
