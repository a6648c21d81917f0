package herald_test

import (
	"context"
	"sync"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// batchProvider delivers whatever is queued in one batch, ignoring
// ordering keys, as SQS FIFO and Pub/Sub may hand a consumer several
// messages of one key at once. Nacked messages come back after their
// delay with the attempt raised. It lets tests reach the loop's own
// ordering, which mem:// never needs because it delivers a key's messages
// one at a time.
type batchProvider struct {
	mu     sync.Mutex
	queue  []*providers.Delivery
	wake   chan struct{}
	acked  []string
	topicT providers.Topic
}

func newBatchProvider() *batchProvider { return &batchProvider{wake: make(chan struct{}, 1)} }

func (p *batchProvider) Limits() providers.Limits { return providers.Limits{} }
func (p *batchProvider) Close() error             { return nil }

func (p *batchProvider) OpenTopic(ctx context.Context, topic string) (providers.Topic, error) {
	return batchTopic{p}, nil
}

func (p *batchProvider) OpenSubscription(ctx context.Context, topic, consumer string,
	o providers.SubscriptionOptions) (providers.Subscription, error) {
	return batchSub{p}, nil
}

func (p *batchProvider) push(d *providers.Delivery) {
	p.mu.Lock()
	p.queue = append(p.queue, d)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

type batchTopic struct{ p *batchProvider }

func (t batchTopic) SendBatch(ctx context.Context, msgs []*providers.Message) error {
	for _, m := range msgs {
		t.p.push(&providers.Delivery{Message: *m, Attempt: 1, LeaseUntil: time.Now().Add(time.Minute)})
	}
	return nil
}
func (t batchTopic) Close() error { return nil }

type batchSub struct{ p *batchProvider }

func (s batchSub) ReceiveBatch(ctx context.Context, max int) ([]*providers.Delivery, error) {
	for {
		s.p.mu.Lock()
		if n := min(max, len(s.p.queue)); n > 0 {
			out := append([]*providers.Delivery(nil), s.p.queue[:n]...)
			s.p.queue = s.p.queue[n:]
			s.p.mu.Unlock()
			return out, nil
		}
		s.p.mu.Unlock()
		select {
		case <-s.p.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s batchSub) Ack(ctx context.Context, d *providers.Delivery) error {
	s.p.mu.Lock()
	s.p.acked = append(s.p.acked, d.Attributes["ce-id"])
	s.p.mu.Unlock()
	return nil
}

func (s batchSub) Nack(ctx context.Context, d *providers.Delivery, delay time.Duration) error {
	again := *d
	again.Attempt++
	time.AfterFunc(delay, func() { s.p.push(&again) })
	return nil
}

func (s batchSub) Extend(ctx context.Context, d *providers.Delivery, lease time.Duration) error {
	d.LeaseUntil = time.Now().Add(lease)
	return nil
}

func (s batchSub) DeadLetter(ctx context.Context, d *providers.Delivery, dl providers.DeadLetter) error {
	return nil
}

func (s batchSub) Close() error { return nil }
