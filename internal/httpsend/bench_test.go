package httpsend

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkSend measures one signed POST to a loopback receiver over a reused
// connection: the sender's own overhead plus loopback HTTP.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := New(Config{AllowPrivate: true})
	defer s.Close()
	req := request(srv.URL, "whsec_current", "whsec_old")
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Send(b.Context(), req); !res.Success() {
			b.Fatalf("Send = %+v", res)
		}
	}
}
