package api

import (
	"testing"
	"time"
)

// Malformed JSON must end the scan (the decoder names the error after it),
// never loop: a fuzz run found "[V" spinning forever.
func TestStrictJSON_MalformedInputEnds(t *testing.T) {
	for _, raw := range []string{`[V`, `{"a":[1,`, `{"a" 1}`, `{"a":{"b":`, `[[[[`, `{"name":"a",}`, `[1 2]`} {
		done := make(chan *apiError, 1)
		go func() { done <- strictJSON([]byte(raw), &webhookInput{}) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("strictJSON(%q) still running after 2 s", raw)
		}
	}
}

func FuzzStrictJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[V`, `{"name":"a","name":"b"}`, `{"NAME":1}`, "{\"a\":\"\xff\"}", `{"h":{"x":[1,{"y":2,"y":3}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if e := strictJSON(raw, &webhookInput{}); e != nil && e.Status/100 != 4 {
			t.Fatalf("strictJSON(%q) answered %d", raw, e.Status)
		}
	})
}
