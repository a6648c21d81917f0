package snssqs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// requestTimeout bounds one batch request, whoever waits for it: a batch
// mixes calls with different contexts, so none of them can cancel it.
const requestTimeout = 30 * time.Second

// batcher coalesces concurrent calls into batch requests of up to 10
// entries (and, when sized, maxBytes), sent by long-lived workers whose
// stacks stay grown for the SDK's deep call chains. A batch leaves as soon
// as a worker is free: batches grow with the load and add no delay when
// it is light. An item is one entry, or several (a chunk of a publish)
// when count says so.
type batcher[T any] struct {
	send     func(ctx context.Context, items []T) []error
	count    func(T) int // entries in an item; nil: 1
	size     func(T) int // bytes of an item; nil: batches are bounded by count only
	maxBytes int

	calls chan *call[T]
	work  chan []*call[T]
	idle  chan struct{} // one token per idle worker
	done  chan struct{}

	mu     sync.RWMutex
	closed bool
	users  sync.WaitGroup
}

// call is one item on its way. Its result goes to done, or to *err with
// wg.Done() for calls submitted together.
type call[T any] struct {
	item T
	done chan error
	err  *error
	wg   *sync.WaitGroup
}

func (c *call[T]) finish(err error) {
	if c.done != nil {
		c.done <- err
		return
	}
	*c.err = err
	c.wg.Done()
}

// newBatcher starts a batcher with workers workers.
func newBatcher[T any](workers int, send func(ctx context.Context, items []T) []error,
) *batcher[T] {
	b := &batcher[T]{
		send:  send,
		calls: make(chan *call[T], 4*maxBatchEntries),
		work:  make(chan []*call[T], workers),
		idle:  make(chan struct{}, workers),
		done:  make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range workers {
		b.idle <- struct{}{}
		wg.Go(b.worker)
	}
	go func() {
		b.dispatch()
		close(b.work)
		wg.Wait()
		close(b.done)
	}()
	return b
}

// enter registers a caller, or fails once the batcher is closed.
func (b *batcher[T]) enter() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return fmt.Errorf("snssqs: %w", providers.ErrClosed)
	}
	b.users.Add(1)
	return nil
}

// submit adds item to the next batch and waits for its result. The batch
// request is not cancelled when ctx ends; only the wait is.
func (b *batcher[T]) submit(ctx context.Context, item T) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.users.Done()

	c := &call[T]{item: item, done: make(chan error, 1)}
	select {
	case b.calls <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submitAll queues the items, in order, and returns each one's result.
// Once ctx ends it queues no more: the items from index queued on were not
// sent and have no result. It still waits for the results of those
// queued, so that every result is known (at most requestTimeout). It
// fails with ErrClosed, queueing nothing, once the batcher is closed.
func (b *batcher[T]) submitAll(ctx context.Context, items []T) (errs []error, queued int,
	err error,
) {
	if err := b.enter(); err != nil {
		return nil, 0, err
	}
	defer b.users.Done()

	errs = make([]error, len(items))
	calls := make([]call[T], len(items))
	var wg sync.WaitGroup
queue:
	for i := range items {
		calls[i] = call[T]{item: items[i], err: &errs[i], wg: &wg}
		wg.Add(1)
		select {
		case b.calls <- &calls[i]:
			queued++
		case <-ctx.Done():
			wg.Done()
			break queue
		}
	}
	wg.Wait()
	return errs, queued, nil
}

// dispatch waits for an idle worker, then hands it what has queued up.
func (b *batcher[T]) dispatch() {
	var carry *call[T] // the call that did not fit in the last batch
	for {
		c := carry
		carry = nil
		if c == nil {
			var ok bool
			if c, ok = <-b.calls; !ok {
				return
			}
		}
		<-b.idle
		batch := []*call[T]{c}
		n, size := b.countOf(c), b.sizeOf(c)
	fill:
		for n < maxBatchEntries {
			select {
			case c, ok := <-b.calls:
				if !ok {
					break fill
				}
				cn, cs := b.countOf(c), b.sizeOf(c)
				if n+cn > maxBatchEntries || b.size != nil && size+cs > b.maxBytes {
					carry = c
					break fill
				}
				n, size = n+cn, size+cs
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.work <- batch
	}
}

func (b *batcher[T]) countOf(c *call[T]) int {
	if b.count == nil {
		return 1
	}
	return b.count(c.item)
}

func (b *batcher[T]) sizeOf(c *call[T]) int {
	if b.size == nil {
		return 0
	}
	return b.size(c.item)
}

// worker sends batches, one request at a time.
func (b *batcher[T]) worker() {
	items := make([]T, 0, maxBatchEntries)
	for batch := range b.work {
		items = items[:0]
		for _, c := range batch {
			items = append(items, c.item)
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		errs := b.send(ctx, items)
		cancel()
		for i, c := range batch {
			c.finish(errs[i])
		}
		b.idle <- struct{}{}
	}
}

// close waits for the calls under way and stops; later calls fail with
// ErrClosed.
func (b *batcher[T]) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.done
		return
	}
	b.closed = true
	b.mu.Unlock()
	b.users.Wait()
	close(b.calls)
	<-b.done
}
