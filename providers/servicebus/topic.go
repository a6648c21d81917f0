package servicebus

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/seed06bc8277/herald/providers"
)

// topic sends to one Service Bus topic.
type topic struct {
	p      *Provider
	name   string
	sender *azservicebus.Sender
}

// OpenTopic returns a sender for the topic. It attaches the sender link
// at once, so that a missing topic fails here with ErrNotFound naming it.
func (p *Provider) OpenTopic(ctx context.Context, name string) (providers.Topic, error) {
	if p.isClosed() {
		return nil, fmt.Errorf("%w: servicebus: open topic %s", providers.ErrClosed, name)
	}
	s, err := p.openSender(ctx, name)
	if err != nil {
		return nil, err
	}
	return &topic{p: p, name: name, sender: s}, nil
}

// openSender makes a sender and attaches its link (NewMessageBatch needs
// the link's size limit, so it attaches).
func (p *Provider) openSender(ctx context.Context, name string) (*azservicebus.Sender, error) {
	s, err := p.client.NewSender(name, nil)
	if err != nil {
		return nil, wrap("open topic", name, err)
	}
	if _, err := s.NewMessageBatch(ctx, nil); err != nil {
		closeSender(s)
		return nil, wrap("open topic", name, err)
	}
	return s, nil
}

func closeSender(s *azservicebus.Sender) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = s.Close(ctx)
}

// SendBatch sends the messages in as few AMQP batches as fit the size
// limit. A message larger than the limit fails alone with ErrTooLarge;
// when a batch fails, its messages fail with its error and the others
// were sent (a *providers.BatchError).
func (t *topic) SendBatch(ctx context.Context, msgs []*providers.Message) error {
	return sendBatch(ctx, t.p, t.sender, t.name, msgs, nil)
}

// Close closes the sender link.
func (t *topic) Close() error {
	closeSender(t.sender)
	return nil
}

// sendBatch sends msgs to the topic with extra application properties
// added to each (the redrive target).
func sendBatch(ctx context.Context, p *Provider, s *azservicebus.Sender, name string,
	msgs []*providers.Message, extra map[string]any) error {
	if len(msgs) == 0 {
		return nil
	}
	limit := uint64(p.limits.MaxMessageBytes)
	failed := map[int]error{}
	var batch *azservicebus.MessageBatch
	var in []int // indexes of the messages in batch

	flush := func() {
		if batch == nil || batch.NumMessages() == 0 {
			return
		}
		if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
			err = wrap("send to topic", name, err)
			for _, i := range in {
				failed[i] = err
			}
		}
		batch, in = nil, in[:0]
	}
	newBatch := func() error {
		b, err := s.NewMessageBatch(ctx, &azservicebus.MessageBatchOptions{MaxBytes: limit})
		if err != nil {
			return wrap("send to topic", name, err)
		}
		batch = b
		return nil
	}

	for i, m := range msgs {
		sm := toServiceBus(m, extra)
		for try := 0; ; try++ {
			if batch == nil {
				if err := newBatch(); err != nil {
					for j := i; j < len(msgs); j++ {
						failed[j] = err
					}
					return result(failed, len(msgs))
				}
			}
			err := batch.AddMessage(sm, nil)
			if err == nil {
				in = append(in, i)
				break
			}
			if !errors.Is(err, azservicebus.ErrMessageTooLarge) {
				failed[i] = wrap("send to topic", name, err)
				break
			}
			if batch.NumMessages() == 0 || try > 0 {
				failed[i] = fmt.Errorf("%w: servicebus: send to topic %s: message #%d (id %q) "+
					"is over the limit of %d bytes", providers.ErrTooLarge, name, i, m.ID, limit)
				break
			}
			flush() // full: send what it holds and start another
		}
	}
	flush()
	return result(failed, len(msgs))
}

// result is nil, the one error when every message failed alike, or a
// *providers.BatchError.
func result(failed map[int]error, n int) error {
	if len(failed) == 0 {
		return nil
	}
	if len(failed) == n {
		first := failed[0]
		same := true
		for _, err := range failed {
			if err != first {
				same = false
				break
			}
		}
		if same {
			return first
		}
	}
	return &providers.BatchError{Failed: failed}
}

// toServiceBus maps a herald message onto a Service Bus message: herald's
// ID in MessageID (when it fits Service Bus's 128 characters), the
// attributes as application properties and the ordering key in SessionID.
func toServiceBus(m *providers.Message, extra map[string]any) *azservicebus.Message {
	props := make(map[string]any, len(m.Attributes)+len(extra))
	for k, v := range m.Attributes {
		props[k] = v
	}
	for k, v := range extra {
		props[k] = v
	}
	sm := &azservicebus.Message{Body: m.Body, ApplicationProperties: props}
	if m.ID != "" && len(m.ID) <= maxIDLength {
		id := m.ID
		sm.MessageID = &id
	}
	if m.OrderingKey != "" {
		key := m.OrderingKey
		sm.SessionID = &key
	}
	return sm
}
