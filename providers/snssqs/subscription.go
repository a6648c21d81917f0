package snssqs

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seed06bc8277/herald/providers"
)

// The receive settings.
const (
	// longPoll is how long one ReceiveMessage waits for messages: SQS's
	// maximum, 20 s.
	longPoll = 20
	// defaultLease is the lease when neither SubscriptionOptions.Lease nor
	// the queue's VisibilityTimeout gives one.
	defaultLease = 30 * time.Second
	// maxVisibility is SQS's longest visibility timeout: 12 hours.
	maxVisibility = 43200
	// releaseTimeout bounds giving buffered deliveries back at Close.
	releaseTimeout = 5 * time.Second
)

// subscription receives from one SQS queue: a consumer's queue, or a
// dead-letter queue (deadletter.go).
type subscription struct {
	p        *Provider
	what     string // "consumer C of topic T", for errors
	url      string
	queue    string
	ordered  bool
	visSecs  int32         // the visibility timeout every receive asks for
	margin   time.Duration // taken off each lease, for the time the answer took
	wait     int32         // WaitTimeSeconds of each receive
	once     bool          // ReceiveBatch returns after one empty poll
	topic    string        // logical, for the dead-letter queue's name
	consumer string

	receivers int
	ctx       context.Context // the polls' lifetime: Close cancels it
	cancel    context.CancelFunc
	polls     sync.WaitGroup

	mu          sync.Mutex
	buf         []*providers.Delivery
	outstanding int   // polls under way
	asked       int   // messages the polls under way asked for
	pollErr     error // the last failed poll's, for the next ReceiveBatch
	emptyPolls  int   // polls that came back empty, for once
	changed     chan struct{}
	closed      bool

	deletes    *batcher[string]
	visibility *batcher[visibilityChange]

	dlqMu  sync.Mutex
	dlqURL string
}

// receipt is a Delivery's Handle.
type receipt struct {
	sub    *subscription
	handle string
	group  string       // FIFO: MessageGroupId
	until  atomic.Int64 // the lease's end, UnixNano; read without racing Extend
}

// OpenSubscription returns a receiver for consumer c of topic t: SQS
// queue "T-C", or "T-C.fifo". The error wraps ErrNotFound, naming what is
// missing, when the topic or the queue does not exist.
func (p *Provider) OpenSubscription(ctx context.Context, t, c string,
	opts providers.SubscriptionOptions,
) (providers.Subscription, error) {
	what := fmt.Sprintf("consumer %q of topic %q", c, t)
	if err := p.checkOpen("open " + what); err != nil {
		return nil, err
	}
	if _, _, err := p.findTopic(ctx, t); err != nil {
		return nil, err
	}
	url, name, err := p.findQueue(ctx, what, queueName(t, c, false), queueName(t, c, true))
	if err != nil {
		return nil, err
	}
	s, err := p.newSubscription(ctx, what, url, name, opts.Lease, longPoll)
	if err != nil {
		return nil, err
	}
	s.topic, s.consumer = t, c
	polls := (opts.MaxInFlight + maxBatchEntries - 1) / maxBatchEntries
	s.receivers = min(p.opts.MaxReceivers, max(1, polls))
	return s, nil
}

// newSubscription reads the queue's attributes and starts the settlement
// batchers.
func (p *Provider) newSubscription(ctx context.Context, what, url, name string,
	lease time.Duration, wait int32,
) (*subscription, error) {
	out, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameVisibilityTimeout, sqstypes.QueueAttributeNameFifoQueue,
		},
	})
	if err != nil {
		return nil, wrap("GetQueueAttributes", "queue "+name, err)
	}
	if lease <= 0 {
		lease = defaultLease
		if v, err := strconv.Atoi(out.Attributes["VisibilityTimeout"]); err == nil && v > 0 {
			lease = time.Duration(v) * time.Second
		}
	}
	s := &subscription{
		p: p, what: what, url: url, queue: name, wait: wait, receivers: 1,
		ordered: out.Attributes["FifoQueue"] == "true",
		visSecs: seconds(lease, 1, maxVisibility),
		changed: make(chan struct{}),
	}
	s.margin = min(time.Duration(s.visSecs)*time.Second/8, time.Second)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.deletes = newBatcher(settleConcurrency, s.deleteBatch)
	s.visibility = newBatcher(settleConcurrency, s.visibilityBatch)
	return s, nil
}

