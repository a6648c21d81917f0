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
// What is not: TLS (clients connect with UseDevelopmentEmulator=true),
// authorization (every token is accepted), sessions (RequiresSession is
// recorded, session receivers are refused with amqp:not-allowed), the
// ATOM/HTTPS administration API, duplicate detection, auto-forwarding,
// rule actions, transactions, and persistence: messages live in memory
// until Close and the process ends.
package servicebus
