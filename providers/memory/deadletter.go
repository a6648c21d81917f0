package memory

import (
	"context"
	"sync"

	"github.com/seed06bc8277/herald/providers"
)

// deadLetters is a providers.DeadLetterQueue over one consumer's
// dead-letter queue.
type deadLetters struct {
	p    *Provider
	c    *consumer
	done chan struct{}
	once sync.Once
}

// ReceiveBatch waits until at least one dead letter is ready, then leases
// up to max of them for 30 s, oldest first. It returns ctx.Err() when ctx
// ends first and an error wrapping providers.ErrClosed once the queue or
// provider is closed.
func (dl *deadLetters) ReceiveBatch(ctx context.Context, max int) (
	[]*providers.Delivery, error) {
	return dl.c.dlq.receive(ctx, "receive from", max, int64(DefaultLease), dl.p.done, dl.done)
}

// Ack removes a dead letter for good.
func (dl *deadLetters) Ack(ctx context.Context, d *providers.Delivery) error {
	return dl.c.dlq.ack(ctx, dl.p, d)
}

// Release gives a leased dead letter back at once, first in line; the
// release does not count as a delivery.
func (dl *deadLetters) Release(ctx context.Context, d *providers.Delivery) error {
	q := dl.c.dlq
	return q.settle(ctx, dl.p, "release", d, func(e *entry, t int64) {
		e.attempts--
		q.delivered--
		q.requeueLocked(e, 0, t, true)
	})
}

// Redrive sends each message, without herald's dead-letter and target
// attributes, into the consumer's own queue only (not to the topic's other
// consumers), as a new message whose first delivery is attempt 1. It
// removes nothing from the dead-letter queue. A message over 1 MiB or nil
// fails alone, in a *providers.BatchError.
func (dl *deadLetters) Redrive(ctx context.Context, msgs []*providers.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl.p.closed.Load() {
		return errClosed("redrive to", dl.c.q.name)
	}
	stripped := make([]*providers.Message, len(msgs))
	for i, m := range msgs {
		if m != nil {
			c := *m
			c.Attributes = providers.StripDeadLetter(m.Attributes)
			stripped[i] = &c
		}
	}
	ms, failed := storeMessages(dl.p.in, "redrive to "+dl.c.q.name, stripped)
	if len(ms) > 0 {
		dl.c.q.push(ms)
	}
	if failed != nil {
		return failed
	}
	return nil
}

// Count returns how many dead letters the queue holds, leased ones
// included.
func (dl *deadLetters) Count(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if dl.p.closed.Load() {
		return 0, errClosed("count", dl.c.dlq.name)
	}
	q := dl.c.dlq
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready.len() + q.pending + q.leased + q.delayed, nil
}

// Close stops the queue's receivers, which return an error wrapping
// providers.ErrClosed. Letters still leased come back after their lease.
func (dl *deadLetters) Close() error {
	dl.once.Do(func() { close(dl.done) })
	return nil
}
