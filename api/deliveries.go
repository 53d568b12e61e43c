package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Page sizes of the delivery list.
const (
	defaultDeliveryLimit = 50
	maxDeliveryLimit     = 100
)

// deliveryStatuses are the values of the status filter.
var deliveryStatuses = map[string]bool{"pending": true, "delivered": true, "failed": true, "skipped": true}

// delivery is a delivery as the API shows it. Attempts is a count; the
// detail (GET .../deliveries/{delivery_id}) adds Payload, the event data the
// delivery carries, and AttemptLog ("attempt_log"), the list of its HTTP
// attempts oldest first; DESIGN.md calls that list "the list of attempts" and
// the name attempt_log keeps it apart from the attempts count.
type delivery struct {
	ID                 uuid.UUID  `json:"id"`
	WebhookID          uuid.UUID  `json:"webhook_id"`
	EventID            uuid.UUID  `json:"event_id"`
	EventType          string     `json:"event_type"`
	Status             string     `json:"status"`
	Attempts           int        `json:"attempts"`
	MaxAttempts        int        `json:"max_attempts"`
	CreatedAt          time.Time  `json:"created_at"`
	DeliveredAt        *time.Time `json:"delivered_at"`
	NextAttemptAt      *time.Time `json:"next_attempt_at"`
	LastResponseStatus *int       `json:"last_response_status"`
	LastError          *string    `json:"last_error"`

	Payload    json.RawMessage `json:"payload,omitzero"`
	AttemptLog []attempt       `json:"attempt_log,omitzero"`
}

// attempt is one HTTP attempt of a delivery, the audit row.
type attempt struct {
	Attempt      int       `json:"attempt"`
	StartedAt    time.Time `json:"started_at"`
	DurationMS   float64   `json:"duration_ms"`
	StatusCode   *int      `json:"status_code"`
	Error        *string   `json:"error"`
	ResponseBody *string   `json:"response_body"`
}

const deliveryColumns = `id, webhook_id, event_id, event_type, status, attempts, max_attempts, created_at,
	delivered_at, next_attempt_at, last_response_status, last_error`

func scanDelivery(row pgx.Row, extra ...any) (delivery, error) {
	var d delivery
	dest := append([]any{&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.MaxAttempts, &d.CreatedAt,
		&d.DeliveredAt, &d.NextAttemptAt, &d.LastResponseStatus, &d.LastError}, extra...)
	return d, row.Scan(dest...)
}

// cursor is a position in a webhook's delivery list, newest first: the list
// continues with deliveries strictly older than (CreatedAt, ID). Keyset
// pagination keeps pages stable while new deliveries arrive.
type cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// encode makes the opaque cursor string: base64url of "<unix µs>.<id>".
func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID.String()))
}

// Cursor times outside [minCursorTime, now+maxCursorAhead] are refused: no
// delivery was created then, so such a cursor was crafted, and the extremes
// are beyond what Postgres can compare (a 500) or would silently mean "the
// first page".
var minCursorTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maxCursorAhead is the clock skew allowed between a cursor's time (Postgres'
// clock) and the API's clock.
const maxCursorAhead = 24 * time.Hour

// parseCursor accepts exactly the strings encode makes, for a time within the
// sane range: the base64 is strict, the number canonical and the id a
// non-nil UUID in its canonical form, so any cursor accepted encodes back to
// itself. Anything else is a 400 naming the cursor.
func parseCursor(s string) (cursor, error) {
	bad := invalid("cursor", "is not a cursor returned by this API")
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return cursor{}, bad
	}
	ts, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return cursor{}, bad
	}
	micros, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strconv.FormatInt(micros, 10) != ts {
		return cursor{}, bad
	}
	u, err := uuid.Parse(id)
	if err != nil || u == uuid.Nil || u.String() != id {
		return cursor{}, bad
	}
	at := time.UnixMicro(micros)
	if at.Before(minCursorTime) || at.After(time.Now().Add(maxCursorAhead)) {
		return cursor{}, invalid("cursor", "points outside the range of delivery times; use a next_cursor returned by this API")
	}
	return cursor{CreatedAt: at, ID: u}, nil
}

