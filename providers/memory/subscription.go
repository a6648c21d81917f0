package memory

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// subscription is a providers.Subscription on one consumer's queue.
type subscription struct {
	p        *Provider
	q        *queue
	dlq      *queue
	consumer string
	lease    int64 // nanoseconds
	done     chan struct{}
	once     sync.Once
}

// ReceiveBatch waits until at least one message is ready, then leases up
// to max of them, oldest first, and returns their deliveries. It returns
// ctx.Err() when ctx ends first and an error wrapping providers.ErrClosed
// once the subscription or provider is closed.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) (
	[]*providers.Delivery, error) {
	return s.q.receive(ctx, "receive from", max, s.lease, s.p.done, s.done)
}

// Ack removes the delivery's message from the consumer's queue.
func (s *subscription) Ack(ctx context.Context, d *providers.Delivery) error {
	return s.q.ack(ctx, s.p, d)
}

// Nack ends the delivery's lease; its message is visible again after delay
// (at once when delay <= 0), first of its ordering key.
func (s *subscription) Nack(ctx context.Context, d *providers.Delivery,
	delay time.Duration) error {
	return s.q.nack(ctx, s.p, d, delay)
}

// Extend sets the delivery's lease to end lease from now, sooner or later
// than before, and updates d.LeaseUntil. lease must be positive.
func (s *subscription) Extend(ctx context.Context, d *providers.Delivery,
	lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("%w: memory: extend on %s: lease %v, want > 0",
			providers.ErrInvalid, s.q.name, lease)
	}
	var until int64
	err := s.q.settle(ctx, s.p, "extend", d, func(e *entry, t int64) {
		until = t + int64(lease)
		e.deadline = until
		s.q.fixTimerLocked(e)
		s.q.armLocked(t)
	})
	if err == nil {
		d.LeaseUntil = wallTime(until)
	}
	return err
}

// DeadLetter moves the delivery's message to the consumer's dead-letter
// queue with the reason's attributes added (providers.WithDeadLetter, all
// five unpacked), and removes it from the consumer's queue. A reason
// without Consumer, Attempts or Time gets this consumer, the delivery's
// attempt and the current time.
func (s *subscription) DeadLetter(ctx context.Context, d *providers.Delivery,
	reason providers.DeadLetter) error {
	var msg *stored
	var attempts int
	err := s.q.settle(ctx, s.p, "dead-letter", d, func(e *entry, _ int64) {
		msg, attempts = e.msg, int(e.attempts)
		s.q.removeLocked(e)
	})
	if err != nil {
		return err
	}

	if reason.Consumer == "" {
		reason.Consumer = s.consumer
	}
	if reason.Attempts == 0 {
		reason.Attempts = attempts
	}
	if reason.Time.IsZero() {
		reason.Time = time.Now()
	}
	letter := providers.Message{ID: msg.ID, Body: msg.Body, OrderingKey: msg.OrderingKey,
		Attributes: providers.WithDeadLetter(msg.Attributes, reason, 0)}
	pid := strconv.FormatUint(s.p.in.seq.Add(1), 10)
	s.dlq.push([]stored{{Message: letter, pid: pid}})
	return nil
}

// Close stops the subscription's receivers, which return an error wrapping
// providers.ErrClosed. Deliveries still leased come back after their
// lease; settling them still works.
func (s *subscription) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}
