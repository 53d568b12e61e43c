// Package flow owns per-endpoint flow control shared by every worker
// process through Redis: a rate limit that hands out reservations (GCRA),
// an endpoint's pause after a 429 or 503 with Retry-After, and a cap on
// concurrent requests (an in-flight semaphore with leases). It decides when
// a request to an endpoint may start; what is pending stays in Postgres, and
// sending, deferring and recording are the caller's.
//
// Every decision is one Lua script (EVALSHA) on Redis's clock, so callers in
// any number of processes see one consistent state and never compare their
// own clocks. Keys, for a prefix p (the worker's stream key) and a webhook id:
//
//	p:flow:{<id>}:rate      hash: tat, pause (µs)       expires when both are past
//	p:flow:{<id>}:inflight  sorted set: holder → lease end (µs)  expires with its last lease
//	p:flow:{<id>}:holds     hash: lease, hold (µs)       expires an hour after last use
//
// The id is the hash tag, so an endpoint's keys share one Redis Cluster slot.
//
// # When Redis fails
//
// Every method returns Redis's error, wrapped. The worker should fail open:
// send the delivery unlimited. A worker that cannot reach Redis cannot read
// its stream either, so what it sends unlimited is at most the batch it holds
// when Redis goes away — and an endpoint that cannot bear that answers 429 or
// 503, which the worker honours through Postgres. Failing closed would instead
// turn a Redis blip into a deferral (a Postgres write) of every delivery in
// hand. Errors for which IsInvalid holds are the caller's bugs, not outages.
package flow
