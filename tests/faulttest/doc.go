// Package faulttest proves hookrelay's central promise, that no committed
// event is lost, by driving the real binary as separate processes (relays,
// workers, the API) against real Postgres, a private Redis and a recording
// receiver. It holds only tests.
//
// TestFaults_NoCommittedEventIsLost kills processes and flushes Redis under
// a misbehaving receiver; the SIGTERM test stops everything gracefully. The
// fault tests of issue 9 each inject one fault mid-load, with the stale
// sweep out of reach (HOOKRELAY_RECONCILE_AFTER=1h), and demand delivery
// within a stated bound from the fault's end: Redis losing its data four
// ways, Redis down for a minute (with CPU, log volume, emission and /healthz
// checked meanwhile), a reconciler without @dangerous commands, and a
// private Postgres (testpg) restarted, crashed and stopped for 45 s.
//
// HOOKRELAY_FAULT_EVENTS scales the first test (default 2000 events; 100000
// for a soak).
package faulttest
