package herald_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

// capture is a provider that keeps what it is sent, with a chosen attribute
// limit.
type capture struct {
	providers.Provider
	limits providers.Limits
	sent   []*providers.Message
}

func (c *capture) Limits() providers.Limits { return c.limits }
func (c *capture) OpenTopic(context.Context, string) (providers.Topic, error) {
	return captureTopic{c}, nil
}

type captureTopic struct{ c *capture }

func (t captureTopic) SendBatch(_ context.Context, msgs []*providers.Message) error {
	t.c.sent = append(t.c.sent, msgs...)
	return nil
}
func (t captureTopic) Close() error { return nil }

func roundTrip(t *testing.T, l providers.Limits, m *herald.Message) (*providers.Message, *herald.Message) {
	t.Helper()
	c := &capture{limits: l}
	pub, err := herald.NewClient(c).Publisher(context.Background(), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	wire := c.sent[0]
	got, err := herald.Decode(&providers.Delivery{Message: *wire, Attempt: 2, ProviderID: "p-1"})
	if err != nil {
		t.Fatal(err)
	}
	return wire, got
}

func TestEnvelopeModes(t *testing.T) {
	base := func(nattrs int) *herald.Message {
		attrs := map[string]string{}
		for i := range nattrs {
			attrs[string(rune('a'+i))] = "välue ✓"
		}
		return &herald.Message{
			ID: "id-1", Type: "OrderPlaced", Source: "/checkout", Subject: "order-7",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), ContentType: "application/json",
			Data: []byte{0, 0xff, '{'}, Attributes: attrs, OrderingKey: "cust-9",
		}
	}
	for _, tc := range []struct {
		name       string
		maxAttrs   int
		attrs      int
		ask        bool
		structured bool
	}{
		{"binary, no limit", 0, 20, false, false},
		{"binary, fits 10", 10, 2, false, false},
		{"structured, over 10", 10, 3, false, true},
		{"structured, asked for", 10, 0, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := base(tc.attrs)
			wire, got := roundTrip(t, providers.Limits{MaxAttributes: tc.maxAttrs, Structured: tc.ask}, want)
			if tc.structured != (len(wire.Attributes) == 0) {
				t.Fatalf("structured mode = %v, want %v (attributes %v)", len(wire.Attributes) == 0,
					tc.structured, wire.Attributes)
			}
			if tc.structured && !json.Valid(wire.Body) {
				t.Fatalf("structured body is not JSON: %s", wire.Body)
			}
			if tc.maxAttrs > 0 && len(wire.Attributes) > tc.maxAttrs {
				t.Fatalf("%d attributes sent, the limit is %d", len(wire.Attributes), tc.maxAttrs)
			}
			if got.ID != want.ID || got.Type != want.Type || got.Source != want.Source ||
				got.Subject != want.Subject || !got.Time.Equal(want.Time) ||
				got.ContentType != want.ContentType || !bytes.Equal(got.Data, want.Data) ||
				!(maps.Equal(got.Attributes, want.Attributes) || len(got.Attributes)+len(want.Attributes) == 0) ||
				got.OrderingKey != want.OrderingKey {
				t.Fatalf("decoded %+v, want %+v", got, want)
			}
			if got.Attempt != 2 || got.ProviderID != "p-1" {
				t.Fatalf("delivery facts %d %q not carried", got.Attempt, got.ProviderID)
			}
		})
	}
}

func TestDecodeRejectsWhatIsNotAnEnvelope(t *testing.T) {
	for name, d := range map[string]providers.Message{
		"plain text":      {Body: []byte("hello")},
		"json, no spec":   {Body: []byte(`{"id":"1","type":"T"}`)},
		"wrong version":   {Attributes: map[string]string{"ce-specversion": "0.3", "ce-id": "1", "ce-type": "T"}},
		"no type":         {Attributes: map[string]string{"ce-specversion": "1.0", "ce-id": "1"}},
		"bad time":        {Attributes: map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-type": "T", "ce-time": "yesterday"}},
		"truncated json":  {Body: []byte(`{"specversion":"1.0","id":"1"`)},
		"empty":           {},
		"bad base64 data": {Body: []byte(`{"specversion":"1.0","id":"1","type":"T","data_base64":"!!"}`)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := herald.Decode(&providers.Delivery{Message: d})
			if !errors.Is(err, herald.ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","type":"T","data_base64":"AAE="}`), "1.0", "x")
	f.Add([]byte("hello"), "", "")
	f.Add([]byte{}, "1.0", "")
	f.Fuzz(func(t *testing.T, body []byte, spec, id string) {
		d := &providers.Delivery{Message: providers.Message{Body: body}}
		if spec != "" {
			d.Attributes = map[string]string{"ce-specversion": spec, "ce-id": id, "ce-type": "T"}
		}
		m, err := herald.Decode(d)
		if err == nil && (m.ID == "" || m.Type == "") {
			t.Fatalf("decoded a message without ID or type: %+v", m)
		}
		if err != nil && !errors.Is(err, herald.ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
	})
}