// ReceiveBatch returns up to max deliveries. It hands out what earlier
// polls brought first; otherwise it starts long polls asking for max
// messages in all (10 a poll, at most the subscription's receivers at once)
// and returns as soon as one brings something. Polls outlive a ReceiveBatch
// whose ctx ends: what they bring waits for the next call. A delivery whose
// lease ran out while it waited is dropped; SQS delivers it again.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*providers.Delivery, error) {
	if max <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	empty := s.emptyPolls
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("snssqs: receive from queue %s: %w", s.queue, providers.ErrClosed)
		}
		if ds := s.take(max); len(ds) > 0 {
			s.mu.Unlock()
			return ds, nil
		}
		if err := s.pollErr; err != nil {
			s.pollErr = nil
			s.mu.Unlock()
			return nil, err
		}
		if s.once && s.emptyPolls > empty && s.outstanding == 0 {
			s.mu.Unlock()
			return nil, nil
		}
		if err := ctx.Err(); err != nil {
			s.mu.Unlock()
			return nil, err // start no poll for a caller already gone
		}
		for s.outstanding < s.receivers && s.asked < max {
			n := min(maxBatchEntries, max-s.asked)
			s.outstanding++
			s.asked += n
			s.polls.Add(1)
			go s.poll(int32(n))
		}
		changed := s.changed
		s.mu.Unlock()

		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
}

// take removes up to max live deliveries from the buffer; s.mu is held.
func (s *subscription) take(max int) []*providers.Delivery {
	now := time.Now()
	var out []*providers.Delivery
	i := 0
	for ; i < len(s.buf) && len(out) < max; i++ {
		d := s.buf[i]
		if d.Handle.(*receipt).until.Load() > now.UnixNano() {
			out = append(out, d)
		}
	}
	s.buf = s.buf[i:]
	return out
}

// poll is one ReceiveMessage for n messages.
func (s *subscription) poll(n int32) {
	defer s.polls.Done()
	start := time.Now()
	out, err := s.p.sqs.ReceiveMessage(s.ctx, &sqs.ReceiveMessageInput{
		QueueUrl:              &s.url,
		MaxNumberOfMessages:   n,
		WaitTimeSeconds:       s.wait,
		VisibilityTimeout:     s.visSecs,
		MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
			sqstypes.MessageSystemAttributeNameApproximateReceiveCount,
			sqstypes.MessageSystemAttributeNameMessageGroupId,
		},
	})

	// SQS started the lease somewhere between the request and the
	// answer; a long poll waits before it, so count from the answer, less
	// a margin for the time the answer took.
	got := time.Now()
	leaseStart := got.Add(-s.margin)
	if leaseStart.Before(start) {
		leaseStart = start
	}
	until := leaseStart.Add(time.Duration(s.visSecs) * time.Second)
	var ds []*providers.Delivery
	if err == nil {
		ds = make([]*providers.Delivery, 0, len(out.Messages))
		for i := range out.Messages {
			ds = append(ds, s.delivery(&out.Messages[i], until))
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.outstanding--
	s.asked -= int(n)
	s.buf = append(s.buf, ds...)
	if err != nil && s.ctx.Err() == nil {
		s.pollErr = wrap("ReceiveMessage", "queue "+s.queue, err)
	}
	if err == nil && len(ds) == 0 {
		s.emptyPolls++
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// delivery turns a received SQS message into a Delivery. A message this
// driver cannot decode is handed out as it came, for the consumer to find
// malformed.
func (s *subscription) delivery(m *sqstypes.Message, until time.Time) *providers.Delivery {
	h := &receipt{sub: s, handle: aws.ToString(m.ReceiptHandle),
		group: m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageGroupId)]}
	h.until.Store(until.UnixNano())
	d := &providers.Delivery{
		ProviderID: aws.ToString(m.MessageId),
		Attempt:    receiveCount(m),
		LeaseUntil: until,
		Handle:     h,
	}
	if h.group != "" && !(len(h.group) >= 7 && h.group[:7] == "herald-") {
		d.OrderingKey = h.group
	}
	dec, err := fromSQS(m)
	if err != nil {
		d.Body = []byte(aws.ToString(m.Body))
		return d
	}
	d.Body, d.Attributes = dec.body, dec.attrs
	return d
}

// Close stops receiving: polls under way are cancelled, settlements under
// way finish, later calls fail with ErrClosed, and deliveries that polls
// brought but nobody took are given back at once. Deliveries handed out
// and still leased come back after their lease.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	s.cancel()
	s.polls.Wait()
	s.mu.Lock()
	left := s.buf
	s.buf = nil
	s.mu.Unlock()
	// Give back what nobody took, 10 a request.
	var err error
	if len(left) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		for start := 0; start < len(left); start += maxBatchEntries {
			chunk := left[start:min(start+maxBatchEntries, len(left))]
			changes := make([]visibilityChange, len(chunk))
			for i, d := range chunk {
				changes[i] = visibilityChange{handle: d.Handle.(*receipt).handle}
			}
			for _, e := range s.visibilityBatch(ctx, changes) {
				if e != nil && err == nil {
					err = e
				}
			}
		}
		cancel()
	}
	s.deletes.close()
	s.visibility.close()
	if err != nil {
		return fmt.Errorf("snssqs: close %s: %d unreceived deliveries come back "+
			"after their lease: %w", s.what, len(left), err)
	}
	return nil
}