// deliveryQuery is the parsed query string of the delivery lists: every
// filter is optional and they combine with AND.
type deliveryQuery struct {
	status    *string
	eventType *string
	eventID   *uuid.UUID
	id        *uuid.UUID // one delivery, to find it by id
	since     *time.Time // created_at >= since
	until     *time.Time // created_at < until
	limit     int
	after     *cursor
}

// maxEventTypeLength bounds the event_type filter, as it bounds a webhook's
// event types.
const maxEventTypeLength = 200

// parseFilters reads the filters other than status, limit and cursor.
func (q *deliveryQuery) parseFilters(v url.Values) error {
	if s := v.Get("event_type"); s != "" {
		if err := checkText("event_type", s, 1, maxEventTypeLength); err != nil {
			return err
		}
		q.eventType = &s
	}
	for _, f := range []struct {
		name string
		dst  **uuid.UUID
	}{{"event_id", &q.eventID}, {"id", &q.id}} {
		if s := v.Get(f.name); s != "" {
			id, err := uuid.Parse(s)
			if err != nil {
				return invalid(f.name, "must be a UUID")
			}
			*f.dst = &id
		}
	}
	for _, f := range []struct {
		name string
		dst  **time.Time
	}{{"since", &q.since}, {"until", &q.until}} {
		if s := v.Get(f.name); s != "" {
			t, err := parseTime(f.name, s)
			if err != nil {
				return err
			}
			*f.dst = &t
		}
	}
	if q.since != nil && q.until != nil && !q.since.Before(*q.until) {
		return invalid("until", "must be after since")
	}
	return nil
}

func parseDeliveryQuery(r *http.Request) (deliveryQuery, error) {
	q := deliveryQuery{limit: defaultDeliveryLimit}
	v := r.URL.Query()
	if s := v.Get("status"); s != "" {
		if !deliveryStatuses[s] {
			return q, invalid("status", "must be one of pending, delivered, failed, skipped")
		}
		q.status = &s
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDeliveryLimit {
			return q, invalid("limit", "must be an integer from 1 to %d", maxDeliveryLimit)
		}
		q.limit = n
	}
	// A cursor that is present is parsed even when empty or repeated: a
	// client that sends a broken one must not silently get the first page.
	if cs, ok := v["cursor"]; ok {
		if len(cs) != 1 {
			return q, invalid("cursor", "must be given once")
		}
		c, err := parseCursor(cs[0])
		if err != nil {
			return q, err
		}
		q.after = &c
	}
	return q, q.parseFilters(v)
}

// listDeliveries returns a page of the webhook's deliveries, newest first,
// and the cursor of the next page (null on the last one).
func (a *app) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	project, id, err := projectWebhook(r)
	if err != nil {
		return err
	}
	q, err := parseDeliveryQuery(r)
	if err != nil {
		return err
	}
	if _, err := loadWebhook(r.Context(), a.pool, project, id, false); err != nil {
		return err
	}
	return a.writeDeliveryPage(w, r, `webhook_id = $1 AND project_id = $2`, &id, project, q)
}

// listProjectDeliveries returns a page of the deliveries of every webhook of
// the project, newest first; those of deleted webhooks are left out, as
// their routes answer 404.
func (a *app) listProjectDeliveries(w http.ResponseWriter, r *http.Request) error {
	project, err := pathUUID(r, "project_id")
	if err != nil {
		return err
	}
	q, err := parseDeliveryQuery(r)
	if err != nil {
		return err
	}
	return a.writeDeliveryPage(w, r, `$1::uuid IS NULL AND project_id = $2
		AND webhook_id IN (SELECT id FROM hookrelay.webhooks WHERE project_id = $2)`, nil, project, q)
}

