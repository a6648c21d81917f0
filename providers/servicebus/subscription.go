package servicebus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/seed06bc8277/herald/providers"
)

// AttrAttempts carries the attempts a message had before a delayed Nack
// copied it (see "Consuming" in the package doc); the next attempt is this
// plus Service Bus's DeliveryCount. Deliveries never show it.
const AttrAttempts = "herald-attempts"

const (
	// maxCredits is the most messages one ReceiveBatch asks for: the
	// receiver's credit limit in azservicebus.
	maxCredits = 5000
	// receiveWait bounds one ReceiveBatch that finds nothing, so that the
	// consumer loop can offer the slots freed meanwhile.
	receiveWait = 5 * time.Second
)

// subscription receives one consumer's messages in peek-lock mode.
type subscription struct {
	p     *Provider
	topic string
	name  string
	path  string
	recv  *azservicebus.Receiver // nil when the subscription requires sessions
	pool  *sessionPool           // its sessions, when it requires sessions

	// sender sends delayed copies (Nack with a delay); opened on first
	// use and closed by Close.
	senderMu sync.Mutex
	sender   *azservicebus.Sender
	closed   bool
}

// handle is a delivery's settlement token: the received message and
// whether it was settled already, so that a repeated settlement is
// ErrLeaseLost and never a second success.
type handle struct {
	msg     *azservicebus.ReceivedMessage
	settled atomic.Bool
	sess    *sessionRecv // the session that delivered it, or nil
	pool    *sessionPool
}

// settler is what settles a message: the subscription's receiver, or
// the session receiver that delivered it.
type settler interface {
	CompleteMessage(context.Context, *azservicebus.ReceivedMessage,
		*azservicebus.CompleteMessageOptions) error
	AbandonMessage(context.Context, *azservicebus.ReceivedMessage,
		*azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(context.Context, *azservicebus.ReceivedMessage,
		*azservicebus.DeadLetterOptions) error
}

// via returns the receiver that delivered h and, for a session, counts
// the settlement that follows.
func (s *subscription) via(h *handle) settler {
	if h.sess == nil {
		return s.recv
	}
	h.pool.settled(h.sess)
	return h.sess.r
}

// OpenSubscription returns a peek-lock receiver for the consumer's
// subscription. It peeks once, so that a missing topic or subscription
// fails here with ErrNotFound naming it. opts.Lease is ignored: the lock
// duration is the subscription's (Provision sets it from Topology.Lease).
// A subscription that requires sessions refuses that receiver with
// amqp:not-allowed; it is then read through sessions (see "Ordering" in
// the package doc), up to min(opts.MaxInFlight, 4) at once.
func (p *Provider) OpenSubscription(ctx context.Context, topic, consumer string,
	opts providers.SubscriptionOptions) (providers.Subscription, error) {
	path := subscriptionPath(topic, consumer)
	if p.isClosed() {
		return nil, fmt.Errorf("%w: servicebus: open subscription %s", providers.ErrClosed, path)
	}
	r, err := p.openReceiver(ctx, topic, consumer, 0)
	if err != nil && requiresSessions(err) {
		return &subscription{p: p, topic: topic, name: consumer, path: path,
			pool: newSessionPool(p, topic, consumer, path, opts.MaxInFlight)}, nil
	}
	if err != nil {
		return nil, err
	}
	return &subscription{p: p, topic: topic, name: consumer, path: path, recv: r}, nil
}

// openReceiver makes a peek-lock receiver and checks that its entity
// exists with one peek (which locks nothing).
func (p *Provider) openReceiver(ctx context.Context, topic, consumer string,
	sq azservicebus.SubQueue) (*azservicebus.Receiver, error) {
	path := subscriptionPath(topic, consumer)
	if sq == azservicebus.SubQueueDeadLetter {
		path += "/$DeadLetterQueue"
	}
	r, err := p.client.NewReceiverForSubscription(topic, consumer, &azservicebus.ReceiverOptions{
		ReceiveMode: azservicebus.ReceiveModePeekLock,
		SubQueue:    sq,
	})
	if err != nil {
		return nil, wrap("open subscription", path, err)
	}
	if _, err := r.PeekMessages(ctx, 1, nil); err != nil {
		closeReceiver(r)
		return nil, wrap("open subscription", path, err)
	}
	return r, nil
}

func closeReceiver(r *azservicebus.Receiver) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = r.Close(ctx)
}

