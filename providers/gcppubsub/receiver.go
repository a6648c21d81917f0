package gcppubsub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/seed06bc8277/herald/providers"
)

// maxPull is the most messages one Pull asks for.
const maxPull = 1000

// ceID is the CloudEvents binary-mode attribute that carries herald's
// message ID; it fills Delivery.ID when present.
const ceID = "ce-id"

// receiver leases and settles the messages of one Pub/Sub subscription
// with unary Pull, ModifyAckDeadline and Acknowledge, so that herald owns
// every lease exactly. Subscription and DeadLetterQueue are built on it.
type receiver struct {
	p        *Provider
	path     string        // projects/P/subscriptions/ID
	deadline time.Duration // the subscription's ack deadline
	lease    time.Duration // the lease wanted; 0: the ack deadline
	acks     *acker
	attempts attemptCounter
	closed   atomic.Bool
}

func (p *Provider) newReceiver(ctx context.Context, subID string, lease time.Duration,
) (*receiver, *pb.Subscription, error) {
	path := p.subPath(subID)
	s, err := p.client.SubscriptionAdminClient.GetSubscription(ctx,
		&pb.GetSubscriptionRequest{Subscription: path})
	if err != nil {
		return nil, nil, wrap("open subscription", path+" in "+p.where, err)
	}
	r := &receiver{
		p:        p,
		path:     path,
		deadline: time.Duration(s.GetAckDeadlineSeconds()) * time.Second,
	}
	if r.deadline <= 0 {
		r.deadline = minSubscriptionAckDeadline // Pub/Sub's default
	}
	if lease > 0 {
		r.lease = time.Duration(ceilSeconds(lease, time.Second)) * time.Second
	}
	r.acks = newAcker(r.acknowledge)
	return r, s, nil
}

func (r *receiver) checkOpen(op string) error {
	if r.closed.Load() {
		return fmt.Errorf("%w: gcppubsub: %s %s: %w", providers.ErrClosed, op, r.path, errClosedSub)
	}
	return nil
}

// receive pulls up to n messages; nothing is prefetched, so the caller's
// n bounds what is leased (and held in memory) exactly.
func (r *receiver) receive(ctx context.Context, n int) ([]*providers.Delivery, error) {
	if err := r.checkOpen("receive from"); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n = min(max(n, 1), maxPull)

	// The lease starts before the call, so that herald's view of it never
	// outlasts Pub/Sub's.
	start := time.Now()
	resp, err := r.p.client.SubscriptionAdminClient.Pull(ctx,
		&pb.PullRequest{Subscription: r.path, MaxMessages: int32(n)})
	if err != nil {
		if err := ctxEnded(ctx, err); err != nil {
			return nil, err
		}
		return nil, wrap("receive from subscription", r.path, err)
	}
	msgs := resp.GetReceivedMessages()
	if len(msgs) == 0 {
		return nil, nil
	}

	// Pub/Sub leases for the subscription's ack deadline; a consumer that
	// asked for another lease gets it with one more call for the batch.
	lease := r.deadline
	if r.lease != 0 && r.lease != r.deadline {
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			ids[i] = m.GetAckId()
		}
		at := time.Now()
		if r.modify(ctx, ids, r.lease) == nil {
			start, lease = at, r.lease
		}
	}

	out := make([]*providers.Delivery, len(msgs))
	for i, rm := range msgs {
		m := rm.GetMessage()
		attempt := int(rm.GetDeliveryAttempt())
		if attempt <= 0 {
			attempt = r.attempts.next(m.GetMessageId())
		}
		h := &leased{ackID: rm.GetAckId()}
		h.until.Store(start.Add(lease).UnixNano())
		out[i] = &providers.Delivery{
			Message: providers.Message{
				ID:          m.GetAttributes()[ceID],
				Body:        m.GetData(),
				Attributes:  m.GetAttributes(),
				OrderingKey: m.GetOrderingKey(),
			},
			ProviderID: m.GetMessageId(),
			Attempt:    attempt,
			LeaseUntil: start.Add(lease),
			Handle:     h,
		}
	}
	return out, nil
}

// leased is a delivery's Handle: its ack ID and when herald's lease on it
// ends. The end is kept here, not read from Delivery.LeaseUntil, because
// the consumer loop may settle a delivery while another goroutine extends
// it.
type leased struct {
	ackID string
	until atomic.Int64 // Unix nanoseconds
}

