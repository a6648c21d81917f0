package servicebus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/seed06bc8277/herald/providers"
)

const (
	// peekPage is how many letters one peek reads when counting.
	peekPage = 250
	// maxPeekCount caps a count by peeking: Count reports at most this.
	maxPeekCount = 100_000
)

// deadLetters is one subscription's $DeadLetterQueue.
type deadLetters struct {
	p        *Provider
	topic    string
	consumer string
	path     string
	recv     *azservicebus.Receiver

	mu     sync.Mutex // guards sender
	sender *azservicebus.Sender
}

// OpenDeadLetters opens the consumer's dead-letter queue: the
// subscription's $DeadLetterQueue. It fails with ErrNotFound naming the
// subscription when it does not exist.
func (p *Provider) OpenDeadLetters(ctx context.Context, topic,
	consumer string) (providers.DeadLetterQueue, error) {
	path := subscriptionPath(topic, consumer) + "/$DeadLetterQueue"
	if p.isClosed() {
		return nil, fmt.Errorf("%w: servicebus: open %s", providers.ErrClosed, path)
	}
	r, err := p.openReceiver(ctx, topic, consumer, azservicebus.SubQueueDeadLetter)
	if err != nil {
		return nil, err
	}
	return &deadLetters{p: p, topic: topic, consumer: consumer, path: path, recv: r}, nil
}

// ReceiveBatch locks up to n letters. A letter that Service Bus
// dead-lettered itself (MaxDeliveryCountExceeded, TTLExpiredException)
// lacks herald's attributes; it gets them from DeadLetterReason and
// DeadLetterErrorDescription, so that every letter says why it is one.
func (q *deadLetters) ReceiveBatch(ctx context.Context, n int) ([]*providers.Delivery, error) {
	ds, err := receive(ctx, q.recv, q.path, n)
	for _, d := range ds {
		if _, ok := providers.ParseDeadLetter(d.Attributes); ok {
			continue
		}
		m := d.Handle.(*handle).msg
		dl := providers.DeadLetter{Attempts: int(m.DeliveryCount), Consumer: q.consumer}
		if m.DeadLetterReason != nil {
			dl.Reason = *m.DeadLetterReason
		}
		if m.DeadLetterErrorDescription != nil {
			dl.Error = *m.DeadLetterErrorDescription
		}
		if m.EnqueuedTime != nil {
			dl.Time = *m.EnqueuedTime
		}
		d.Attributes = providers.WithDeadLetter(d.Attributes, dl, 0)
	}
	return ds, err
}

// Ack completes the letter: it is gone for good.
func (q *deadLetters) Ack(ctx context.Context, d *providers.Delivery) error {
	h, err := take(d, "ack", q.path)
	if err != nil {
		return err
	}
	return settleErr("ack", q.path, d, q.recv.CompleteMessage(ctx, h.msg, nil))
}

// Release abandons the letter: it stays in the queue, unchanged.
func (q *deadLetters) Release(ctx context.Context, d *providers.Delivery) error {
	h, err := take(d, "release", q.path)
	if err != nil {
		return err
	}
	return settleErr("release", q.path, d, q.recv.AbandonMessage(ctx, h.msg, nil))
}

// Redrive sends the messages to the topic with herald-target set to the
// consumer, so that only its subscription gets them, as new messages
// (attempts start again at 1).
func (q *deadLetters) Redrive(ctx context.Context, msgs []*providers.Message) error {
	q.mu.Lock()
	if q.sender == nil {
		s, err := q.p.openSender(ctx, q.topic)
		if err != nil {
			q.mu.Unlock()
			return err
		}
		q.sender = s
	}
	sender := q.sender
	q.mu.Unlock()
	clean := make([]*providers.Message, len(msgs))
	for i, m := range msgs {
		c := *m
		if _, has := m.Attributes[AttrAttempts]; has {
			c.Attributes = make(map[string]string, len(m.Attributes))
			for k, v := range m.Attributes {
				if k != AttrAttempts {
					c.Attributes[k] = v
				}
			}
		}
		clean[i] = &c
	}
	return sendBatch(ctx, q.p, sender, q.topic, clean,
		map[string]any{providers.AttrTarget: q.consumer})
}

// Count asks the Admin, or else counts by peeking (at most 100,000).
func (q *deadLetters) Count(ctx context.Context) (int, error) {
	n, err := q.p.admin.DeadLetterCount(ctx, q.topic, q.consumer)
	if !errors.Is(err, errors.ErrUnsupported) {
		return n, err
	}
	var from int64
	n = 0
	for n < maxPeekCount {
		msgs, err := q.recv.PeekMessages(ctx, peekPage,
			&azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
		if err != nil {
			return n, wrap("count", q.path, err)
		}
		if len(msgs) == 0 {
			break
		}
		n += len(msgs)
		last := msgs[len(msgs)-1].SequenceNumber
		if last == nil {
			break
		}
		from = *last + 1
	}
	return n, nil
}

// Close closes the queue's receiver and sender.
func (q *deadLetters) Close() error {
	q.mu.Lock()
	if q.sender != nil {
		closeSender(q.sender)
		q.sender = nil
	}
	q.mu.Unlock()
	closeReceiver(q.recv)
	return nil
}
