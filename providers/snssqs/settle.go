package snssqs

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seed06bc8277/herald/providers"
)

// The settlement batching.
const (
	// settleConcurrency is how many batch requests of one kind (deletes,
	// visibility changes) a subscription keeps in flight. While they are
	// all busy, new settlements queue up and leave in the next batches,
	// so batches grow with the load and add no delay when it is light.
	settleConcurrency = 4
	// settleTimeout bounds one batch request, whoever waits for it.
	settleTimeout = 30 * time.Second
)

// Ack deletes the delivery's message with DeleteMessageBatch, together
// with other acks made at the same time. It fails with ErrLeaseLost,
// sending nothing, once the lease has ended.
func (s *subscription) Ack(ctx context.Context, d *providers.Delivery) error {
	h, err := s.leased("ack", d)
	if err != nil {
		return err
	}
	return s.deletes.submit(ctx, h.handle)
}

// Nack makes the delivery's message visible again after delay (rounded up
// to whole seconds, at most 12 hours; at once for 0) with
// ChangeMessageVisibilityBatch. Its next receipt counts as a new attempt.
func (s *subscription) Nack(ctx context.Context, d *providers.Delivery,
	delay time.Duration,
) error {
	h, err := s.leased("nack", d)
	if err != nil {
		return err
	}
	secs := seconds(delay, 0, maxVisibility)
	if err := s.visibility.submit(ctx, visibilityChange{handle: h.handle, secs: secs}); err != nil {
		return err
	}
	h.until.Store(0) // given back: later settlements are refused
	return nil
}

// Extend sets the delivery's visibility timeout to lease from now
// (rounded up to whole seconds, 1 s to 12 hours) and updates
// d.LeaseUntil.
func (s *subscription) Extend(ctx context.Context, d *providers.Delivery,
	lease time.Duration,
) error {
	h, err := s.leased("extend the lease of", d)
	if err != nil {
		return err
	}
	start := time.Now()
	secs := seconds(lease, 1, maxVisibility)
	if err := s.visibility.submit(ctx, visibilityChange{handle: h.handle, secs: secs}); err != nil {
		return err
	}
	until := start.Add(time.Duration(secs) * time.Second)
	h.until.Store(until.UnixNano())
	d.LeaseUntil = until
	return nil
}

// leased returns the delivery's receipt, or ErrLeaseLost when its lease
// has ended (or it was given back): SQS would accept a stale receipt
// handle without a word, so the driver refuses first.
func (s *subscription) leased(op string, d *providers.Delivery) (*receipt, error) {
	h, ok := d.Handle.(*receipt)
	if !ok || h.sub != s {
		return nil, fmt.Errorf("%w: snssqs: %s a delivery that queue %s did not hand out",
			providers.ErrInvalid, op, s.queue)
	}
	if until := h.until.Load(); time.Now().UnixNano() >= until {
		return nil, fmt.Errorf("snssqs: %s message %s of queue %s: %w (ended %v)",
			op, d.ProviderID, s.queue, providers.ErrLeaseLost, time.Unix(0, until).Format(time.RFC3339Nano))
	}
	return h, nil
}

// deleteBatch deletes up to 10 messages by receipt handle.
func (s *subscription) deleteBatch(ctx context.Context, handles []string) []error {
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(handles))
	for i := range handles {
		entries[i] = sqstypes.DeleteMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), ReceiptHandle: &handles[i],
		}
	}
	out, err := s.p.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
		QueueUrl: &s.url, Entries: entries,
	})
	if err != nil {
		return repeat(len(handles), wrap("DeleteMessageBatch", "queue "+s.queue, err))
	}
	return s.results("DeleteMessageBatch", len(handles), idsOf(out.Successful), out.Failed)
}

// visibilityChange is one ChangeMessageVisibility of a batch.
type visibilityChange struct {
	handle string
	secs   int32
}

