package gcppubsub

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/seed06bc8277/herald/providers"
)

// labelOrdering marks a topic that Provision created for ordered
// consumers (Topology.Ordered): only such a topic accepts ordering keys.
const (
	labelOrdering   = "herald-ordering"
	labelOrderingOn = "enabled"
)

// Topic publishes to one Pub/Sub topic through the client library's
// batching publisher. It implements providers.Topic.
type Topic struct {
	p       *Provider
	id      string
	path    string
	ordered bool
	pub     *pubsub.Publisher
	closed  atomic.Bool
}

// OpenTopic returns a sender for the topic. It returns an error wrapping
// ErrNotFound when the topic (or the project) does not exist.
func (p *Provider) OpenTopic(ctx context.Context, topic string) (providers.Topic, error) {
	return p.openTopic(ctx, topic)
}

func (p *Provider) openTopic(ctx context.Context, topic string) (*Topic, error) {
	if err := p.checkOpen("open topic " + topic); err != nil {
		return nil, err
	}
	if err := checkID("topic", topic); err != nil {
		return nil, err
	}
	path := p.topicPath(topic)
	t, err := p.client.TopicAdminClient.GetTopic(ctx, &pb.GetTopicRequest{Topic: path})
	if err != nil {
		return nil, wrap("open topic", path+" in "+p.where, err)
	}
	return p.newTopic(topic, t.GetLabels()[labelOrdering] == labelOrderingOn), nil
}

func (p *Provider) newTopic(topic string, ordered bool) *Topic {
	path := p.topicPath(topic)
	pub := p.client.Publisher(path)
	pub.PublishSettings.CountThreshold = p.opts.PublishCount
	pub.PublishSettings.ByteThreshold = p.opts.PublishBytes
	pub.PublishSettings.DelayThreshold = p.opts.PublishDelay
	pub.EnableMessageOrdering = ordered
	return &Topic{p: p, id: topic, path: path, ordered: ordered, pub: pub}
}

// SendBatch publishes the messages and waits until Pub/Sub accepted each.
// Messages are handed to the client at once, so that its batching gathers
// them (and concurrent batches) into few Publish calls. A message that
// breaks a Pub/Sub limit fails alone, with an error wrapping ErrInvalid
// or ErrTooLarge that names the limit; a failure of some messages is a
// *providers.BatchError. When a message with an ordering key fails, the
// later messages with that key in flight fail too (Pub/Sub keeps their
// order), and the key is resumed before SendBatch returns, so that
// sending the failed messages again works.
func (t *Topic) SendBatch(ctx context.Context, msgs []*providers.Message) error {
	if t.closed.Load() {
		return fmt.Errorf("%w: gcppubsub: send to topic %s: topic is closed",
			providers.ErrClosed, t.path)
	}
	results := make([]*pubsub.PublishResult, len(msgs))
	var failed map[int]error
	fail := func(i int, err error) {
		if failed == nil {
			failed = map[int]error{}
		}
		failed[i] = err
	}
	for i, m := range msgs {
		if err := t.validate(m); err != nil {
			fail(i, err)
			continue
		}
		results[i] = t.pub.Publish(ctx, &pubsub.Message{
			Data:        m.Body,
			Attributes:  m.Attributes,
			OrderingKey: m.OrderingKey,
		})
	}

	var paused map[string]bool
	for i, r := range results {
		if r == nil {
			continue
		}
		if _, err := r.Get(ctx); err != nil {
			fail(i, wrap("publish to topic", t.path, err))
			if k := msgs[i].OrderingKey; k != "" {
				if paused == nil {
					paused = map[string]bool{}
				}
				paused[k] = true
			}
		}
	}
	// The client pauses an ordering key after a failure, so that later
	// messages cannot overtake the failed one; resume it now that the
	// caller learns which messages to send again.
	for k := range paused {
		t.pub.ResumePublish(k)
	}
	if failed != nil {
		return &providers.BatchError{Failed: failed}
	}
	return nil
}

// validate checks a message against Pub/Sub's limits.
func (t *Topic) validate(m *providers.Message) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: gcppubsub: message %q for topic %s: %s", providers.ErrInvalid,
			m.ID, t.path, fmt.Sprintf(format, args...))
	}
	if len(m.Body) == 0 && len(m.Attributes) == 0 {
		return invalid("Pub/Sub needs a body or at least one attribute")
	}
	if len(m.Attributes) > MaxAttributes {
		return invalid("%d attributes, Pub/Sub allows %d", len(m.Attributes), MaxAttributes)
	}
	size := len(m.Body) + len(m.OrderingKey)
	for k, v := range m.Attributes {
		switch {
		case k == "":
			return invalid("an attribute has an empty name")
		case len(k) > MaxAttributeKeyBytes:
			return invalid("attribute name %.40q... is %d bytes, Pub/Sub allows %d",
				k, len(k), MaxAttributeKeyBytes)
		case strings.HasPrefix(k, "goog"):
			return invalid("attribute %q: names starting with \"goog\" are reserved by Pub/Sub", k)
		case len(v) > MaxAttributeValueBytes:
			return invalid("attribute %q has a %d-byte value, Pub/Sub allows %d",
				k, len(v), MaxAttributeValueBytes)
		}
		size += len(k) + len(v)
	}
	if m.OrderingKey != "" {
		if len(m.OrderingKey) > MaxOrderingKeyBytes {
			return invalid("ordering key is %d bytes, Pub/Sub allows %d",
				len(m.OrderingKey), MaxOrderingKeyBytes)
		}
		if !t.ordered {
			return invalid("ordering key %q on a topic without message ordering "+
				"(provision it with Topology.Ordered, or label the topic %s=%s)",
				m.OrderingKey, labelOrdering, labelOrderingOn)
		}
	}
	if size > MaxMessageBytes {
		return fmt.Errorf("%w: gcppubsub: message %q for topic %s is %d bytes, Pub/Sub allows %d",
			providers.ErrTooLarge, m.ID, t.path, size, MaxMessageBytes)
	}
	return nil
}

// Close sends what the client still holds and releases the sender.
func (t *Topic) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.pub.Stop()
	return nil
}
