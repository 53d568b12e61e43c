// Package testkit groups the helpers that hookrelay's tests share, one
// package each: testdb (a migrated database per test), testpg (a private
// Postgres cluster to restart or crash), testredis (private keys on the
// shared Redis, or a private server), testwait (waiting on a condition with a
// deadline), testreceiver (a loopback webhook receiver) and testbin (the
// hookrelay binary built once). Nothing outside tests imports them.
package testkit