// visibilityBatch changes the visibility of up to 10 messages.
func (s *subscription) visibilityBatch(ctx context.Context, cs []visibilityChange) []error {
	entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(cs))
	for i := range cs {
		entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), ReceiptHandle: &cs[i].handle,
			VisibilityTimeout: cs[i].secs,
		}
	}
	out, err := s.p.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{
		QueueUrl: &s.url, Entries: entries,
	})
	if err != nil {
		return repeat(len(cs), wrap("ChangeMessageVisibilityBatch", "queue "+s.queue, err))
	}
	return s.results("ChangeMessageVisibilityBatch", len(cs), idsOf(out.Successful), out.Failed)
}

func idsOf[T sqstypes.DeleteMessageBatchResultEntry |
	sqstypes.ChangeMessageVisibilityBatchResultEntry](es []T,
) []string {
	out := make([]string, len(es))
	for i, e := range es {
		switch e := any(e).(type) {
		case sqstypes.DeleteMessageBatchResultEntry:
			out[i] = aws.ToString(e.Id)
		case sqstypes.ChangeMessageVisibilityBatchResultEntry:
			out[i] = aws.ToString(e.Id)
		}
	}
	return out
}

// results turns a batch answer into one error per entry; an entry in
// neither list failed.
func (s *subscription) results(op string, n int, ok []string,
	failed []sqstypes.BatchResultErrorEntry,
) []error {
	errs := repeat(n, fmt.Errorf("snssqs: %s queue %s: %w: SQS did not report the entry",
		op, s.queue, providers.ErrUnavailable))
	for _, id := range ok {
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < n {
			errs[i] = nil
		}
	}
	for _, f := range failed {
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < n {
			errs[i] = entryError(op, "queue "+s.queue, aws.ToString(f.Code),
				aws.ToString(f.Message), f.SenderFault)
		}
	}
	return errs
}

func repeat(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// batcher coalesces concurrent calls into batch requests of up to 10,
// sent by settleConcurrency long-lived workers (whose stacks stay grown
// for the SDK's deep call chains).
type batcher[T any] struct {
	send  func(ctx context.Context, items []T) []error
	calls chan *call[T]
	work  chan []*call[T]
	idle  chan struct{} // one token per idle worker
	done  chan struct{}

	mu     sync.RWMutex
	closed bool
	users  sync.WaitGroup
}

type call[T any] struct {
	item T
	done chan error
}

func newBatcher[T any](send func(ctx context.Context, items []T) []error) *batcher[T] {
	b := &batcher[T]{
		send:  send,
		calls: make(chan *call[T], 4*maxBatchEntries),
		work:  make(chan []*call[T], settleConcurrency),
		idle:  make(chan struct{}, settleConcurrency),
		done:  make(chan struct{}),
	}
	var workers sync.WaitGroup
	for range settleConcurrency {
		b.idle <- struct{}{}
		workers.Go(b.worker)
	}
	go func() {
		b.dispatch()
		close(b.work)
		workers.Wait()
		close(b.done)
	}()
	return b
}

// submit adds item to the next batch and waits for its result. The batch
// request is not cancelled when ctx ends; only the wait is.
func (b *batcher[T]) submit(ctx context.Context, item T) error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return fmt.Errorf("snssqs: settle: %w", providers.ErrClosed)
	}
	b.users.Add(1)
	b.mu.RUnlock()
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

// dispatch waits for an idle worker, then hands it what has queued up.
func (b *batcher[T]) dispatch() {
	for c := range b.calls {
		<-b.idle
		batch := []*call[T]{c}
	fill:
		for len(batch) < maxBatchEntries {
			select {
			case c, ok := <-b.calls:
				if !ok {
					break fill
				}
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.work <- batch
	}
}

// worker sends batches, one request at a time.
func (b *batcher[T]) worker() {
	items := make([]T, 0, maxBatchEntries)
	for batch := range b.work {
		items = items[:0]
		for _, c := range batch {
			items = append(items, c.item)
		}
		ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		errs := b.send(ctx, items)
		cancel()
		for i, c := range batch {
			c.done <- errs[i]
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
