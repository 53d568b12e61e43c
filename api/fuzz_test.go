package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hookrelay/hookrelay/api"
	"github.com/hookrelay/hookrelay/internal/testkit/testdb"
	"github.com/hookrelay/hookrelay/internal/testkit/testredis"
)

// fuzzSeeds are bodies for every JSON route: valid ones and near misses.
var fuzzSeeds = []string{
	``, `{}`, `null`, `[]`, `"x"`, `{"name":`, `{"name":"a"} {}`,
	`{"name":"hook","url":"https://x.example/in","event_types":["*"]}`,
	`{"name":"hook","url":"http://127.0.0.1:9/in","event_types":["config.deployed"],"headers":{"X-Token":"t"},"application_id":null,"environment_name":"prod","description":"d","is_active":false}`,
	`{"name":"\u0000","url":"https://x.example","event_types":["*"]}`,
	`{"name":"h","url":"https://u:p@x.example","event_types":["*"],"headers":{"Host":"x","X-Agenta-Event":"y"}}`,
	`{"name":"h","url":"ftp://x","event_types":[1,2]}`,
	`{"headers":{"X-A":"a\r\nb"},"is_active":"yes","application_id":"nope"}`,
	`{"event_types":null,"name":null,"url":null,"headers":null}`,
	`{"application_id":"6f1c2a52-7f8e-4f7e-9a53-5f8a3c2f1d10","application_slug":"a","variant_id":"6f1c2a52-7f8e-4f7e-9a53-5f8a3c2f1d11","variant_slug":"v","params":{"t":1e-20000,"s":"\u0000"},"environment":"prod"}`,
	`{"application_id":"6f1c2a52-7f8e-4f7e-9a53-5f8a3c2f1d10","application_slug":"a","variant_id":"6f1c2a52-7f8e-4f7e-9a53-5f8a3c2f1d11","variant_slug":"v","params":{"deep":[[[[[]]]]]},"environment":"prod","deployed_by":"me"}`,
	`{"params":"not an object","environment":1e999}`,
	`{"name":"a","name":"b","url":"https://x.example","event_types":["*"]}`,
	`{"NAME":"a","Url":"https://x.example","event_types":["*"]}`,
	"{\"name\":\"a\xff\",\"url\":\"https://x.example\",\"event_types\":[\"*\"]}",
	`{"headers":{"X-A":"1","X-A":"2","X-B":"********"}}`,
	`{"params":{"a":{"b":1,"b":2}},"environment":"prod"}`,
}

// fuzzAPI is the handler fuzz targets drive, over one private database, with
// a webhook to PATCH.
type fuzzAPI struct {
	h       http.Handler
	project uuid.UUID
	hook    string
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	fa := newFuzzServer(f)
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	return fa
}

// newFuzzServer is newFuzzAPI without the body seeds.
func newFuzzServer(f *testing.F) *fuzzAPI {
	db := testdb.New(f)
	rdb, keys := testredis.New(f)
	cfg := api.Config{AllowPrivate: true, SecretGrace: time.Minute, EventTypes: eventTypes, Stream: keys.Stream}
	fa := &fuzzAPI{h: api.New(cfg, db.Pool, rdb, nil, nil), project: uuid.New()}
	rec := fa.serve("POST", "/webhooks", []byte(`{"name":"h","url":"https://x.example","event_types":["*"]}`))
	var created struct{ ID string }
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil || rec.Code != http.StatusCreated {
		f.Fatalf("create the webhook to patch: %d %s", rec.Code, rec.Body)
	}
	fa.hook = created.ID
	return fa
}

func (fa *fuzzAPI) serve(method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/api/projects/"+fa.project.String()+path, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	fa.h.ServeHTTP(rec, req)
	return rec
}

// check fails unless the answer is a success or a 4xx JSON error object.
func check(t *testing.T, rec *httptest.ResponseRecorder, body []byte) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
	}
	if rec.Code < 300 {
		return
	}
	var e struct {
		Error *struct{ Code, Message string }
	}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d without a JSON error object (%v) for body %q", rec.Code, err, body)
	}
	if !strings.Contains(e.Error.Message, ":") {
		t.Fatalf("error message %q names no field", e.Error.Message)
	}
}

// FuzzCreateWebhook: any body → no panic, no 5xx, every refusal a JSON error.
func FuzzCreateWebhook(f *testing.F) {
	fa := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		check(t, fa.serve("POST", "/webhooks", body), body)
	})
}

// FuzzPatchWebhook: as FuzzCreateWebhook, for PATCH of an existing webhook.
func FuzzPatchWebhook(f *testing.F) {
	fa := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		check(t, fa.serve("PATCH", "/webhooks/"+fa.hook, body), body)
	})
}

// FuzzDeployConfig: as FuzzCreateWebhook, for the config deploy.
func FuzzDeployConfig(f *testing.F) {
	fa := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		check(t, fa.serve("POST", "/configs/deploy", body), body)
	})
}

// FuzzDeliveryCursor: any cursor → no 5xx, a refusal is a 400 naming the
// cursor, and a cursor the list accepts is exactly one that encode makes
// (it round-trips).
func FuzzDeliveryCursor(f *testing.F) {
	fa := newFuzzServer(f)
	now := time.Now().UnixMicro()
	id := uuid.NewString()
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		enc([]byte(strconv.FormatInt(now, 10) + "." + id)),
		enc([]byte(strconv.FormatInt(now-1e12, 10) + "." + id)),
		enc([]byte("-300000000000000000." + id)),
		enc([]byte("9223372036854775807." + id)),
		enc([]byte("0." + id)),
		enc([]byte(strconv.FormatInt(now, 10) + ".{" + id + "}")),
		"", "null", "!!!", "bm90LWEtY3Vyc29y", "AAAA", "=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		path := "/webhooks/" + fa.hook + "/deliveries?cursor=" + url.QueryEscape(c)
		rec := fa.serve("GET", path, nil)
		body := rec.Body.String() // check consumes it
		check(t, rec, []byte(c))
		again, err := api.ReencodeCursor(c)
		switch {
		case rec.Code == http.StatusOK && (err != nil || again != c):
			t.Fatalf("cursor %q accepted but re-encodes to %q (%v)", c, again, err)
		case rec.Code == http.StatusBadRequest && !strings.HasPrefix(body, `{"error":{"code":"invalid_field","message":"cursor:`):
			t.Fatalf("cursor %q refused without naming the cursor: %s", c, body)
		case rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest:
			t.Fatalf("cursor %q answered %d: %s", c, rec.Code, body)
		}
	})
}
