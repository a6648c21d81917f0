package herald

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/seed06bc8277/herald/providers"
)

// BatchError reports a Publish of which only some messages failed: Failed
// maps each failed message's index in the call to why. The others were
// published.
type BatchError = providers.BatchError

// PublisherOptions tune a Publisher. The zero value is ready to use.
type PublisherOptions struct {
	// Source is the Source of messages that have none. Default "herald".
	Source string
}

// Publisher publishes messages to one topic. It is safe for concurrent use;
// concurrent Publish calls share the provider's batching.
type Publisher struct {
	client *Client
	topic  string
	sender providers.Topic
	source string

	mu       sync.RWMutex // held for reading by each Publish, for writing by Close
	closed   bool
	inflight sync.WaitGroup
}

// Publisher returns a publisher for the topic. It fails with an error
// wrapping ErrNotFound when the topic does not exist (see Provision).
func (c *Client) Publisher(ctx context.Context, topic string, opts *PublisherOptions) (*Publisher, error) {
	if c.isClosed() {
		return nil, fmt.Errorf("herald: publisher for topic %q: %w", topic, ErrClosed)
	}
	if err := validateName("topic", topic); err != nil {
		return nil, err
	}
	var o PublisherOptions
	if opts != nil {
		o = *opts
	}
	if o.Source == "" {
		o.Source = "herald"
	}
	t, err := c.provider.OpenTopic(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("herald: publisher for topic %q: %w", topic, err)
	}
	return &Publisher{client: c, topic: topic, sender: t, source: o.Source}, nil
}

// Publish sends the messages to every consumer of the topic. It first fills
// in what is missing on each message (ID: a UUIDv7; Time: now; Source: the
// publisher's) and validates them all: if any is invalid, nothing is sent
// and the error (wrapping ErrInvalid or ErrTooLarge) names the message.
// When the provider accepts only some messages, the error is a *BatchError
// naming the ones that failed; the rest were published. A nil error means
// every message was accepted by the provider.
func (p *Publisher) Publish(ctx context.Context, msgs ...*Message) error {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return fmt.Errorf("herald: publish to %q: %w", p.topic, ErrClosed)
	}
	p.inflight.Add(1)
	p.mu.RUnlock()
	defer p.inflight.Done()

	if len(msgs) == 0 {
		return nil
	}

	// Fill in and validate every message before sending any, so that a
	// bad message cannot leave a batch half-published.
	limits := p.client.limits
	out := make([]*providers.Message, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("%w: publish to %q: message #%d is nil", ErrInvalid, p.topic, i)
		}
		p.fill(m)
		if err := validate(m); err != nil {
			return fmt.Errorf("herald: publish to %q: message #%d (id %q): %w", p.topic, i, m.ID, err)
		}
		out[i] = encode(m, limits)
		if err := checkSize(out[i], limits); err != nil {
			return fmt.Errorf("herald: publish to %q: message #%d (id %q): %w", p.topic, i, m.ID, err)
		}
	}

	if err := p.sender.SendBatch(ctx, out); err != nil {
		var be *providers.BatchError
		if errors.As(err, &be) {
			return be
		}
		return fmt.Errorf("herald: publish to %q: %w", p.topic, err)
	}
	return nil
}

func (p *Publisher) fill(m *Message) {
	if m.ID == "" {
		m.ID = newID()
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	if m.Source == "" {
		m.Source = p.source
	}
}

// newID returns a UUIDv7: unique, and sorting by creation time.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		return uuid.NewString()
	}
	return id.String()
}

// Close waits for Publish calls under way and releases the topic. Later
// Publish calls fail with ErrClosed. Close is idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	return p.sender.Close()
}

// Attribute name limits: what every provider accepts.
const maxAttrName = 100

var reservedPrefixes = []string{"ce-", "herald-", "aws.", "amazon", "goog", "x-opt-"}

// validate checks a filled-in message against herald's own rules.
func validate(m *Message) error {
	switch {
	case m.Type == "":
		return fmt.Errorf("%w: empty Type", ErrInvalid)
	case !utf8.ValidString(m.ID) || !utf8.ValidString(m.Type) || !utf8.ValidString(m.Source) ||
		!utf8.ValidString(m.Subject) || !utf8.ValidString(m.ContentType) ||
		!utf8.ValidString(m.OrderingKey):
		return fmt.Errorf("%w: ID, Type, Source, Subject, ContentType and OrderingKey must be UTF-8",
			ErrInvalid)
	case len(m.ID) > 256:
		return fmt.Errorf("%w: ID is %d bytes, the limit is 256", ErrInvalid, len(m.ID))
	case len(m.OrderingKey) > 128:
		return fmt.Errorf("%w: OrderingKey is %d bytes, the limit is 128", ErrInvalid, len(m.OrderingKey))
	}
	for k, v := range m.Attributes {
		if err := validateAttrName(k); err != nil {
			return err
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: attribute %q: value is not UTF-8", ErrInvalid, k)
		}
	}
	return nil
}

func validateAttrName(k string) error {
	if k == "" || len(k) > maxAttrName {
		return fmt.Errorf("%w: attribute name %q must be 1 to %d bytes", ErrInvalid, k, maxAttrName)
	}
	if i := strings.IndexFunc(k, func(r rune) bool { return !nameRune(r) }); i >= 0 {
		return fmt.Errorf("%w: attribute name %q: use letters, digits, '-', '_' and '.'", ErrInvalid, k)
	}
	if k[0] == '.' || k[len(k)-1] == '.' || strings.Contains(k, "..") {
		return fmt.Errorf("%w: attribute name %q: no leading, trailing or double '.'", ErrInvalid, k)
	}
	lower := strings.ToLower(k)
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(lower, p) {
			return fmt.Errorf("%w: attribute name %q: the prefix %q is reserved", ErrInvalid, k, p)
		}
	}
	return nil
}

// checkSize measures an encoded message as the provider counts it.
func checkSize(m *providers.Message, l providers.Limits) error {
	if l.MaxMessageBytes <= 0 {
		return nil
	}
	size := len(m.Body)
	for k, v := range m.Attributes {
		size += len(k) + len(v) + l.AttributeOverhead
	}
	if size > l.MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes with attributes, the provider's limit is %d",
			ErrTooLarge, size, l.MaxMessageBytes)
	}
	return nil
}
