package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// handle is a Delivery together with its settlement token. ReceiveBatch
// allocates the handles of a batch in one array, and each Delivery's
// Handle points back at its own handle: the entry and the entry's gen when
// it was leased. A settlement holds only while the entry still has that
// gen, which every end of the lease changes.
type handle struct {
	d   providers.Delivery
	e   *entry
	q   *queue
	gen uint32
}

// push adds new messages to the queue and wakes its receivers. The entries
// of a batch share one allocation.
func (q *queue) push(ms []stored) {
	es := make([]entry, len(ms))
	for i := range ms {
		es[i].msg = &ms[i]
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return // the instance is closed: its clients fail every send
	}
	for i := range es {
		q.enqueueLocked(&es[i])
	}
	q.wakeLocked()
}

// receive leases up to max ready entries for lease nanoseconds, waiting
// until there is at least one, ctx is done or pdone or sdone is closed.
func (q *queue) receive(ctx context.Context, op string, max int, lease int64,
	pdone, sdone <-chan struct{}) ([]*providers.Delivery, error) {
	if max <= 0 {
		return nil, fmt.Errorf("%w: memory: %s %s: max is %d, want at least 1",
			providers.ErrInvalid, op, q.name, max)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-pdone:
			return nil, errClosed(op, q.name)
		case <-sdone:
			return nil, errClosed(op, q.name)
		default:
		}

		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, errClosed(op, q.name)
		}
		t := now()
		if len(q.timers) > 0 && q.timers[0].deadline <= t {
			q.expireLocked(t)
		}
		if n := q.ready.len(); n > 0 {
			return q.leaseBatchLocked(min(n, max), t, t+lease), nil
		}
		wait := q.waitChanLocked()
		q.mu.Unlock()

		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-pdone:
			return nil, errClosed(op, q.name)
		case <-sdone:
			return nil, errClosed(op, q.name)
		}
	}
}

// leaseBatchLocked leases n ready entries until deadline, unlocks q and
// returns their deliveries.
func (q *queue) leaseBatchLocked(n int, t, deadline int64) []*providers.Delivery {
	hs := make([]handle, n)
	for i := range hs {
		e := q.leaseLocked(deadline)
		hs[i].e, hs[i].gen, hs[i].d.Attempt = e, e.gen, int(e.attempts)
	}
	q.armLocked(t)
	q.mu.Unlock()

	// An entry's message and ID never change: fill the rest unlocked.
	until := wallTime(deadline)
	out := make([]*providers.Delivery, n)
	for i := range hs {
		h := &hs[i]
		h.q = q
		h.d.Message = h.e.msg.Message
		h.d.ProviderID = h.e.msg.pid
		h.d.LeaseUntil = until
		h.d.Handle = h
		out[i] = &h.d
	}
	return out
}

// handleOf returns the delivery's handle, checking that it belongs to q.
func (q *queue) handleOf(op string, d *providers.Delivery) (*handle, error) {
	var h *handle
	if d != nil {
		h, _ = d.Handle.(*handle)
	}
	if h == nil || h.q != q {
		return nil, fmt.Errorf("%w: memory: %s on %s: not a delivery of this queue",
			providers.ErrInvalid, op, q.name)
	}
	return h, nil
}

// settle runs fn on the delivery's entry while its lease holds, with the
// time; it fails with providers.ErrLeaseLost when the lease ended.
func (q *queue) settle(ctx context.Context, p *Provider, op string, d *providers.Delivery,
	fn func(e *entry, t int64)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := q.handleOf(op, d)
	if err != nil {
		return err
	}
	if p.closed.Load() {
		return errClosed(op, q.name)
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errClosed(op, q.name)
	}
	t := now()
	if !q.checkLocked(h.e, h.gen, t) {
		q.mu.Unlock()
		return fmt.Errorf("memory: %s message %s on %s (attempt %d): %w",
			op, d.ProviderID, q.name, d.Attempt, providers.ErrLeaseLost)
	}
	fn(h.e, t)
	q.mu.Unlock()
	return nil
}

// ack removes a leased entry for good.
func (q *queue) ack(ctx context.Context, p *Provider, d *providers.Delivery) error {
	return q.settle(ctx, p, "ack", d, func(e *entry, _ int64) {
		q.removeLocked(e)
		q.acked++
	})
}

// nack ends a lease; the entry is visible again after delay.
func (q *queue) nack(ctx context.Context, p *Provider, d *providers.Delivery,
	delay time.Duration) error {
	return q.settle(ctx, p, "nack", d, func(e *entry, t int64) {
		q.requeueLocked(e, t+int64(max(delay, 0)), t, false)
		q.armLocked(t)
	})
}
