package receiver_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/receiver"
)

func start(t *testing.T, opts receiver.Options) *receiver.Receiver {
	t.Helper()
	r, err := receiver.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func post(t *testing.T, client *http.Client, url string) {
	t.Helper()
	resp, err := client.Post(url, "application/json", nil)
	if err == nil {
		resp.Body.Close()
	}
}

// Each request is listed with what the receiver really answered: its status,
// or 0 when it hung past the sender's timeout or reset the connection.
func TestReceiver_RecordsWhatItAnswered(t *testing.T) {
	flaky := receiver.NewFlaky(receiver.Behavior{Fail: 1})
	r := start(t, receiver.Options{Respond: flaky.Respond})
	client := &http.Client{Timeout: 200 * time.Millisecond}
	post(t, client, r.URL+"/a")
	flaky.Set(receiver.Behavior{Hang: 1})
	post(t, client, r.URL+"/b")
	flaky.Set(receiver.Behavior{Reset: 1})
	post(t, client, r.URL+"/c")
	flaky.Set(receiver.Behavior{})
	post(t, client, r.URL+"/d")

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	reqs, err := r.Wait(ctx, func(reqs []receiver.Request) bool {
		if len(reqs) < 4 {
			return false
		}
		for _, q := range reqs {
			if !q.Answered {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"/a": 500, "/b": 0, "/c": 0, "/d": 200}
	for _, q := range reqs {
		if q.Status != want[q.Path] {
			t.Errorf("%s: status %d, want %d", q.Path, q.Status, want[q.Path])
		}
	}
}

// A request shows as soon as it arrives, before it is answered: tests stop a
// worker while a delivery is in flight that way.
func TestReceiver_ListsARequestOnArrival(t *testing.T) {
	release := make(chan struct{})
	r := start(t, receiver.Options{Respond: func(int, http.ResponseWriter, *http.Request) { <-release }})
	go post(t, http.DefaultClient, r.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	reqs, err := r.Wait(ctx, func(reqs []receiver.Request) bool { return len(reqs) == 1 })
	if err != nil || reqs[0].Answered {
		t.Fatalf("in flight: %v, answered %v", err, reqs[0].Answered)
	}
	close(release)
}

func TestReceiver_ForgetKeepsNothingButObservesAndCounts(t *testing.T) {
	seen := make(chan string, 1)
	r := start(t, receiver.Options{Forget: true, Observe: func(q receiver.Request) { seen <- q.Path }})
	post(t, http.DefaultClient, r.URL+"/x")
	if p := <-seen; p != "/x" || r.Count() != 1 || len(r.Requests()) != 0 {
		t.Fatalf("observed %q, count %d, kept %d; want /x, 1, 0", p, r.Count(), len(r.Requests()))
	}
}