// handle returns the delivery's lease, or an error when the delivery is
// not one of this receiver's or its lease has ended.
func (r *receiver) handle(op string, d *providers.Delivery) (*leased, error) {
	if err := r.checkOpen(op); err != nil {
		return nil, err
	}
	h, ok := d.Handle.(*leased)
	if !ok || h == nil {
		return nil, fmt.Errorf("%w: gcppubsub: %s %s: delivery %s was not received from it",
			providers.ErrInvalid, op, r.path, d.ProviderID)
	}
	if time.Now().UnixNano() >= h.until.Load() {
		return nil, r.leaseLost(op, d, h)
	}
	return h, nil
}

func (r *receiver) leaseLost(op string, d *providers.Delivery, h *leased) error {
	return fmt.Errorf("%w: gcppubsub: %s %s: message %s: its lease ended at %s",
		providers.ErrLeaseLost, op, r.path, d.ProviderID,
		time.Unix(0, h.until.Load()).UTC().Format(time.RFC3339Nano))
}

// ack acknowledges the delivery, in a call shared with concurrent acks.
func (r *receiver) ack(ctx context.Context, d *providers.Delivery) error {
	h, err := r.handle("ack on", d)
	if err != nil {
		return err
	}
	if err := r.acks.ack(ctx, h.ackID); err != nil {
		if invalidAckIDs(err)[h.ackID] {
			return r.leaseLost("ack on", d, h)
		}
		return wrap("ack on subscription", r.path, err)
	}
	r.attempts.forget(d.ProviderID)
	return nil
}

// nack makes the message visible again after delay: its ack deadline is
// set to the delay (whole seconds, rounded up, at most 600 s; 0 means at
// once), after which Pub/Sub redelivers it as a new attempt.
func (r *receiver) nack(ctx context.Context, d *providers.Delivery, delay time.Duration) error {
	h, err := r.handle("nack on", d)
	if err != nil {
		return err
	}
	if delay < 0 {
		delay = 0
	}
	if err := r.modify(ctx, []string{h.ackID}, delay); err != nil {
		if invalidAckIDs(err)[h.ackID] {
			return r.leaseLost("nack on", d, h)
		}
		return wrap("nack on subscription", r.path, err)
	}
	return nil
}

// extend sets the delivery's ack deadline to lease from now (whole
// seconds, rounded up, at most 600 s).
func (r *receiver) extend(ctx context.Context, d *providers.Delivery, lease time.Duration) error {
	h, err := r.handle("extend lease on", d)
	if err != nil {
		return err
	}
	if lease <= 0 {
		return fmt.Errorf("%w: gcppubsub: extend lease on %s: lease %v is not positive",
			providers.ErrInvalid, r.path, lease)
	}
	secs := ceilSeconds(lease, time.Second)
	start := time.Now()
	if err := r.modify(ctx, []string{h.ackID}, time.Duration(secs)*time.Second); err != nil {
		if invalidAckIDs(err)[h.ackID] {
			return r.leaseLost("extend lease on", d, h)
		}
		return wrap("extend lease on subscription", r.path, err)
	}
	until := start.Add(time.Duration(secs) * time.Second)
	h.until.Store(until.UnixNano())
	d.LeaseUntil = until
	return nil
}

// modify sets the ack deadline of ids to d (0: release at once).
func (r *receiver) modify(ctx context.Context, ids []string, d time.Duration) error {
	var secs int32
	if d > 0 {
		secs = ceilSeconds(d, time.Second)
	}
	return r.p.client.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pb.ModifyAckDeadlineRequest{
		Subscription: r.path, AckIds: ids, AckDeadlineSeconds: secs,
	})
}

// close stops receiving and waits for acks already queued.
func (r *receiver) close() {
	r.closed.Store(true)
	r.acks.wait()
}

// attemptCounter counts deliveries per message in this process, for
// subscriptions without a dead-letter policy, where Pub/Sub does not
// report delivery attempts. It forgets a message when it is acked, and
// forgets everything past 100,000 messages, so that it stays bounded; a
// count that restarted, or a delivery to another process, reads low.
type attemptCounter struct {
	mu sync.Mutex
	n  map[string]int
}

const maxCounted = 100_000

func (c *attemptCounter) next(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil || len(c.n) >= maxCounted {
		c.n = map[string]int{}
	}
	c.n[id]++
	return c.n[id]
}

func (c *attemptCounter) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.n, id)
}
