// Package flow owns per-endpoint flow control shared by every worker
// process through Redis: a rate limit that hands out reservations (GCRA),
// an endpoint's pause after a 429 or 503 with Retry-After, and a cap on
// concurrent requests (an in-flight semaphore with leases). It decides when
// a request to an endpoint may start; what is pending stays in Postgres, and
// sending, deferring and recording are the caller's.
//
// Every decision is one Lua script (EVALSHA) on Redis's clock, so callers in
// any number of processes see one consistent state and no caller's clock
// enters a decision. Keys, for a prefix p (the worker's stream key) and a webhook id:
//
//	key                     holds                          expires
//	p:flow:{<id>}:rate      hash: tat, pause (µs)          when both are past
//	p:flow:{<id>}:inflight  zset: holder → lease end (µs)  when its last lease ends
//	p:flow:{<id>}:holds     hash: lease, hold (µs)         an hour after its last use
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
//
// # Cost
//
// Each method is one EVALSHA round trip. Measured 2026-12 with bench_test.go
// against the local Redis 7.0 on this project's machine (2 cores, other
// tenants keeping the load at 4–9, so wall times are min / median of 8–14
// runs; the heaviest load doubled the Acquire pair) and, steadier, Redis's
// own time per script from INFO commandstats:
//
//	call                        wall ns/op (min / median)  in Redis
//	PING (the round trip)        34,000 /  45,000            0.1 µs
//	Reserve                      49,000 /  70,000            7.8 µs
//	Acquire + Release (a pair)  128,000 / 145,000           27   µs (13.5 each)
//	Acquire refused (full)       52,000 /  60,000            8.9 µs
//
// So a rate-limited delivery costs one round trip more than an unlimited one,
// a concurrency-limited one two; in Redis's CPU, one core serves some
// 120,000 Reserves or 35,000 Acquire/Release pairs a second.
package flow