// ReceiveBatch locks up to max messages. It waits until at least one
// arrives, at most 5 s (then it returns none), or until ctx ends.
func (s *subscription) ReceiveBatch(ctx context.Context, n int) ([]*providers.Delivery, error) {
	if s.pool != nil {
		return s.pool.receive(ctx, n)
	}
	return receive(ctx, s.recv, s.path, n)
}

func receive(ctx context.Context, r *azservicebus.Receiver, path string,
	n int) ([]*providers.Delivery, error) {
	n = min(max(n, 1), maxCredits)
	wctx, cancel := context.WithTimeout(ctx, receiveWait)
	defer cancel()
	msgs, err := r.ReceiveMessages(wctx, n, nil)
	if err != nil && len(msgs) == 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if wctx.Err() != nil {
			return nil, nil // waited long enough: nothing came
		}
		return nil, wrap("receive from", path, err)
	}
	out := make([]*providers.Delivery, len(msgs))
	for i, m := range msgs {
		out[i] = toDelivery(m)
	}
	return out, nil
}

// toDelivery maps a received message: the attempt is DeliveryCount plus
// the attempts carried by a delayed copy.
func toDelivery(m *azservicebus.ReceivedMessage) *providers.Delivery {
	d := &providers.Delivery{
		Message: providers.Message{ID: m.MessageID, Body: m.Body},
		Attempt: int(m.DeliveryCount),
		Handle:  &handle{msg: m},
	}
	if len(m.ApplicationProperties) > 0 {
		d.Attributes = make(map[string]string, len(m.ApplicationProperties))
		for k, v := range m.ApplicationProperties {
			if k == AttrAttempts {
				n, _ := strconv.Atoi(fmt.Sprint(v))
				d.Attempt += max(n, 0)
				continue
			}
			if s, ok := v.(string); ok {
				d.Attributes[k] = s
			} else {
				d.Attributes[k] = fmt.Sprint(v)
			}
		}
	}
	if m.SessionID != nil {
		d.OrderingKey = *m.SessionID
	}
	if m.SequenceNumber != nil {
		d.ProviderID = strconv.FormatInt(*m.SequenceNumber, 10)
	}
	if m.LockedUntil != nil {
		d.LeaseUntil = *m.LockedUntil
	}
	return d
}

// take marks the delivery settled. A second settlement of the same
// delivery is ErrLeaseLost: it can never succeed twice. The mark is
// needed because go-amqp answers nil, sending nothing, when a message
// already settled on its link is settled again; and it stays set after a
// failed settlement, whose disposition may have been sent.
func take(d *providers.Delivery, op, path string) (*handle, error) {
	h, ok := d.Handle.(*handle)
	if !ok || h == nil {
		return nil, fmt.Errorf("%w: servicebus: %s %s: the delivery was not received here",
			providers.ErrInvalid, op, path)
	}
	if !h.settled.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: servicebus: %s %s: message %s was settled already",
			providers.ErrLeaseLost, op, path, d.ProviderID)
	}
	return h, nil
}

// settled reports a settlement's error, naming the message.
func settleErr(op, path string, d *providers.Delivery, err error) error {
	if err == nil {
		return nil
	}
	return wrap(op, path+" message "+d.ProviderID, err)
}

// Ack completes the message. A lost lock is ErrLeaseLost.
func (s *subscription) Ack(ctx context.Context, d *providers.Delivery) error {
	h, err := take(d, "ack", s.path)
	if err != nil {
		return err
	}
	return settleErr("ack", s.path, d, s.via(h).CompleteMessage(ctx, h.msg, nil))
}

// Nack gives the message back. With no delay it is abandoned: Service Bus
// delivers it again at once and counts the delivery. With a delay, which
// Service Bus cannot give an abandoned message, a copy is scheduled on the
// topic for now+delay with herald-target set to this consumer (so only
// this subscription gets it, by the filter Provision installs) and
// herald-attempts set to the attempts so far; then the original is
// completed. If the completion fails (a lost lock) the copy is cancelled
// and the error returned, so the message is never doubled on purpose.
func (s *subscription) Nack(ctx context.Context, d *providers.Delivery, delay time.Duration) error {
	h, err := take(d, "nack", s.path)
	if err != nil {
		return err
	}
	if delay <= 0 {
		return settleErr("nack", s.path, d, s.via(h).AbandonMessage(ctx, h.msg, nil))
	}

	sender, err := s.delaySender(ctx)
	if err != nil {
		// Cannot delay: give it back at once rather than keep it locked.
		return settleErr("nack", s.path, d, s.via(h).AbandonMessage(ctx, h.msg, nil))
	}
	cp := copyMessage(h.msg, s.name, d.Attempt)
	seqs, err := sender.ScheduleMessages(ctx, []*azservicebus.Message{cp},
		time.Now().Add(delay), nil)
	if err != nil {
		return settleErr("nack", s.path, d, s.via(h).AbandonMessage(ctx, h.msg, nil))
	}
	if err := s.via(h).CompleteMessage(ctx, h.msg, nil); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if cerr := sender.CancelScheduledMessages(cctx, seqs, nil); cerr != nil {
			err = errors.Join(err, fmt.Errorf("the delayed copy (sequence number %v) "+
				"could not be cancelled and will be delivered too: %w", seqs, cerr))
		}
		return settleErr("nack", s.path, d, err)
	}
	return nil
}

