package gcppubsub

import (
	"context"
	"fmt"
	"sync"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/seed06bc8277/herald/providers"
)

// maxCount bounds how many letters Count leases to count them.
const maxCount = 10_000

// DeadLetterQueue reads one consumer's dead letters, the subscription
// T-C-dlq of the topic T-C-dlq. It implements providers.DeadLetterQueue.
type DeadLetterQueue struct {
	*receiver
	topic, consumer string

	mu    sync.Mutex
	owner *Topic // topic T, opened on the first Redrive
}

// OpenDeadLetters opens the dead-letter queue of one consumer. It returns
// an error wrapping ErrNotFound, naming the resource, when the consumer's
// subscription T-C or the dead-letter subscription T-C-dlq does not exist.
func (p *Provider) OpenDeadLetters(ctx context.Context, topic, consumer string,
) (providers.DeadLetterQueue, error) {
	if err := p.checkOpen("open dead letters of " + topic + "-" + consumer); err != nil {
		return nil, err
	}
	id := deadLetterID(topic, consumer)
	if err := checkID("subscription", id); err != nil {
		return nil, err
	}
	path := p.subPath(subscriptionID(topic, consumer))
	if _, err := p.client.SubscriptionAdminClient.GetSubscription(ctx,
		&pb.GetSubscriptionRequest{Subscription: path}); err != nil {
		return nil, wrap("open dead letters of consumer", path+" in "+p.where, err)
	}
	r, _, err := p.newReceiver(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	return &DeadLetterQueue{receiver: r, topic: topic, consumer: consumer}, nil
}

// ReceiveBatch leases up to n dead letters (at most 1000) for the
// dead-letter subscription's ack deadline.
func (q *DeadLetterQueue) ReceiveBatch(ctx context.Context, n int) ([]*providers.Delivery, error) {
	return q.receive(ctx, n)
}

// Ack removes a dead letter for good.
func (q *DeadLetterQueue) Ack(ctx context.Context, d *providers.Delivery) error {
	return q.ack(ctx, d)
}

// Release gives a leased dead letter back at once, unchanged.
func (q *DeadLetterQueue) Release(ctx context.Context, d *providers.Delivery) error {
	return q.nack(ctx, d, 0)
}

// Redrive publishes the messages to topic T with the attribute
// herald-target=C, so that only consumer C's subscription (whose filter
// admits messages without the attribute or naming C) receives them, as
// new Pub/Sub messages whose delivery attempts start at 1. Dead-letter
// attributes are removed first. Ordering keys are kept when topic T is
// ordered. A partial failure is a *providers.BatchError.
func (q *DeadLetterQueue) Redrive(ctx context.Context, msgs []*providers.Message) error {
	if err := q.checkOpen("redrive from"); err != nil {
		return err
	}
	t, err := q.ownerTopic(ctx)
	if err != nil {
		return err
	}
	out := make([]*providers.Message, len(msgs))
	for i, m := range msgs {
		attrs := providers.StripDeadLetter(m.Attributes)
		attrs[providers.AttrTarget] = q.consumer
		out[i] = &providers.Message{ID: m.ID, Body: m.Body, Attributes: attrs}
		if t.ordered {
			out[i].OrderingKey = m.OrderingKey
		}
	}
	return t.SendBatch(ctx, out)
}

func (q *DeadLetterQueue) ownerTopic(ctx context.Context) (*Topic, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.owner == nil {
		t, err := q.p.openTopic(ctx, q.topic)
		if err != nil {
			return nil, fmt.Errorf("gcppubsub: redrive to consumer %q: %w", q.consumer, err)
		}
		q.owner = t
	}
	return q.owner, nil
}

// Count returns about how many letters the queue holds. Pub/Sub has no
// call that counts a backlog (only Cloud Monitoring reports it), so Count
// leases the letters it can get at once, up to 10,000, and gives them back
// at once: letters leased by others are not counted, and a reader may see
// a letter's delivery briefly delayed.
func (q *DeadLetterQueue) Count(ctx context.Context) (int, error) {
	if err := q.checkOpen("count"); err != nil {
		return 0, err
	}
	var ids []string
	var err error
	for len(ids) < maxCount {
		var resp *pb.PullResponse
		resp, err = q.p.client.SubscriptionAdminClient.Pull(ctx, &pb.PullRequest{
			Subscription: q.path,
			MaxMessages:  int32(min(maxPull, maxCount-len(ids))),
			//lint:ignore SA1019 deprecated for receiving, but Count must not wait
			ReturnImmediately: true,
		})
		if err != nil || len(resp.GetReceivedMessages()) == 0 {
			break
		}
		for _, m := range resp.GetReceivedMessages() {
			ids = append(ids, m.GetAckId())
		}
	}
	for i := 0; i < len(ids); i += maxAckIDs {
		if rerr := q.modify(ctx, ids[i:min(i+maxAckIDs, len(ids))], 0); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return len(ids), wrap("count letters of", q.path, err)
	}
	return len(ids), nil
}

// Close stops reading and releases the redrive sender.
func (q *DeadLetterQueue) Close() error {
	q.close()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.owner != nil {
		return q.owner.Close()
	}
	return nil
}
