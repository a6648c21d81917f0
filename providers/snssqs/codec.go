package snssqs

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seed06bc8277/herald/providers"
)

// What travels is text: SNS and SQS take bodies and attribute values made
// of XML characters only, and refuse empty ones. herald's messages carry
// any bytes, so the driver marks what it had to change in an attribute's
// data type, "String.herald-" followed by flags:
//
//	e  this attribute's value is empty (it travels as "-")
//	b  the body is base64 (standard encoding)
//	z  the body is empty (it travels as "-")
//
// The body flags ride on the attribute with the smallest name, or on an
// attribute "herald-body" added when the message has none. Custom data
// types cost no attribute slot and survive SNS to SQS, raw or not.
const (
	typePrefix   = attrTypeString + ".herald-"
	bodyCarrier  = "herald-body"
	placeholder  = "-"
	flagEmpty    = 'e'
	flagBase64   = 'b'
	flagNoBody   = 'z'
	overflowAttr = "herald-more" // attributes past the 10th, as JSON (dead letters only)
)

// wire is a message as it travels.
type wire struct {
	body  string
	attrs map[string]attr
	size  int // as SNS counts it: body, and name + data type + value per attribute
}

type attr struct{ typ, val string }

// encode turns a driver message into what SNS or SQS takes. It refuses
// with ErrInvalid more than 10 attributes, unless overflow allows folding
// the rest into one attribute (dead letters, which gain attributes), and
// attribute names or values that SNS refuses.
func encode(m *providers.Message, overflow bool) (wire, error) {
	attrs := m.Attributes
	if len(attrs) > MaxAttributes {
		if !overflow {
			return wire{}, fmt.Errorf("%w: %d attributes; SNS and SQS carry at most %d",
				providers.ErrInvalid, len(attrs), MaxAttributes)
		}
		attrs = fold(attrs)
	}
	w := wire{attrs: make(map[string]attr, len(attrs)+1)}
	for name, val := range attrs {
		if err := checkName(name); err != nil {
			return wire{}, err
		}
		if val != "" && !validText(val) {
			return wire{}, fmt.Errorf("%w: attribute %q has characters SNS refuses "+
				"(want UTF-8 text without control characters)", providers.ErrInvalid, name)
		}
		a := attr{typ: attrTypeString, val: val}
		if val == "" {
			a = attr{typ: typePrefix + string(flagEmpty), val: placeholder}
		}
		w.attrs[name] = a
	}

	var flag byte
	switch {
	case len(m.Body) == 0:
		w.body, flag = placeholder, flagNoBody
	case validText(m.Body):
		w.body = string(m.Body)
	default:
		w.body, flag = base64.StdEncoding.EncodeToString(m.Body), flagBase64
	}
	if flag != 0 {
		carrier := bodyCarrier
		if len(w.attrs) > 0 {
			carrier = slices.Min(keys(w.attrs))
		}
		a, ok := w.attrs[carrier]
		if !ok {
			a = attr{typ: typePrefix, val: placeholder}
		}
		if a.typ == attrTypeString {
			a.typ = typePrefix
		}
		a.typ += string(flag)
		w.attrs[carrier] = a
	}

	w.size = len(w.body)
	for name, a := range w.attrs {
		w.size += len(name) + len(a.typ) + len(a.val)
	}
	return w, nil
}

