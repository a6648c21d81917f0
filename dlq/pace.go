package dlq

import (
	"context"
	"sync"
	"time"
)

// pacer spaces batches so that letters go out at no more than a rate per
// second on average: a batch of n waits until the previous batches' share
// of time has passed. A nil pacer never waits.
type pacer struct {
	mu    sync.Mutex
	every time.Duration // per letter
	next  time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{every: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until a batch of n letters may go, or ctx ends.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p == nil {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(n) * p.every)
	p.mu.Unlock()

	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// batchFor caps the batch size so that one batch is at most a second's
// worth of letters at the rate.
func batchFor(size int, rate float64) int {
	if rate <= 0 || float64(size) <= rate {
		return size
	}
	return max(1, int(rate))
}
