package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// Subscription receives the deliveries of one consumer, the Pub/Sub
// subscription T-C. It implements providers.Subscription; see the package
// documentation for how herald's lease model maps onto Pub/Sub.
type Subscription struct {
	*receiver
	topic, consumer string

	dlqMu sync.Mutex
	dlq   *Topic // the consumer's dead-letter topic, opened on first use
}

// OpenSubscription returns a receiver for the consumer's subscription
// T-C. It returns an error wrapping ErrNotFound, naming the resource,
// when the subscription or its topic does not exist. opts.Lease (whole
// seconds, rounded up, 1 to 600 s) is the lease every delivery starts
// with; when it differs from the subscription's ack deadline, each
// received batch costs one more ModifyAckDeadline call.
func (p *Provider) OpenSubscription(ctx context.Context, topic, consumer string,
	opts providers.SubscriptionOptions,
) (providers.Subscription, error) {
	if err := p.checkOpen("open subscription " + topic + "-" + consumer); err != nil {
		return nil, err
	}
	subID := subscriptionID(topic, consumer)
	if err := checkID("subscription", subID); err != nil {
		return nil, err
	}
	r, s, err := p.newReceiver(ctx, subID, opts.Lease)
	if err != nil {
		return nil, err
	}
	if want := p.topicPath(topic); s.GetTopic() != want {
		if s.GetTopic() == "_deleted-topic_" {
			return nil, fmt.Errorf("%w: gcppubsub: open subscription %s: its topic %s was deleted",
				providers.ErrNotFound, r.path, want)
		}
		return nil, fmt.Errorf("%w: gcppubsub: open subscription %s: it belongs to topic %s, not %s",
			providers.ErrInvalid, r.path, s.GetTopic(), want)
	}
	return &Subscription{receiver: r, topic: topic, consumer: consumer}, nil
}

// ReceiveBatch leases up to max (at most 1000) messages with one Pull
// call. It waits as Pull does (the emulator and Pub/Sub hold an empty Pull
// briefly) and returns ctx.Err() once ctx is done.
func (s *Subscription) ReceiveBatch(ctx context.Context, max int) ([]*providers.Delivery, error) {
	return s.receive(ctx, max)
}

// Ack acknowledges the delivery; concurrent acks share Acknowledge calls.
// It returns an error wrapping ErrLeaseLost, without acking, when the
// lease herald holds has ended.
func (s *Subscription) Ack(ctx context.Context, d *providers.Delivery) error {
	return s.ack(ctx, d)
}

// Nack gives the delivery back: Pub/Sub redelivers it after delay (whole
// seconds, rounded up, at most 600 s; 0 at once), plus the subscription's
// retry-policy backoff on Pub/Sub itself, as the next attempt.
func (s *Subscription) Nack(ctx context.Context, d *providers.Delivery,
	delay time.Duration,
) error {
	return s.nack(ctx, d, delay)
}

// Extend sets the delivery's ack deadline to lease from now (whole
// seconds, rounded up, at most 600 s) and updates d.LeaseUntil.
func (s *Subscription) Extend(ctx context.Context, d *providers.Delivery,
	lease time.Duration,
) error {
	return s.extend(ctx, d, lease)
}

// DeadLetter publishes the message to the consumer's dead-letter topic
// T-C-dlq, with its body, its attributes and the reason's attributes
// (packed into one attribute when 100 would be exceeded), and then acks
// the original. The ordering key is not kept (the dead-letter topic is
// not ordered); herald's envelope still carries it. If the ack fails
// after the letter was published, the letter may exist twice.
func (s *Subscription) DeadLetter(ctx context.Context, d *providers.Delivery,
	reason providers.DeadLetter,
) error {
	if _, err := s.handle("dead-letter on", d); err != nil {
		return err
	}
	dlq, err := s.deadLetterTopic(ctx)
	if err != nil {
		return err
	}
	letter := &providers.Message{
		ID:         d.ID,
		Body:       d.Body,
		Attributes: fitAttributes(providers.WithDeadLetter(d.Attributes, reason, MaxAttributes), reason),
	}
	if err := dlq.SendBatch(ctx, []*providers.Message{letter}); err != nil {
		var be *providers.BatchError
		if errors.As(err, &be) && be.Failed[0] != nil {
			err = be.Failed[0]
		}
		return fmt.Errorf("gcppubsub: dead-letter message %s of %s: %w", d.ProviderID, s.path, err)
	}
	return s.ack(ctx, d)
}

func (s *Subscription) deadLetterTopic(ctx context.Context) (*Topic, error) {
	s.dlqMu.Lock()
	defer s.dlqMu.Unlock()
	if s.dlq != nil {
		return s.dlq, nil
	}
	t, err := s.p.openTopic(ctx, deadLetterID(s.topic, s.consumer))
	if err != nil {
		return nil, fmt.Errorf("gcppubsub: dead-letter topic of consumer %q: %w", s.consumer, err)
	}
	s.dlq = t
	return t, nil
}

// Close stops receiving and waits for acks already queued. Deliveries
// still leased come back after their ack deadline.
func (s *Subscription) Close() error {
	s.close()
	s.dlqMu.Lock()
	defer s.dlqMu.Unlock()
	if s.dlq != nil {
		return s.dlq.Close()
	}
	return nil
}

// fitAttributes cuts dead-letter attribute values to Pub/Sub's 1024-byte
// limit: the error text (1 KiB plus an ellipsis, or inside the packed JSON
// form) can exceed it.
func fitAttributes(attrs map[string]string, dl providers.DeadLetter) map[string]string {
	if v, ok := attrs[providers.AttrDeadLetterError]; ok && len(v) > MaxAttributeValueBytes {
		attrs[providers.AttrDeadLetterError] = cutUTF8(v, MaxAttributeValueBytes-len("…")) + "…"
	}
	if v, ok := attrs[providers.AttrDeadLetterPacked]; ok {
		for len(v) > MaxAttributeValueBytes && dl.Error != "" {
			dl.Error = cutUTF8(dl.Error, max(0, len(dl.Error)-(len(v)-MaxAttributeValueBytes)-8))
			_, v = dl.Packed()
		}
		attrs[providers.AttrDeadLetterPacked] = v
	}
	return attrs
}

// cutUTF8 cuts s to at most n bytes on a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
