package herald

import (
	"time"
)

// Message is herald's envelope: one fact that happened, published once and
// delivered to every consumer of its topic. It maps onto CloudEvents 1.0
// (ID is "id", Type "type", Source "source", Time "time", Subject
// "subject", ContentType "datacontenttype", Data the event data).
type Message struct {
	// ID identifies the message and is its idempotency key: a consumer
	// handles each ID once. Set it to something stable (an order number
	// and event name) so that a re-published fact is recognised; when
	// empty, Publish sets a UUIDv7.
	ID string
	// Type says what happened, such as "OrderPlaced". Required.
	Type string
	// Source names the producer, such as "/checkout". Defaults to the
	// Publisher's Source option, else "herald".
	Source string
	// Time is when it happened; Publish sets the current time when zero.
	Time time.Time
	// Subject is an optional subject within the source, such as an order ID.
	Subject string
	// ContentType is the media type of Data, such as "application/json".
	ContentType string
	// Data is the payload. Any bytes, including none.
	Data []byte
	// Attributes are extra string attributes. Names are 1 to 100 bytes of
	// letters, digits, '-', '_' and '.', and must not start with "ce-",
	// "herald-", "aws.", "amazon", "goog" or "x-opt-" (herald's and the
	// clouds' own).
	Attributes map[string]string
	// OrderingKey makes messages with the same key be handled one at a
	// time, in publish order, by each consumer. Empty means no order.
	OrderingKey string

	// Attempt is set on receipt: which delivery this is, from 1, counted
	// by the provider.
	Attempt int
	// ProviderID is set on receipt: the cloud's own message ID.
	ProviderID string
	// LeaseUntil is set on receipt: when the current lease ends unless the
	// consumer extends it (it does while the handler runs).
	LeaseUntil time.Time
}
