// Package providers defines the small driver interfaces that every herald
// provider implements: AWS SNS->SQS, Google Cloud Pub/Sub, Azure Service Bus
// and the in-process memory provider.
//
// Application code does not use this package: it uses the root herald
// package, whose Publisher and Consumer give every provider the same
// guarantees (validation, envelope encoding, idempotency, retries, dead
// letters). A driver only moves opaque messages: it sends batches to a
// topic, leases deliveries from a consumer's queue or subscription, and
// settles each delivery exactly as the consumer loop tells it to.
//
// Every driver must pass the conformance suite in providers/providertest.
package providers

import (
	"context"
	"time"
)

// Message is a message as a driver sends it: an opaque body with string
// attributes. The root package encodes herald's envelope into it.
type Message struct {
	// ID is herald's message ID. Drivers may use it where the cloud has a
	// slot for it (FIFO deduplication, Service Bus MessageID); the
	// envelope carries it in every case.
	ID string
	// Body is the payload as it travels.
	Body []byte
	// Attributes are the message attributes as they travel.
	Attributes map[string]string
	// OrderingKey groups messages that must be handled in order; empty
	// means no order.
	OrderingKey string
}

// Delivery is one delivery of a message to a consumer. It holds a lease:
// until LeaseUntil no other receiver of the same consumer gets it.
type Delivery struct {
	Message
	// ProviderID is the cloud's own ID for the message (SQS MessageId,
	// Pub/Sub message ID, Service Bus sequence number).
	ProviderID string
	// Attempt counts deliveries of this message to this consumer,
	// starting at 1, from the provider's own delivery counter.
	Attempt int
	// LeaseUntil is when the lease ends if it is not extended.
	LeaseUntil time.Time
	// Handle is the driver's own settlement token (receipt handle, ack ID,
	// lock token). The consumer loop never looks inside it.
	Handle any
}

// Limits are the provider's limits that the root package checks before a
// message is sent, so that a bad message fails alone with a clear error.
type Limits struct {
	// MaxAttributes is how many attributes a message may carry, envelope
	// attributes included; 0 means no limit. Above it the root package
	// sends the envelope in structured mode (a JSON body).
	MaxAttributes int
	// MaxMessageBytes is the largest message: body plus attribute names
	// and values, counted as the provider counts them; 0 means no limit.
	MaxMessageBytes int
	// AttributeOverhead is added per attribute when sizing a message
	// (SNS counts the data type name, for example).
	AttributeOverhead int
	// Structured asks for the envelope in structured mode (one JSON
	// body, no attributes) always: for providers where attributes are
	// scarce and costly, as on SNS and SQS.
	Structured bool
}

// Provider is one connection to a cloud (or to the in-process provider).
// It is safe for concurrent use.
type Provider interface {
	// Limits reports the limits the root package validates against.
	Limits() Limits
	// OpenTopic returns a sender for the named topic. It returns an error
	// wrapping ErrNotFound when the topic does not exist.
	OpenTopic(ctx context.Context, topic string) (Topic, error)
	// OpenSubscription returns a receiver for the named consumer of the
	// topic (its own queue or subscription). It returns an error wrapping
	// ErrNotFound when the topic or the consumer does not exist.
	OpenSubscription(ctx context.Context, topic, consumer string, opts SubscriptionOptions) (Subscription, error)
	// Close releases the provider's connections.
	Close() error
}

// SubscriptionOptions tune a Subscription.
type SubscriptionOptions struct {
	// Lease is how long a delivery is leased for when it is received.
	// Drivers whose cloud fixes it per subscription ignore it.
	Lease time.Duration
	// MaxInFlight is the consumer's concurrency: a driver may use it to
	// size prefetching and parallel receives.
	MaxInFlight int
}

// Topic sends messages to every consumer of one topic.
type Topic interface {
	// SendBatch sends the messages. It returns nil when all were
	// accepted, or an error. When only some failed, the error is a
	// *BatchError that says which; the others were sent.
	SendBatch(ctx context.Context, msgs []*Message) error
	// Close flushes and releases the sender.
	Close() error
}

// Subscription receives the deliveries of one consumer and settles them.
// Every settlement method returns an error wrapping ErrLeaseLost when the
// lease had already ended: such a settlement never counts as success.
type Subscription interface {
	// ReceiveBatch returns up to max leased deliveries. It may wait for
	// messages (long polling) and may return none without an error; it
	// returns ctx.Err() once ctx is done.
	ReceiveBatch(ctx context.Context, max int) ([]*Delivery, error)
	// Ack removes the delivery's message from the consumer's queue.
	Ack(ctx context.Context, d *Delivery) error
	// Nack gives the delivery back; it becomes visible again after delay
	// (at once when delay is 0) and its next delivery counts as a new
	// attempt.
	Nack(ctx context.Context, d *Delivery, delay time.Duration) error
	// Extend extends the delivery's lease to lease from now and updates
	// d.LeaseUntil.
	Extend(ctx context.Context, d *Delivery, lease time.Duration) error
	// DeadLetter moves the delivery's message to the consumer's
	// dead-letter queue with the reason, keeping its ID, attributes and
	// body, and then removes the original.
	DeadLetter(ctx context.Context, d *Delivery, reason DeadLetter) error
	// Close stops receiving. Deliveries still leased come back after
	// their lease.
	Close() error
}

// Topology describes the cloud resources of one topic and its consumers,
// as Provisioner creates them.
type Topology struct {
	// Topic is the logical topic name.
	Topic string
	// Consumers are the logical consumer names.
	Consumers []string
	// Ordered asks for ordering-key support (FIFO topics and queues,
	// Pub/Sub message ordering, Service Bus sessions).
	Ordered bool
	// Lease is the default lease (visibility timeout, ack deadline, lock
	// duration); 0 means the provider's default.
	Lease time.Duration
	// MaxAttempts is herald's attempt limit. The cloud's own backstop
	// (redrive policy, dead-letter policy, MaxDeliveryCount) is set above
	// it, so herald dead-letters first with the reason; 0 means 5.
	MaxAttempts int
}

// Provisioner is implemented by providers that can create their topology.
// Provision is idempotent: running it again changes nothing that exists.
type Provisioner interface {
	Provision(ctx context.Context, t Topology) error
}
