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

// maxQueueMessageBytes is the largest SQS message: 1 MiB, room for a
// 256 KiB message and the reasons its dead letter gains.
const maxQueueMessageBytes = 1 << 20

// DeadLetter sends the delivery's message to the consumer's dead-letter
// queue ("T-C-dlq") with SendMessage, keeping its body and attributes and
// adding the reason (packed into one attribute when 10 would not hold
// them; attributes past the 10th travel folded into one), then deletes
// the original. The lease is checked before anything is sent.
func (s *subscription) DeadLetter(ctx context.Context, d *providers.Delivery,
	dl providers.DeadLetter,
) error {
	h, err := s.leased("dead-letter", d)
	if err != nil {
		return err
	}
	url, name, err := s.deadLetterQueue(ctx)
	if err != nil {
		return err
	}
	m := providers.Message{
		Body:       d.Body,
		Attributes: providers.WithDeadLetter(d.Attributes, dl, MaxAttributes),
	}
	w, err := encode(&m, true)
	if err != nil {
		return fmt.Errorf("snssqs: dead-letter message %s to queue %s: %w", d.ProviderID, name, err)
	}
	if w.size > maxQueueMessageBytes {
		return fmt.Errorf("snssqs: dead-letter message %s to queue %s: %w: %d bytes, SQS takes %d",
			d.ProviderID, name, providers.ErrTooLarge, w.size, maxQueueMessageBytes)
	}
	in := &sqs.SendMessageInput{
		QueueUrl: &url, MessageBody: &w.body, MessageAttributes: w.sqsAttributes(),
	}
	if s.ordered {
		group := h.group
		if group == "" {
			group = "herald-dl"
		}
		in.MessageGroupId = &group
		in.MessageDeduplicationId = aws.String(hash(d.ProviderID + "/" + strconv.Itoa(d.Attempt)))
	}
	if _, err := s.p.sqs.SendMessage(ctx, in); err != nil {
		return wrap("SendMessage", "dead-letter queue "+name, err)
	}
	if err := s.deletes.submit(ctx, h.handle); err != nil {
		return fmt.Errorf("snssqs: dead-lettered message %s, but removing the original "+
			"failed (it will be seen again): %w", d.ProviderID, err)
	}
	h.until.Store(0)
	return nil
}

// deadLetterQueue finds the consumer's dead-letter queue once.
func (s *subscription) deadLetterQueue(ctx context.Context) (url, name string, err error) {
	s.dlqMu.Lock()
	defer s.dlqMu.Unlock()
	name = dlqName(s.topic, s.consumer, s.ordered)
	if s.dlqURL != "" {
		return s.dlqURL, name, nil
	}
	url, name, err = s.p.findQueue(ctx, "dead letters of "+s.what, name)
	if err != nil {
		return "", "", err
	}
	s.dlqURL = url
	return url, name, nil
}

// deadLetters is one consumer's dead-letter queue.
type deadLetters struct {
	*subscription
	target     string // the consumer's queue, where Redrive sends
	targetName string
	targetFIFO bool
	redriveMu  sync.Mutex
}

// dlqLease is how long ReceiveBatch leases a dead letter: 30 s.
const dlqLease = 30 * time.Second

// OpenDeadLetters opens the dead-letter queue of consumer c of topic t:
// "T-C-dlq" or "T-C-dlq.fifo". ReceiveBatch waits at most 1 s for letters
// and returns none when the queue is empty. The error wraps ErrNotFound
// when the consumer's queue or its dead-letter queue does not exist.
func (p *Provider) OpenDeadLetters(ctx context.Context, t, c string,
) (providers.DeadLetterQueue, error) {
	what := fmt.Sprintf("consumer %q of topic %q", c, t)
	if err := p.checkOpen("open dead letters of " + what); err != nil {
		return nil, err
	}
	target, targetName, err := p.findQueue(ctx, what, queueName(t, c, false), queueName(t, c, true))
	if err != nil {
		return nil, err
	}
	ordered := targetName == queueName(t, c, true)
	url, name, err := p.findQueue(ctx, "dead letters of "+what, dlqName(t, c, ordered))
	if err != nil {
		return nil, err
	}
	s, err := p.newSubscription(ctx, "dead letters of "+what, url, name, dlqLease, 1)
	if err != nil {
		return nil, err
	}
	s.once = true
	s.topic, s.consumer = t, c
	return &deadLetters{subscription: s, target: target, targetName: targetName,
		targetFIFO: ordered}, nil
}

// Release gives a leased dead letter back at once, unchanged.
func (q *deadLetters) Release(ctx context.Context, d *providers.Delivery) error {
	return q.Nack(ctx, d, 0)
}

// Redrive sends the messages to the consumer's own queue with
// SendMessageBatch (10 a request), as new messages whose receive count
// starts again. It removes nothing from the dead-letter queue. A partial
// failure is a *providers.BatchError.
func (q *deadLetters) Redrive(ctx context.Context, msgs []*providers.Message) error {
	failed := map[int]error{}
	var batch []sqstypes.SendMessageBatchRequestEntry
	var index []int
	size := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		out, err := q.p.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{
			QueueUrl: &q.target, Entries: batch,
		})
		if err != nil {
			err = wrap("SendMessageBatch", "queue "+q.targetName, err)
			for _, i := range index {
				failed[i] = err
			}
		} else {
			ok := make([]string, len(out.Successful))
			for i, s := range out.Successful {
				ok[i] = aws.ToString(s.Id)
			}
			for i, err := range q.results("SendMessageBatch", len(batch), ok, out.Failed) {
				if err != nil {
					failed[index[i]] = err
				}
			}
		}
		batch, index, size = batch[:0], index[:0], 0
	}
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i, m := range msgs {
		if m == nil {
			failed[i] = fmt.Errorf("snssqs: redrive to queue %s: message #%d: %w: nil message",
				q.targetName, i, providers.ErrInvalid)
			continue
		}
		w, err := encode(m, true)
		if err == nil && w.size > MaxMessageBytes {
			err = fmt.Errorf("%w: %d bytes; the queue takes %d", providers.ErrTooLarge,
				w.size, MaxMessageBytes)
		}
		if err != nil {
			failed[i] = fmt.Errorf("snssqs: redrive to queue %s: message #%d: %w", q.targetName, i, err)
			continue
		}
		if len(batch) == maxBatchEntries || size+w.size > maxBatchBytes {
			flush()
		}
		e := sqstypes.SendMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(len(batch))), MessageBody: aws.String(w.body),
			MessageAttributes: w.sqsAttributes(),
		}
		if q.targetFIFO {
			// A fresh deduplication ID: the original's would be taken for
			// a duplicate within SQS's 5-minute window.
			e.MessageGroupId = aws.String(groupID(m))
			e.MessageDeduplicationId = aws.String(hash(m.ID + "/" + nonce + "/" + strconv.Itoa(i)))
		}
		batch = append(batch, e)
		index = append(index, i)
		size += w.size
	}
	flush()

	switch {
	case len(failed) == 0:
		return nil
	case len(msgs) == 1:
		return failed[0]
	}
	return &providers.BatchError{Failed: failed}
}

// Count returns the letters in the queue: visible, leased and delayed,
// as SQS approximates them.
func (q *deadLetters) Count(ctx context.Context) (int, error) {
	out, err := q.p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return 0, wrap("GetQueueAttributes", "queue "+q.queue, err)
	}
	n := 0
	for _, v := range out.Attributes {
		c, _ := strconv.Atoi(v)
		n += c
	}
	return n, nil
}
