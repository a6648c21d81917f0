// Package servicebus is herald's in-process Azure Service Bus emulator: an
// AMQP 1.0 server that the official Go SDK (azservicebus v1.11) talks to
// over a real loopback socket, with no Docker, SQL container or account.
//
//	em, _ := servicebus.New(servicebus.Config{})
//	_ = em.CreateQueue("orders", servicebus.EntityProperties{})
//	_ = em.Listen("127.0.0.1:0")
//	defer em.Close()
//	client, _ := azservicebus.NewClientFromConnectionString(em.ConnectionString(), nil)
//
// Entities come from the Go API (CreateQueue, CreateTopic,
// CreateSubscription) or from the Config.json that Microsoft's emulator
// reads (LoadConfig, ParseConfig).
//
// What is emulated: SASL ANONYMOUS and PLAIN (any credentials), CBS
// put-token (any token; 404 for an unknown entity); queues, topics with
// fan-out to subscriptions filtered by rules (TrueFilter, correlation
// filters, a SQL filter subset); peek-lock (lock tokens as delivery tag
// and x-opt-lock-token, lock duration, renew-lock, lock expiry) and
// receive-and-delete; complete, abandon (properties merged), dead-letter
// (reason and description), defer and receive-by-sequence-number;
// delivery counts (abandon and lock expiry count, a release does not) and
// MaxDeliveryCount; dead-letter queues; time to live
// (dropped, or dead-lettered with DeadLetteringOnMessageExpiration);
// scheduled messages and cancellation; peek; batches (message format
// 0x80013700); messages up to 1 MiB (Config.MaxMessageSize) split over
// 64 KiB frames.
//
// Sessions, on queues and subscriptions with RequiresSession: a session
// receiver (AcceptSessionFor*, AcceptNextSessionFor*) attaches with the
// com.microsoft:session-filter source filter and locks one session, a
// named one or the session of the oldest ready message that nobody holds;
// the reply echoes the session id and sends com.microsoft:locked-until-utc.
// It then receives only that session's messages (group-id), in sequence
// order. A locked session refuses a second receiver
// (com.microsoft:session-cannot-be-locked); a next-available receiver
// waits up to the client's com.microsoft:timeout (60 s when absent), then
// is refused with com.microsoft:timeout, which the SDK reports as
// CodeTimeout. The session lock lasts LockDuration, is renewed by
// com.microsoft:renew-session-lock (which also extends its messages'
// locks), and ends when the link detaches (its locked messages become
// ready again, not counted as a delivery) or expires (the link is
// detached with com.microsoft:session-lock-lost and its locked messages
// count a delivery, as on lock expiry). get-session-state and
// set-session-state keep a state per session while it is locked. Plain
// receivers are refused on such entities and session receivers on others
// (amqp:not-allowed); a queue rejects a message without a session id and
// a subscription dead-letters its copy (reason SessionIdIsMissing).
//
// What is not: TLS (clients connect with UseDevelopmentEmulator=true),
// authorization (every token is accepted), get-message-sessions, the
// ATOM/HTTPS administration API, duplicate detection, auto-forwarding,
// rule actions, transactions, and persistence: messages live in memory
// until Close and the process ends.
package servicebus
