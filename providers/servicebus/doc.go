// Package servicebus is herald's Azure Service Bus provider, on azservicebus
// (v1.11). Importing it registers the URL scheme
//
//	azuresb://NAMESPACE         NAMESPACE.servicebus.windows.net (or a full host name)
//	azuresb://127.0.0.1:PORT    an emulator on this machine
//
// with the optional parameters maxmessagebytes (default 262144, 256 KiB,
// the Standard tier; raise it for Premium) and admin, the loopback
// http://127.0.0.1:PORT where `herald emulate servicebus` serves its
// administration (AdminHandler), so that Provision works against an
// emulator in another process. New builds a provider from Options for what
// a URL does not carry (a credential, an Admin).
//
// # Credentials
//
// A connection string comes from Options.ConnectionString or the variable
// HERALD_SERVICEBUS_CONNECTION_STRING, never from the URL. Without one, a
// loopback namespace gets the emulators' well-known placeholder key, and
// any other namespace uses azidentity's DefaultAzureCredential chain.
// UseDevelopmentEmulator=true (plain TCP, no TLS) is refused unless the
// endpoint is a loopback host. Errors about a connection string name the
// missing or wrong key, never a value.
//
// # Resources
//
// Logical names map to Service Bus as follows (Provision creates them):
//
//	topic T                topic T
//	consumer C of T        subscription C of T, rule "herald-target":
//	                       [herald-target] IS NULL OR [herald-target] = 'C'
//	dead letters of C      T/Subscriptions/C/$DeadLetterQueue
//
// Subscriptions get the lock duration of Topology.Lease (default 30 s;
// 5 s to 5 min on Azure) and MaxDeliveryCount MaxAttempts + 5 (at least
// 10), so herald dead-letters first with its reason and Service Bus's own
// dead-lettering is only the backstop for messages herald never settles.
// Subscription names are at most 50 characters.
//
// On Azure, Provision uses the administration client (it needs the
// Manage right). On herald's in-process emulator it uses the emulator's
// Go API (localstack.ServiceBus.Options supplies it). On an emulator
// reached only by URL (Microsoft's, or `herald emulate servicebus` in
// another process) entities come from the emulator's Config.json: write
// it with WriteConfig; Provision then only checks that they exist.
//
// # Publishing
//
// Topic.SendBatch packs messages into AMQP batches (MessageBatch) of at
// most the size limit and sends one batch after another. A message over
// the limit fails alone with ErrTooLarge naming the topic and the limit;
// a failed batch fails its messages only, reported in a
// *providers.BatchError. herald's ID goes into MessageID (when it fits
// Service Bus's 128 characters; the envelope always carries it), the
// attributes into application properties (the envelope travels in
// CloudEvents binary mode), and the ordering key into SessionID.
//
// # Consuming: how herald's leases map onto Service Bus
//
// Subscriptions are received in peek-lock mode:
//
//   - ReceiveBatch is ReceiveMessages for the consumer's free slots; it
//     waits at most 5 s for a first message and then returns none.
//   - The lease is the message lock; its length is the subscription's
//     lock duration (SubscriptionOptions.Lease cannot change it).
//   - Extend is RenewMessageLock.
//   - Ack is CompleteMessage.
//   - Nack with no delay is AbandonMessage. Service Bus cannot delay an
//     abandoned message, so Nack with a delay schedules a copy on the
//     topic for now+delay, carrying herald-target=C (only C's
//     subscription takes it) and herald-attempts (the attempts so far),
//     then completes the original; if completing fails, the copy is
//     cancelled. Subscriptions not provisioned by herald lack the
//     herald-target rule: there the copy reaches every subscription.
//   - Attempt is DeliveryCount plus the attempts a delayed copy carries.
//   - DeadLetter is DeadLetterMessage with herald's reason as
//     DeadLetterReason, the error as DeadLetterErrorDescription, and
//     herald's dead-letter attributes added to the application properties
//     (PropertiesToModify), so package dlq reads them as on every cloud.
//   - A settlement whose lock was lost, or a second settlement of one
//     delivery, returns ErrLeaseLost: it never counts as success.
//
// # Ordering
//
// Messages carry their ordering key in SessionID. For Topology.Ordered,
// Provision creates the subscriptions with RequiresSession (on Azure, on
// herald's emulator and in WriteConfig's Config.json), so that Service Bus
// gives each key (session) to one receiver at a time, across every
// consumer process of the subscription.
//
// How the provider knows: OpenSubscription attaches a plain receiver,
// and a subscription that requires sessions refuses it with
// amqp:not-allowed; the subscription is then read through sessions. This
// needs no administration right and also covers subscriptions made by
// hand or by an older Provision (an existing subscription keeps its
// RequiresSession setting: delete it to change it).
//
// Reading through sessions:
//
//   - ReceiveBatch polls each session it holds (50 ms each) and, while it
//     holds fewer than min(MaxInFlight, 4), accepts the next available
//     session (AcceptNextSessionForSubscription), waiting up to 250 ms,
//     or up to the whole 5 s when it holds none.
//   - A session with nothing in flight that received nothing for 500 ms
//     (at once when all its slots are taken) is closed, so that another
//     key or consumer process gets a turn; a session whose receive fails
//     is closed too.
//   - Session locks are renewed (RenewSessionLock) once less than half of
//     their length is left, checked every 100 ms; Extend renews the
//     session lock at once. A session's messages are locked by the
//     session lock, so LeaseUntil is the session's lock expiry.
//   - Ack, Nack and DeadLetter go through the session receiver that
//     delivered the message.
//
// The provider adds no ordering of its own: herald's consumer handles one
// message per key at a time and retries an ordered message in place.
// On an ordered topology every message needs an ordering key: Service
// Bus dead-letters a message without SessionID in a session-enabled
// subscription (reason SessionIdIsMissing on herald's emulator).
//
// # Dead letters and redrive
//
// OpenDeadLetters reads the subscription's $DeadLetterQueue. A letter
// that Service Bus dead-lettered itself (MaxDeliveryCountExceeded,
// TTLExpiredException) gets herald's attributes from its
// DeadLetterReason and DeadLetterErrorDescription. Redrive sends to the
// topic with herald-target=C, so only the failed consumer gets the
// message again, with its attempts starting again at 1. Count asks the
// Admin, or else counts by peeking (up to 100,000).
package servicebus
