package memory

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// topic is a provisioned topic. Its consumer list is copied on write, so
// that a send reads it without a lock.
type topic struct {
	name      string
	consumers atomic.Pointer[[]*consumer]
}

// consumer is a provisioned consumer of a topic: its queue, its dead-letter
// queue and its default lease.
type consumer struct {
	name  string
	lease time.Duration
	q     *queue
	dlq   *queue
}

// Provision creates the topic and those of its consumers that do not exist
// yet; it changes nothing that exists, so running it again is harmless and
// adding a consumer to a topology works. A consumer created by it receives
// the messages sent from then on. t.Lease (0: 30 s) becomes the consumers'
// default lease. Ordering keys are honoured whether or not t.Ordered is
// set. mem:// has no delivery-count backstop: t.MaxAttempts is not used,
// herald's consumer loop dead-letters.
func (p *Provider) Provision(ctx context.Context, t providers.Topology) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.Topic == "" {
		return fmt.Errorf("%w: memory: provision: empty topic name", providers.ErrInvalid)
	}
	for _, c := range t.Consumers {
		if c == "" {
			return fmt.Errorf("%w: memory: provision topic %q: empty consumer name",
				providers.ErrInvalid, t.Topic)
		}
	}
	if t.Lease < 0 {
		return fmt.Errorf("%w: memory: provision topic %q: negative lease %v",
			providers.ErrInvalid, t.Topic, t.Lease)
	}
	if p.closed.Load() {
		return errClosed("provision", "topic "+t.Topic)
	}

	in := p.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return errClosed("provision", "topic "+t.Topic)
	}
	tp := in.topics[t.Topic]
	if tp == nil {
		tp = &topic{name: t.Topic}
		tp.consumers.Store(new([]*consumer))
		in.topics[t.Topic] = tp
	}

	// Copy the consumer list with the new consumers appended.
	old := *tp.consumers.Load()
	list := slices.Clone(old)
	for _, name := range t.Consumers {
		if slices.ContainsFunc(list, func(c *consumer) bool { return c.name == name }) {
			continue
		}
		res := t.Topic + "/" + name
		list = append(list, &consumer{
			name:  name,
			lease: t.Lease,
			q:     newQueue(res, true),
			dlq:   newQueue(res+" (dead letters)", false),
		})
	}
	if len(list) != len(old) {
		tp.consumers.Store(&list)
	}
	return nil
}

// topic returns the named topic, or an error naming op.
func (p *Provider) topic(op, name string) (*topic, error) {
	if p.closed.Load() {
		return nil, errClosed(op, fmt.Sprintf("topic %q", name))
	}
	p.in.mu.Lock()
	tp, closed := p.in.topics[name], p.in.closed
	p.in.mu.Unlock()
	if closed {
		return nil, errClosed(op, fmt.Sprintf("topic %q", name))
	}
	if tp == nil {
		return nil, fmt.Errorf("memory: %s: topic %q not found: %w", op, name,
			providers.ErrNotFound)
	}
	return tp, nil
}

// consumer returns the named consumer of the named topic, or an error
// naming op.
func (p *Provider) consumer(op, topic, name string) (*consumer, error) {
	tp, err := p.topic(op, topic)
	if err != nil {
		return nil, err
	}
	for _, c := range *tp.consumers.Load() {
		if c.name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("memory: %s: consumer %q of topic %q not found: %w", op, name,
		topic, providers.ErrNotFound)
}

// OpenTopic returns a sender for the topic. It returns an error wrapping
// providers.ErrNotFound when the topic was not provisioned.
func (p *Provider) OpenTopic(ctx context.Context, topic string) (providers.Topic, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tp, err := p.topic("open topic", topic)
	if err != nil {
		return nil, err
	}
	return &sender{p: p, t: tp, res: fmt.Sprintf("topic %q", topic)}, nil
}

// OpenSubscription returns a receiver for the consumer's queue; several
// may be open on one consumer and compete for its messages. Deliveries
// are leased for opts.Lease, else the topology's lease, else 30 s. It
// returns an error wrapping providers.ErrNotFound when the topic or
// consumer was not provisioned.
func (p *Provider) OpenSubscription(ctx context.Context, topic, consumer string,
	opts providers.SubscriptionOptions) (providers.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Lease < 0 {
		return nil, fmt.Errorf("%w: memory: open subscription %s/%s: negative lease %v",
			providers.ErrInvalid, topic, consumer, opts.Lease)
	}
	c, err := p.consumer("open subscription", topic, consumer)
	if err != nil {
		return nil, err
	}
	lease := opts.Lease
	if lease == 0 {
		lease = c.lease
	}
	if lease == 0 {
		lease = DefaultLease
	}
	return &subscription{p: p, q: c.q, dlq: c.dlq, consumer: c.name,
		lease: int64(lease), done: make(chan struct{})}, nil
}

// OpenDeadLetters opens the consumer's dead-letter queue. It returns an
// error wrapping providers.ErrNotFound when the topic or consumer was not
// provisioned.
func (p *Provider) OpenDeadLetters(ctx context.Context, topic, consumer string) (
	providers.DeadLetterQueue, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := p.consumer("open dead letters", topic, consumer)
	if err != nil {
		return nil, err
	}
	return &deadLetters{p: p, c: c, done: make(chan struct{})}, nil
}
