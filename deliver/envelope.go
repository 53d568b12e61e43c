package deliver

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// APIVersion is the version of the delivery body format, sent in every
// envelope so that receivers can tell formats apart.
const APIVersion = "2026-11-01"

// Envelope is the JSON body of every delivery. Its fields come from the
// stored event only, so every retry of a delivery sends the same bytes.
type Envelope struct {
	// ID is the event id (the delivery id travels in a header).
	ID         uuid.UUID       `json:"id"`
	Type       string          `json:"type"`
	Timestamp  time.Time       `json:"timestamp"`
	APIVersion string          `json:"api_version"`
	ProjectID  uuid.UUID       `json:"project_id"`
	Data       json.RawMessage `json:"data"`
}

// Encode returns the envelope's bytes. They are deterministic: the timestamp
// is written in UTC, api_version defaults to APIVersion and data is compacted,
// so encoding the same stored event twice yields identical bytes.
func (e Envelope) Encode() ([]byte, error) {
	e.Timestamp = e.Timestamp.UTC()
	if e.APIVersion == "" {
		e.APIVersion = APIVersion
	}
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("{}")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope of event %s: %w", e.ID, err)
	}
	return b, nil
}
