package gcppubsub

import (
	"context"
	"sync"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

// Acks are coalesced: an Ack joins the ack IDs waiting to be sent, and at
// most maxAckCalls Acknowledge calls are in flight per subscription, each
// taking up to maxAckIDs of the waiting IDs. Under light load every ack
// is sent at once on its own; under heavy load many acks share one call.
const (
	maxAckCalls   = 4
	maxAckIDs     = 1000 // well under Pub/Sub's 512 KiB request limit
	ackCallBudget = 60 * time.Second
)

type ackWait struct {
	id   string
	done chan error // buffered: the sender never blocks
}

// acker coalesces concurrent acks of one subscription.
type acker struct {
	send func(ctx context.Context, ids []string) error

	mu      sync.Mutex
	pending []*ackWait
	running int
	wg      sync.WaitGroup
}

func newAcker(send func(ctx context.Context, ids []string) error) *acker {
	return &acker{send: send}
}

// ack queues id and waits until the call that carried it returned, or
// ctx ends (the ack may still be sent).
func (a *acker) ack(ctx context.Context, id string) error {
	w := &ackWait{id: id, done: make(chan error, 1)}
	a.mu.Lock()
	a.pending = append(a.pending, w)
	if a.running < maxAckCalls {
		a.running++
		a.wg.Add(1)
		go a.flush()
	}
	a.mu.Unlock()

	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush sends waiting acks until none wait. The call does not use any one
// caller's context: the IDs of many callers travel in it.
func (a *acker) flush() {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		n := min(len(a.pending), maxAckIDs)
		if n == 0 {
			a.running--
			a.mu.Unlock()
			return
		}
		batch := make([]*ackWait, n)
		copy(batch, a.pending)
		a.pending = a.pending[n:]
		if len(a.pending) == 0 {
			a.pending = nil
		}
		a.mu.Unlock()

		ids := make([]string, n)
		for i, w := range batch {
			ids[i] = w.id
		}
		ctx, cancel := context.WithTimeout(context.Background(), ackCallBudget)
		err := a.send(ctx, ids)
		cancel()
		for _, w := range batch {
			w.done <- err
		}
	}
}

// wait waits until every queued ack was sent.
func (a *acker) wait() { a.wg.Wait() }

// acknowledge is the acker's send for a subscription path.
func (r *receiver) acknowledge(ctx context.Context, ids []string) error {
	return r.p.client.SubscriptionAdminClient.Acknowledge(ctx,
		&pb.AcknowledgeRequest{Subscription: r.path, AckIds: ids})
}
