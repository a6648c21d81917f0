package herald_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

func TestPublishBadInputSendsNothing(t *testing.T) {
	f := newFixture(t, "c")
	pub, err := f.client.Publisher(context.Background(), f.topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := func() *herald.Message { return &herald.Message{Type: "OrderPlaced", Data: []byte("{}")} }
	cases := []struct {
		name string
		bad  *herald.Message
		want error
		says string
	}{
		{"empty type", &herald.Message{Data: []byte("x")}, herald.ErrInvalid, "empty Type"},
		{"oversized", &herald.Message{Type: "T", Data: make([]byte, 1<<20+1)}, herald.ErrTooLarge, "limit"},
		{"attribute name", &herald.Message{Type: "T", Attributes: map[string]string{"bad name": "v"}},
			herald.ErrInvalid, `"bad name"`},
		{"reserved attribute", &herald.Message{Type: "T", Attributes: map[string]string{"ce-id": "v"}},
			herald.ErrInvalid, "reserved"},
		{"attribute value not UTF-8", &herald.Message{Type: "T", Attributes: map[string]string{"a": "\xff"}},
			herald.ErrInvalid, "UTF-8"},
		{"nil message", nil, herald.ErrInvalid, "nil"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := pub.Publish(context.Background(), good(), tc.bad, good())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) ||
				!strings.Contains(err.Error(), "#1") {
				t.Fatalf("got %v, want %v naming message #1 and saying %q", err, tc.want, tc.says)
			}
			if s := f.stats(t, "c"); s.Ready != 0 {
				t.Fatalf("%d messages were sent from a batch with a bad message", s.Ready)
			}
		})
	}
}

func TestPublishFillsIDTimeAndSource(t *testing.T) {
	f := newFixture(t, "c")
	pub, err := f.client.Publisher(context.Background(), f.topic, &herald.PublisherOptions{Source: "/checkout"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := &herald.Message{Type: "T"}, &herald.Message{Type: "T"}
	if err := pub.Publish(context.Background(), a, b); err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.ID == b.ID || a.Time.IsZero() || a.Source != "/checkout" {
		t.Fatalf("filled %+v and %+v: want distinct IDs, a time and the publisher's source", a, b)
	}
	if len(a.ID) != 36 || a.ID[14] != '7' {
		t.Fatalf("ID %q is not a UUIDv7", a.ID)
	}
}

func TestPublishAfterCloseFails(t *testing.T) {
	f := newFixture(t, "c")
	pub, err := f.client.Publisher(context.Background(), f.topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	err = pub.Publish(context.Background(), &herald.Message{Type: "T"})
	if !errors.Is(err, herald.ErrClosed) || !strings.Contains(err.Error(), f.topic) {
		t.Fatalf("publish after close: %v, want ErrClosed naming the topic", err)
	}
	if err := pub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPublishToMissingTopic(t *testing.T) {
	f := newFixture(t, "c")
	_, err := f.client.Publisher(context.Background(), "nope", nil)
	if !errors.Is(err, herald.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("got %v, want ErrNotFound naming the topic", err)
	}
}

// A provider's partial failure reaches the caller as a *BatchError that
// says which messages failed.
func TestPartialFailureSaysWhichMessages(t *testing.T) {
	p := &partialProvider{Provider: newFixture(t, "c").mem}
	c := herald.NewClient(p)
	pub, err := c.Publisher(context.Background(), "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = pub.Publish(context.Background(), &herald.Message{Type: "A"}, &herald.Message{Type: "B"})
	var be *herald.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[1] == nil {
		t.Fatalf("got %v, want a BatchError naming message 1", err)
	}
	if !errors.Is(err, herald.ErrUnavailable) {
		t.Fatalf("errors.Is(%v, ErrUnavailable) = false", err)
	}
}

type partialProvider struct{ providers.Provider }

func (p *partialProvider) OpenTopic(ctx context.Context, topic string) (providers.Topic, error) {
	t, err := p.Provider.OpenTopic(ctx, topic)
	return partialTopic{t}, err
}

type partialTopic struct{ providers.Topic }

func (t partialTopic) SendBatch(ctx context.Context, msgs []*providers.Message) error {
	if err := t.Topic.SendBatch(ctx, msgs[:1]); err != nil {
		return err
	}
	return &providers.BatchError{Failed: map[int]error{1: providers.ErrUnavailable}}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	_, err := herald.Open(ctx, "kafka://broker")
	if !errors.Is(err, herald.ErrInvalid) || !strings.Contains(err.Error(), "mem://") {
		t.Errorf("unknown scheme: %v, want ErrInvalid listing mem://", err)
	}
	_, err = herald.Open(ctx, "snssqs://?region=eu-west-1")
	if !errors.Is(err, herald.ErrInvalid) || !strings.Contains(err.Error(), "providers/snssqs") {
		t.Errorf("unimported scheme: %v, want the import to add", err)
	}
	_, err = herald.Open(ctx, "no-scheme")
	if !errors.Is(err, herald.ErrInvalid) {
		t.Errorf("no scheme: %v", err)
	}
	t.Setenv(herald.EnvURL, "")
	c, err := herald.Open(ctx, "")
	if err != nil {
		t.Fatalf("default URL: %v", err)
	}
	_ = c.Close()
	if _, err := c.Publisher(ctx, "t", nil); !errors.Is(err, herald.ErrClosed) {
		t.Errorf("publisher on a closed client: %v", err)
	}
}
