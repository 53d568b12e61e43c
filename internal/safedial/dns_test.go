package safedial

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
)

// fakeResolver returns a pure-Go resolver whose DNS server is an in-process
// responder answering A queries from names (fully qualified, lower case); every
// other query gets an empty NOERROR answer. Nothing leaves the process.
func fakeResolver(names map[string]netip.Addr) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			client, server := net.Pipe() // not a PacketConn: the resolver uses TCP framing
			go serveDNS(server, names)
			return client, nil
		},
	}
}

func serveDNS(c net.Conn, names map[string]netip.Addr) {
	defer c.Close()
	for {
		var n uint16
		if err := binary.Read(c, binary.BigEndian, &n); err != nil {
			return
		}
		q := make([]byte, n)
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp := answer(q, names)
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answer builds the response to query q: the header and the single question
// copied, then one A record when the name is known and the type is A.
func answer(q []byte, names map[string]netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	i, name := 12, ""
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		name += string(q[i+1:i+1+l]) + "."
		i += 1 + l
	}
	end := i + 5 // zero label, qtype, qclass
	if end > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1 : i+3])
	addr, ok := names[name]
	ancount := uint16(0)
	if ok && qtype == 1 {
		ancount = 1
	}
	resp := append([]byte{}, q[:2]...) // id
	resp = append(resp, 0x81, 0x80)    // response, recursion desired and available, NOERROR
	resp = append(resp, 0, 1, byte(ancount>>8), byte(ancount), 0, 0, 0, 0)
	resp = append(resp, q[12:end]...)
	if ancount == 1 {
		a := addr.As4()
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		resp = append(resp, a[:]...)
	}
	return resp
}
