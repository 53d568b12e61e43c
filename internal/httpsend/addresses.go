package httpsend

import (
	"errors"
	"net"
	"strings"

	"github.com/hookrelay/hookrelay/internal/safedial"
)

// withoutAddresses returns err with a message that names no resolved address,
// for a Sender that refuses private networks: whoever registers a webhook reads
// its errors (last_error, the test-send answer), and the address a name
// resolved to would tell them what internal DNS answers. A refused destination
// becomes "destination address not allowed (<reason>)"; for any other error the
// source and destination of the network operation and the DNS server are dropped
// ("dial tcp: connect: connection refused"). errors.Is and errors.As still see
// the original error.
func withoutAddresses(err error) error {
	var refused *safedial.AddrError
	if errors.As(err, &refused) {
		return &hiddenAddrError{msg: "destination address not allowed (" + refused.Reason + ")", err: err}
	}
	if errors.Is(err, safedial.ErrForbidden) {
		return &hiddenAddrError{msg: "destination address not allowed", err: err}
	}
	msg := err.Error()
	var op *net.OpError
	if errors.As(err, &op) {
		bare := *op
		bare.Source, bare.Addr = nil, nil
		msg = strings.Replace(msg, op.Error(), bare.Error(), 1)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		bare := *dns
		bare.Server = ""
		msg = strings.Replace(msg, dns.Error(), bare.Error(), 1)
	}
	return &hiddenAddrError{msg: msg, err: err}
}

// hiddenAddrError is an error whose message has had its addresses removed.
type hiddenAddrError struct {
	msg string
	err error
}

func (e *hiddenAddrError) Error() string { return e.msg }
func (e *hiddenAddrError) Unwrap() error { return e.err }