// delaySender returns the topic sender for delayed copies.
func (s *subscription) delaySender(ctx context.Context) (*azservicebus.Sender, error) {
	s.senderMu.Lock()
	defer s.senderMu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: servicebus: subscription %s", providers.ErrClosed, s.path)
	}
	if s.sender != nil {
		return s.sender, nil
	}
	snd, err := s.p.client.NewSender(s.topic, nil)
	if err != nil {
		return nil, wrap("open topic", s.topic, err)
	}
	s.sender = snd
	return snd, nil
}

// copyMessage is a received message as a new message for one consumer,
// carrying the attempts it had.
func copyMessage(m *azservicebus.ReceivedMessage, consumer string,
	attempts int) *azservicebus.Message {
	props := make(map[string]any, len(m.ApplicationProperties)+2)
	for k, v := range m.ApplicationProperties {
		props[k] = v
	}
	props[providers.AttrTarget] = consumer
	props[AttrAttempts] = strconv.Itoa(attempts)
	cp := &azservicebus.Message{
		Body:                  m.Body,
		ApplicationProperties: props,
		ContentType:           m.ContentType,
		CorrelationID:         m.CorrelationID,
		SessionID:             m.SessionID,
		Subject:               m.Subject,
	}
	if m.MessageID != "" {
		id := m.MessageID
		cp.MessageID = &id
	}
	return cp
}

// Extend renews the lock (RenewMessageLock) and updates d.LeaseUntil.
// Service Bus renews for the subscription's lock duration, whatever lease
// asks.
func (s *subscription) Extend(ctx context.Context, d *providers.Delivery,
	lease time.Duration) error {
	h, ok := d.Handle.(*handle)
	if !ok || h == nil {
		return fmt.Errorf("%w: servicebus: extend %s: the delivery was not received here",
			providers.ErrInvalid, s.path)
	}
	if h.settled.Load() {
		return fmt.Errorf("%w: servicebus: extend %s: message %s was settled already",
			providers.ErrLeaseLost, s.path, d.ProviderID)
	}
	if h.sess != nil {
		// A session's messages are locked by the session lock.
		until, err := h.pool.renew(ctx, h.sess)
		if err != nil {
			return settleErr("extend lock of", s.path, d, err)
		}
		d.LeaseUntil = until
		return nil
	}
	if err := s.recv.RenewMessageLock(ctx, h.msg, nil); err != nil {
		return settleErr("extend lock of", s.path, d, err)
	}
	if h.msg.LockedUntil != nil {
		d.LeaseUntil = *h.msg.LockedUntil
	}
	return nil
}

// DeadLetter moves the message to the subscription's dead-letter queue
// natively (DeadLetterMessage), with herald's reason as the
// DeadLetterReason, the error as the DeadLetterErrorDescription, and
// herald's dead-letter attributes added to its application properties.
func (s *subscription) DeadLetter(ctx context.Context, d *providers.Delivery,
	reason providers.DeadLetter) error {
	h, err := take(d, "dead-letter", s.path)
	if err != nil {
		return err
	}
	attrs := reason.Attributes()
	props := make(map[string]any, len(attrs))
	for k, v := range attrs {
		props[k] = v
	}
	why, desc := reason.Reason, attrs[providers.AttrDeadLetterError]
	err = s.via(h).DeadLetterMessage(ctx, h.msg, &azservicebus.DeadLetterOptions{
		Reason: &why, ErrorDescription: &desc, PropertiesToModify: props,
	})
	return settleErr("dead-letter", s.path, d, err)
}

// Close closes the receiver. Locked messages come back after their lock.
func (s *subscription) Close() error {
	s.senderMu.Lock()
	s.closed = true
	if s.sender != nil {
		closeSender(s.sender)
		s.sender = nil
	}
	s.senderMu.Unlock()
	if s.pool != nil {
		s.pool.close()
		return nil
	}
	closeReceiver(s.recv)
	return nil
}