// writeDeliveryPage answers the page of deliveries that scope (one of the
// two constant conditions above, on $1 the webhook and $2 the project) and
// q select.
func (a *app) writeDeliveryPage(w http.ResponseWriter, r *http.Request, scope string, webhook *uuid.UUID, project uuid.UUID, q deliveryQuery) error {
	var afterTime *time.Time
	var afterID *uuid.UUID
	if q.after != nil {
		afterTime, afterID = &q.after.CreatedAt, &q.after.ID
	}
	rows, err := a.pool.Query(r.Context(), `SELECT `+deliveryColumns+` FROM hookrelay.deliveries
		WHERE `+scope+`
		  AND ($3::text IS NULL OR status = $3)
		  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
		  AND ($7::text IS NULL OR event_type = $7)
		  AND ($8::uuid IS NULL OR event_id = $8)
		  AND ($9::timestamptz IS NULL OR created_at >= $9)
		  AND ($10::timestamptz IS NULL OR created_at < $10)
		  AND ($11::uuid IS NULL OR id = $11)
		ORDER BY created_at DESC, id DESC
		LIMIT $6`, webhook, project, q.status, afterTime, afterID, q.limit+1, q.eventType, q.eventID, q.since, q.until, q.id)
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (delivery, error) { return scanDelivery(row) })
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	var next *string
	if len(list) > q.limit {
		list = list[:q.limit]
		last := list[len(list)-1]
		s := cursor{CreatedAt: last.CreatedAt, ID: last.ID}.encode()
		next = &s
	}
	if list == nil {
		list = []delivery{}
	}
	writeJSON(w, http.StatusOK, struct {
		Deliveries []delivery `json:"deliveries"`
		NextCursor *string    `json:"next_cursor"`
	}{list, next})
	return nil
}

// deliveryPath parses project_id, id and delivery_id.
func deliveryPath(r *http.Request) (project, webhookID, deliveryID uuid.UUID, err error) {
	if project, webhookID, err = projectWebhook(r); err != nil {
		return
	}
	deliveryID, err = pathUUID(r, "delivery_id")
	return
}

// loadDelivery reads one delivery of the project's webhook, with its payload
// and attempts when detail is set.
func (a *app) loadDelivery(ctx context.Context, project, webhookID, deliveryID uuid.UUID, detail bool) (delivery, error) {
	var payload json.RawMessage
	d, err := scanDelivery(a.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`, payload FROM hookrelay.deliveries
		WHERE id = $1 AND webhook_id = $2 AND project_id = $3`, deliveryID, webhookID, project), &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return delivery{}, notFound("delivery")
	}
	if err != nil {
		return delivery{}, fmt.Errorf("load delivery %s: %w", deliveryID, err)
	}
	if !detail {
		return d, nil
	}
	d.Payload = payload
	rows, err := a.pool.Query(ctx, `SELECT attempt, started_at, duration_ms, status_code, error, response_body
		FROM hookrelay.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, deliveryID)
	if err != nil {
		return delivery{}, fmt.Errorf("load attempts of delivery %s: %w", deliveryID, err)
	}
	d.AttemptLog, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (attempt, error) {
		var at attempt
		err := row.Scan(&at.Attempt, &at.StartedAt, &at.DurationMS, &at.StatusCode, &at.Error, &at.ResponseBody)
		return at, err
	})
	if err != nil {
		return delivery{}, fmt.Errorf("load attempts of delivery %s: %w", deliveryID, err)
	}
	if d.AttemptLog == nil {
		d.AttemptLog = []attempt{}
	}
	return d, nil
}

// getDelivery returns one delivery with its payload and attempt_log. A
// deleted webhook's deliveries are kept for SQL audits, but the API answers
// 404 for them as it does for the webhook's list.
func (a *app) getDelivery(w http.ResponseWriter, r *http.Request) error {
	project, webhookID, deliveryID, err := deliveryPath(r)
	if err != nil {
		return err
	}
	if _, err := loadWebhook(r.Context(), a.pool, project, webhookID, false); err != nil {
		return err
	}
	d, err := a.loadDelivery(r.Context(), project, webhookID, deliveryID, true)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
