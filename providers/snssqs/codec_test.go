package snssqs

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"testing"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seed06bc8277/herald/providers"
)

// travel sends w through a simulated raw SQS delivery and through an SNS
// notification, and decodes both.
func travel(t *testing.T, w wire) (raw, notified decoded) {
	t.Helper()
	m := sqstypes.Message{Body: &w.body, MessageAttributes: w.sqsAttributes()}
	raw, err := fromSQS(&m)
	if err != nil {
		t.Fatalf("decode raw: %v", err)
	}
	type attrJSON struct{ Type, Value string }
	n := struct {
		Type, MessageId, TopicArn, Message string
		MessageAttributes                  map[string]attrJSON
	}{Type: "Notification", MessageId: "1", TopicArn: "arn:aws:sns:r:0:t", Message: w.body,
		MessageAttributes: map[string]attrJSON{}}
	for name, a := range w.attrs {
		n.MessageAttributes[name] = attrJSON{a.typ, a.val}
	}
	b, _ := json.Marshal(n)
	s := string(b)
	notified, err = fromSQS(&sqstypes.Message{Body: &s})
	if err != nil {
		t.Fatalf("decode notification: %v", err)
	}
	return raw, notified
}

func FuzzCodecRoundTrip(f *testing.F) {
	f.Add([]byte("text"), "v", "")
	f.Add([]byte{}, "", "")
	f.Add([]byte{0, 0xff}, "x", "y")
	f.Add([]byte("\x00"), "", "ü")
	f.Add([]byte("{\"Type\":\"Notification\"}"), "a", "b")
	f.Add([]byte("-"), "-", "-")
	f.Add([]byte("\uFFFE\uFFFF"), "\t", "\r\n")
	f.Fuzz(func(t *testing.T, body []byte, v1, v2 string) {
		m := &providers.Message{Body: body, Attributes: map[string]string{"a": v1, "b": v2}}
		if len(body)%2 == 0 {
			m.Attributes = nil
		}
		w, err := encode(m, false)
		if err != nil {
			if !errors.Is(err, providers.ErrInvalid) || validText(v1) && validText(v2) ||
				len(m.Attributes) == 0 {
				t.Fatalf("encode: %v", err)
			}
			return // a value SNS refuses is refused
		}
		if !validText(w.body) {
			t.Fatalf("wire body %q is not text SNS takes", w.body)
		}
		for name, a := range w.attrs {
			if !validText(a.val) {
				t.Fatalf("wire attribute %s=%q is not text SNS takes", name, a.val)
			}
		}
		raw, notified := travel(t, w)
		for _, got := range []decoded{raw, notified} {
			if !bytes.Equal(got.body, body) || (len(got.body) == 0) != (len(body) == 0) {
				t.Fatalf("body %q came back as %q", body, got.body)
			}
			if !maps.Equal(got.attrs, m.Attributes) {
				t.Fatalf("attributes %q came back as %q", m.Attributes, got.attrs)
			}
		}
	})
}

func TestDeadLetterAttributesFoldPastTen(t *testing.T) {
	attrs := tenAttrs()
	with := providers.WithDeadLetter(attrs, providers.DeadLetter{Reason: "permanent"}, MaxAttributes)
	if len(with) != 11 {
		t.Fatalf("WithDeadLetter gave %d attributes, want 11 (10 + packed)", len(with))
	}
	_, err := encode(&providers.Message{Body: []byte("x"), Attributes: with}, false)
	if !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("11 attributes without overflow: %v, want ErrInvalid", err)
	}
	w, err := encode(&providers.Message{Body: []byte("x"), Attributes: with}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.attrs) != MaxAttributes {
		t.Fatalf("folded to %d attributes, want %d", len(w.attrs), MaxAttributes)
	}
	if _, ok := w.attrs[providers.AttrDeadLetterPacked]; !ok {
		t.Errorf("the reason was folded away: %v", w.attrs)
	}
	raw, _ := travel(t, w)
	if !maps.Equal(raw.attrs, with) {
		t.Errorf("folded attributes came back as %v, want %v", raw.attrs, with)
	}
}

func TestCheckName(t *testing.T) {
	long := string(bytes.Repeat([]byte("n"), 256))
	for _, ok := range []string{"a", "ce-id", "herald-dl", "x.y", "A_b-9", long} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "AWS.x", "amazon.y", "a b", "ü",
		long + "n"} {
		if err := checkName(bad); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("checkName(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
