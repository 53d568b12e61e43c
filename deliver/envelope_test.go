package deliver_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/deliver"
)

func TestEnvelope_EncodeIsDeterministicAndUTC(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 2, 10, 4, 5, 123456000, time.FixedZone("CET", 3600))
	e := deliver.Envelope{
		ID:        uuid.MustParse("0b6c4d1e-8f5a-4c3b-9d2e-1a2b3c4d5e6f"),
		Type:      "config.deployed",
		Timestamp: at,
		ProjectID: uuid.MustParse("7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
		Data:      json.RawMessage(`{ "b": 1,  "a": [1, 2] }`),
	}
	first, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"0b6c4d1e-8f5a-4c3b-9d2e-1a2b3c4d5e6f","type":"config.deployed",` +
		`"timestamp":"2026-11-02T09:04:05.123456Z","api_version":"2026-11-01",` +
		`"project_id":"7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","data":{"b":1,"a":[1,2]}}`
	if string(first) != want || !bytes.Equal(first, again) {
		t.Fatalf("Encode = %s\nwant     %s", first, want)
	}
}
