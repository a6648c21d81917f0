// Package gcppubsub is herald's Google Cloud Pub/Sub provider, on
// cloud.google.com/go/pubsub/v2. Importing it registers the URL scheme
//
//	gcppubsub://PROJECT                      Pub/Sub, Application Default Credentials
//	gcppubsub://PROJECT?endpoint=HOST:PORT   an emulator: no TLS, no credentials
//
// and PUBSUB_EMULATOR_HOST, when set, is honoured like the endpoint
// parameter. New builds a provider from Options for settings a URL does
// not carry (batching, retry policy, client options).
//
// # Resources
//
// Logical names map to Pub/Sub as follows (Provision creates them):
//
//	topic T                topic T
//	consumer C of T        subscription T-C, filtered on herald-target
//	dead letters of C      topic T-C-dlq and its subscription T-C-dlq
//
// Pub/Sub IDs are 3 to 255 characters and start with a letter, so herald
// names shorter than that, or starting with a digit, are refused with
// ErrInvalid.
//
// # Publishing
//
// Topic.SendBatch hands its messages to the client library's Publisher,
// which gathers them and the messages of concurrent SendBatch calls into
// Publish calls of at most Options.PublishCount messages (default 100) or
// Options.PublishBytes bytes (default 1,000,000), waiting at most
// Options.PublishDelay (default 1 ms) for more. Ordering keys are accepted
// on topics provisioned with Topology.Ordered (labelled
// herald-ordering=enabled), whose Publisher has message ordering enabled;
// a failed ordered publish pauses the key in the client, and SendBatch
// resumes it before returning, so that the caller can send the failed
// messages again. Messages are checked against Pub/Sub's limits first: at
// most 100 attributes, names up to 256 bytes not starting with "goog",
// values up to 1024 bytes (ErrInvalid), 10,000,000 bytes in all
// (ErrTooLarge).
//
// # Consuming: how herald's leases map onto Pub/Sub
//
// The Subscription does not use the client library's streaming-pull
// receiver, which manages leases on its own (extending them in the
// background, nacking on its own schedule, prefetching by its flow
// control). It uses the generated client's unary calls instead, so that
// herald's consumer loop owns every lease exactly and behaves as on the
// other providers:
//
//   - ReceiveBatch is one Pull for at most max messages (the consumer's
//     free slots). Nothing is prefetched: the consumer's concurrency
//     bounds both what is leased and the memory held, which is the flow
//     control.
//   - A delivery's lease is the subscription's ack deadline, or the
//     consumer's SubscriptionOptions.Lease set with one
//     ModifyAckDeadline call for the whole batch when they differ.
//     Leases are whole seconds (rounded up), at most 600 s.
//   - Extend is ModifyAckDeadline(lease).
//   - Nack(delay) is ModifyAckDeadline(delay): Pub/Sub redelivers the
//     message when that deadline passes (0: at once). On Pub/Sub itself
//     the subscription's retry policy (Options.RetryMinBackoff, 1 s by
//     default) is added to the delay.
//   - Ack is Acknowledge; concurrent acks share calls (up to 1000 ack IDs
//     each, at most 4 calls in flight per subscription).
//   - DeadLetter publishes to T-C-dlq with the reason's attributes, then
//     acks the original.
//   - Attempt is Pub/Sub's DeliveryAttempt, which Pub/Sub reports only on
//     subscriptions with a dead-letter policy (Provision always sets
//     one). On a subscription without one, the Subscription counts
//     deliveries of each message itself, in this process only (see
//     attemptCounter): a message redelivered to another process starts
//     again at 1 there.
//   - A settlement after the lease herald holds ended (by the local
//     clock, measured from before the call that took the lease) returns
//     ErrLeaseLost without calling Pub/Sub. Pub/Sub itself accepts late
//     ack IDs silently, except on exactly-once subscriptions, whose
//     "invalid ack ID" errors also become ErrLeaseLost.
//
// Unary Pull also avoids pstest's streaming delivery, which hands out one
// message per stream every 10 ms.
//
// # Dead letters and redrive
//
// herald dead-letters with the reason before Pub/Sub's dead-letter policy
// (MaxAttempts + 5 delivery attempts, 5 to 100) would; the policy is the
// backstop for messages herald never settles (a handler that crashes the
// process), whose letters then lack the reason. Redrive publishes to T
// with herald-target=C; every herald subscription's filter is
// `NOT attributes:herald-target OR attributes.herald-target = "C"`, so
// only the failed consumer gets the message again.
//
// # pstest
//
// The in-process fake (package pstest, which localstack serves) differs
// from Pub/Sub in ways that matter here: it counts delivery attempts
// across all subscriptions of a topic (localstack corrects the attempts it
// reports, but its dead-letter backstop still counts them all); it ignores
// retry policies; it accepts late ack IDs silently; an empty Pull waits
// 500 ms (localstack answers as soon as a message arrives); with message
// ordering it delivers one message per ordering key at a time; and every
// subscription walks all its unacked messages (evaluating its filter on
// each) every 10 ms and on every Pull, under one server-wide lock, so a
// large backlog anywhere on the server slows everything. It does
// evaluate subscription filters, including herald's.
package gcppubsub
