// Package deliver is the stream consumer that delivers webhooks: it reads
// delivery ids from the Redis stream's consumer group, loads the deliveries
// from Postgres, POSTs the signed envelope, records every attempt in the same
// transaction as the delivery's new state and, when an attempt fails,
// schedules the retry as a River job that puts the delivery back on the
// stream when it is due. Stream entries are acknowledged only after Postgres
// holds the outcome.
package deliver
