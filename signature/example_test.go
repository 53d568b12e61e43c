package signature_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/signature"
)

// A receiver checks the X-Agenta-Signature header against the raw request body
// before trusting it. In an http.Handler:
//
//	body, _ := io.ReadAll(r.Body)
//	err := signature.Verify(body, r.Header.Get("X-Agenta-Signature"), []string{secret}, 0)
//
// The example fixes the clock with VerifyAt so that its output is stable.
func ExampleVerify() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"id":"0191d5f4-7a1e-7c3b-9d2a-3f1e2b4c5d6e","type":"config.deployed"}`)
	sentAt := time.Unix(1_700_000_000, 0)
	header := signature.Sign(body, sentAt, secret) // what hookrelay sends

	now := sentAt.Add(30 * time.Second)
	fmt.Println(signature.VerifyAt(body, header, []string{secret}, 0, now))

	tampered := []byte(`{"id":"0191d5f4-7a1e-7c3b-9d2a-3f1e2b4c5d6e","type":"config.deleted"}`)
	err := signature.VerifyAt(tampered, header, []string{secret}, 0, now)
	fmt.Println(errors.Is(err, signature.ErrSignatureMismatch))

	err = signature.VerifyAt(body, header, []string{secret}, 0, sentAt.Add(time.Hour))
	fmt.Println(errors.Is(err, signature.ErrTimestampOutOfTolerance))
	// Output:
	// <nil>
	// true
	// true
}

// During a secret rotation hookrelay signs with every valid secret, current
// first; receivers that know either secret accept the delivery.
func ExampleSign() {
	body := []byte(`{"type":"config.deployed"}`)
	sentAt := time.Unix(1_700_000_000, 0)
	fmt.Println(signature.Sign(body, sentAt, "whsec_new", "whsec_old"))
	// Output:
	// t=1700000000,v1=dce83052bea18b7b94d5de59cfcb6d988cdd844a1c4d00adaf2a6916e4a578fa,v1=07a5aea953b93a305f3b49f2b559d808f078ef505cb288d62dd29ed47215eded
}
