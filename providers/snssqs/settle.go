package snssqs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seed06bc8277/herald/providers"
)

// settleConcurrency is how many batch requests of one kind (deletes,
// visibility changes) a subscription keeps in flight. While they are all
// busy, new settlements queue up and leave in the next batches, so batches
// grow with the load and add no delay when it is light.
const settleConcurrency = 4

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
	var h *receipt
	ok := false
	if d != nil {
		h, ok = d.Handle.(*receipt)
	}
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
