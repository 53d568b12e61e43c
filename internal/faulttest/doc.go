// Package faulttest proves hookrelay's central promise, that no committed
// event is lost, by driving the real binary as separate processes (two relays,
// two workers) against real Postgres, a private Redis and a misbehaving
// receiver, while killing processes and flushing Redis. It holds only tests.
//
// HOOKRELAY_FAULT_EVENTS scales the run (default 2000 events; 100000 for a soak).
package faulttest