// fold keeps 9 attributes (herald's own first) and packs the rest into
// overflowAttr, so that a dead letter of a message with 10 attributes
// still fits.
func fold(attrs map[string]string) map[string]string {
	names := keys(attrs)
	slices.SortFunc(names, func(a, b string) int {
		ha, hb := strings.HasPrefix(a, "herald-"), strings.HasPrefix(b, "herald-")
		if ha != hb {
			if ha {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	out := make(map[string]string, MaxAttributes)
	rest := make(map[string]string, len(names)-MaxAttributes+1)
	for i, n := range names {
		if i < MaxAttributes-1 {
			out[n] = attrs[n]
		} else {
			rest[n] = attrs[n]
		}
	}
	b, _ := json.Marshal(rest) // a map of strings cannot fail
	out[overflowAttr] = string(b)
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkName applies SNS's rules for attribute names: 1 to 256 of letters,
// digits, '-', '_' and '.', no leading, trailing or doubled '.', and not
// starting with "AWS." or "Amazon." in any case.
func checkName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: attribute name %q %s", providers.ErrInvalid, name, why)
	}
	if name == "" || len(name) > 256 {
		return bad("must be 1 to 256 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' ||
			'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return bad("may hold only letters, digits, '-', '_' and '.'")
		}
	}
	if name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return bad("may not start or end with '.' or hold \"..\"")
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") {
		return bad("may not start with \"AWS.\" or \"Amazon.\" (reserved by AWS)")
	}
	return nil
}

// validText reports whether s is non-empty text that SNS and SQS accept:
// UTF-8 of #x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF.
func validText[S string | []byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && n <= 1 || r >= 0xD800 && r < 0xE000 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += n
	}
	return true
}

// snsAttributes returns the wire attributes in SNS's type.
func (w *wire) snsAttributes() map[string]snstypes.MessageAttributeValue {
	if len(w.attrs) == 0 {
		return nil
	}
	out := make(map[string]snstypes.MessageAttributeValue, len(w.attrs))
	for name, a := range w.attrs {
		out[name] = snstypes.MessageAttributeValue{DataType: &a.typ, StringValue: &a.val}
	}
	return out
}

// sqsAttributes returns the wire attributes in SQS's type.
func (w *wire) sqsAttributes() map[string]sqstypes.MessageAttributeValue {
	if len(w.attrs) == 0 {
		return nil
	}
	out := make(map[string]sqstypes.MessageAttributeValue, len(w.attrs))
	for name, a := range w.attrs {
		out[name] = sqstypes.MessageAttributeValue{DataType: &a.typ, StringValue: &a.val}
	}
	return out
}

// decoded is a received message, read back into herald's form.
type decoded struct {
	body  []byte
	attrs map[string]string
}

// decodeWire undoes encode, whether the attributes came from SQS (raw
// delivery) or from an SNS notification's JSON.
func decodeWire(body string, attrs map[string]attr) (decoded, error) {
	var out decoded
	var bodyFlags string
	if len(attrs) > 0 {
		out.attrs = make(map[string]string, len(attrs))
	}
	for name, a := range attrs {
		val := a.val
		if flags, ok := strings.CutPrefix(a.typ, typePrefix); ok {
			if strings.IndexByte(flags, flagEmpty) >= 0 {
				val = ""
			}
			bodyFlags += flags
		}
		if name == bodyCarrier {
			continue
		}
		if name == overflowAttr {
			var rest map[string]string
			if err := json.Unmarshal([]byte(val), &rest); err != nil {
				return decoded{}, fmt.Errorf("attribute %s: %v", overflowAttr, err)
			}
			for k, v := range rest {
				out.attrs[k] = v
			}
			continue
		}
		out.attrs[name] = val
	}
	switch {
	case strings.IndexByte(bodyFlags, flagNoBody) >= 0:
		out.body = []byte{}
	case strings.IndexByte(bodyFlags, flagBase64) >= 0:
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return decoded{}, fmt.Errorf("base64 body: %v", err)
		}
		out.body = b
	default:
		out.body = []byte(body)
	}
	return out, nil
}

// fromSQS reads a received SQS message: raw delivery, or an SNS
// notification when the subscription is not raw.
func fromSQS(m *sqstypes.Message) (decoded, error) {
	body := ""
	if m.Body != nil {
		body = *m.Body
	}
	if len(m.MessageAttributes) == 0 {
		if n, ok := notification(body); ok {
			return decodeWire(n.body, n.attrs)
		}
	}
	attrs := make(map[string]attr, len(m.MessageAttributes))
	for name, v := range m.MessageAttributes {
		a := attr{typ: deref(v.DataType)}
		if v.StringValue != nil {
			a.val = *v.StringValue
		} else if v.BinaryValue != nil {
			a.val = string(v.BinaryValue)
		}
		attrs[name] = a
	}
	return decodeWire(body, attrs)
}

// notification reads the JSON that SNS delivers to a subscription without
// raw delivery: {"Type":"Notification","TopicArn":...,"Message":...,
// "MessageAttributes":{"name":{"Type":...,"Value":...}}}.
func notification(body string) (notified, bool) {
	var out notified
	if !strings.HasPrefix(body, "{") || !strings.Contains(body, `"Notification"`) {
		return out, false
	}
	var n struct {
		Type              string
		TopicArn          string
		Message           *string
		MessageAttributes map[string]struct{ Type, Value string }
	}
	if json.Unmarshal([]byte(body), &n) != nil || n.Type != "Notification" ||
		n.TopicArn == "" || n.Message == nil {
		return out, false
	}
	out.body = *n.Message
	out.attrs = make(map[string]attr, len(n.MessageAttributes))
	for name, v := range n.MessageAttributes {
		a := attr{typ: v.Type, val: v.Value}
		if strings.HasPrefix(v.Type, "Binary") {
			if b, err := base64.StdEncoding.DecodeString(v.Value); err == nil {
				a.val = string(b)
			}
		}
		out.attrs[name] = a
	}
	return out, true
}

// notified is the message inside an SNS notification.
type notified struct {
	body  string
	attrs map[string]attr
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// receiveCount reads ApproximateReceiveCount; 1 when SQS gave none.
func receiveCount(m *sqstypes.Message) int {
	const name = sqstypes.MessageSystemAttributeNameApproximateReceiveCount
	n, err := strconv.Atoi(m.Attributes[string(name)])
	if err != nil || n < 1 {
		return 1
	}
	return n
}
