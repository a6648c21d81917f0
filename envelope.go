package herald

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// The envelope travels in one of two CloudEvents 1.0 modes:
//
//   - binary: Data is the body; the CloudEvents attributes travel as
//     message attributes named "ce-<attribute>" (ce-id, ce-type, ...)
//     beside the application's own attributes;
//   - structured: the body is a CloudEvents JSON object
//     (application/cloudevents+json) with Data in "data_base64", so that
//     any bytes survive, and the application's attributes in the object
//     member "heraldattributes"; the message carries no attributes.
//
// Publish uses binary mode unless the provider asks for structured mode or
// has too few attribute slots (SNS and SQS: see providers.Limits), and
// Decode reads both, so consumers never need to know which mode a producer
// used.
const (
	ceSpecVersion = "ce-specversion"
	ceID          = "ce-id"
	ceType        = "ce-type"
	ceSource      = "ce-source"
	ceTime        = "ce-time"
	ceSubject     = "ce-subject"
	ceContentType = "ce-datacontenttype"
	// cePartitionKey is the CloudEvents partitioning extension, carrying
	// the ordering key on providers that have no slot of their own.
	cePartitionKey = "ce-partitionkey"

	specVersion = "1.0"
)

// ErrMalformed is wrapped by Decode's errors: the message is not a herald
// envelope. The consumer dead-letters such messages with reason
// "malformed" without calling the handler.
var ErrMalformed = errors.New("herald: malformed message")

// structured is the CloudEvents JSON form of the envelope.
type structured struct {
	SpecVersion  string            `json:"specversion"`
	ID           string            `json:"id"`
	Type         string            `json:"type"`
	Source       string            `json:"source"`
	Time         string            `json:"time,omitempty"`
	Subject      string            `json:"subject,omitempty"`
	ContentType  string            `json:"datacontenttype,omitempty"`
	PartitionKey string            `json:"partitionkey,omitempty"`
	DataBase64   []byte            `json:"data_base64,omitempty"`
	Attributes   map[string]string `json:"heraldattributes,omitempty"`
}

// envelopeAttributes counts the ce-* attributes binary mode uses for m.
func envelopeAttributes(m *Message) int {
	n := 5 // specversion, id, type, source, time
	if m.Subject != "" {
		n++
	}
	if m.ContentType != "" {
		n++
	}
	if m.OrderingKey != "" {
		n++
	}
	return n
}

// encode turns a validated message into what a driver sends: binary mode
// when the provider's attribute limit leaves room, structured mode when it
// does not or when the provider asks for it.
func encode(m *Message, l providers.Limits) *providers.Message {
	out := &providers.Message{ID: m.ID, OrderingKey: m.OrderingKey}
	n := envelopeAttributes(m)
	if l.Structured || (l.MaxAttributes > 0 && n+len(m.Attributes) > l.MaxAttributes) {
		s := structured{
			SpecVersion:  specVersion,
			ID:           m.ID,
			Type:         m.Type,
			Source:       m.Source,
			Time:         m.Time.UTC().Format(time.RFC3339Nano),
			Subject:      m.Subject,
			ContentType:  m.ContentType,
			PartitionKey: m.OrderingKey,
			DataBase64:   m.Data,
			Attributes:   m.Attributes,
		}
		out.Body, _ = json.Marshal(&s) // strings, bytes and a string map cannot fail
		return out
	}

	attrs := make(map[string]string, n+len(m.Attributes))
	for k, v := range m.Attributes {
		attrs[k] = v
	}
	attrs[ceSpecVersion] = specVersion
	attrs[ceID] = m.ID
	attrs[ceType] = m.Type
	attrs[ceSource] = m.Source
	attrs[ceTime] = m.Time.UTC().Format(time.RFC3339Nano)
	if m.Subject != "" {
		attrs[ceSubject] = m.Subject
	}
	if m.ContentType != "" {
		attrs[ceContentType] = m.ContentType
	}
	if m.OrderingKey != "" {
		attrs[cePartitionKey] = m.OrderingKey
	}
	out.Body = m.Data
	out.Attributes = attrs
	return out
}

// Decode reads herald's envelope from a delivered message, in binary or
// structured mode. Attributes whose names start with "herald-" belong to
// herald (dead-letter reasons, redrive targets) and are not returned. The
// error wraps ErrMalformed when the message is not an envelope.
func Decode(d *providers.Delivery) (*Message, error) {
	m := new(Message)
	if err := decodeInto(m, d); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeInto is Decode into a Message the caller provides.
func decodeInto(m *Message, d *providers.Delivery) error {
	m.Attempt, m.ProviderID, m.LeaseUntil = d.Attempt, d.ProviderID, d.LeaseUntil
	if d.Attributes[ceSpecVersion] != "" {
		if err := decodeBinary(m, d); err != nil {
			return err
		}
	} else if err := decodeStructured(m, d); err != nil {
		return err
	}
	if m.OrderingKey == "" {
		m.OrderingKey = d.OrderingKey
	}
	if m.ID == "" || m.Type == "" {
		return fmt.Errorf("%w: id and type are required", ErrMalformed)
	}
	return nil
}

func decodeBinary(m *Message, d *providers.Delivery) error {
	if v := d.Attributes[ceSpecVersion]; v != specVersion {
		return fmt.Errorf("%w: specversion %q, want %q", ErrMalformed, v, specVersion)
	}
	user := 0
	for k, v := range d.Attributes {
		switch k {
		case ceSpecVersion:
		case ceID:
			m.ID = v
		case ceType:
			m.Type = v
		case ceSource:
			m.Source = v
		case ceTime:
			t, err := parseTime(v)
			if err != nil {
				return fmt.Errorf("%w: time %q: %v", ErrMalformed, v, err)
			}
			m.Time = t
		case ceSubject:
			m.Subject = v
		case ceContentType:
			m.ContentType = v
		case cePartitionKey:
			m.OrderingKey = v
		default:
			if !strings.HasPrefix(k, "herald-") {
				user++
			}
		}
	}
	if user > 0 {
		m.Attributes = make(map[string]string, user)
		for k, v := range d.Attributes {
			if !strings.HasPrefix(k, "ce-") && !strings.HasPrefix(k, "herald-") {
				m.Attributes[k] = v
			}
		}
	}
	m.Data = d.Body
	return nil
}

func decodeStructured(m *Message, d *providers.Delivery) error {
	if len(d.Body) == 0 || d.Body[0] != '{' {
		return fmt.Errorf("%w: no ce-specversion attribute and the body is not a JSON event",
			ErrMalformed)
	}
	var s structured
	if err := json.Unmarshal(d.Body, &s); err != nil {
		return fmt.Errorf("%w: structured event: %v", ErrMalformed, err)
	}
	if s.SpecVersion != specVersion {
		return fmt.Errorf("%w: specversion %q, want %q", ErrMalformed, s.SpecVersion, specVersion)
	}
	m.ID, m.Type, m.Source = s.ID, s.Type, s.Source
	m.Subject, m.ContentType, m.OrderingKey = s.Subject, s.ContentType, s.PartitionKey
	m.Data, m.Attributes = s.DataBase64, s.Attributes
	if s.Time != "" {
		t, err := parseTime(s.Time)
		if err != nil {
			return fmt.Errorf("%w: time %q: %v", ErrMalformed, s.Time, err)
		}
		m.Time = t
	}
	if m.Data == nil {
		m.Data = []byte{}
	}
	return nil
}

// parseTime parses an RFC 3339 time. The form herald writes, UTC with a
// "Z" and up to nine fraction digits, is read directly, since every
// delivery carries one; any other form goes through time.Parse.
func parseTime(v string) (time.Time, error) {
	if len(v) < len("2006-01-02T15:04:05Z") || len(v) > len("2006-01-02T15:04:05.999999999Z") ||
		v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' ||
		v[len(v)-1] != 'Z' {
		return time.Parse(time.RFC3339Nano, v)
	}
	num := func(s string) (int, bool) {
		n := 0
		for i := 0; i < len(s); i++ {
			c := s[i] - '0'
			if c > 9 {
				return 0, false
			}
			n = n*10 + int(c)
		}
		return n, true
	}
	year, ok1 := num(v[0:4])
	month, ok2 := num(v[5:7])
	day, ok3 := num(v[8:10])
	hour, ok4 := num(v[11:13])
	minute, ok5 := num(v[14:16])
	sec, ok6 := num(v[17:19])
	nsec, ok7 := 0, true
	if frac := v[19 : len(v)-1]; frac != "" {
		if len(frac) < 2 || frac[0] != '.' {
			return time.Parse(time.RFC3339Nano, v)
		}
		nsec, ok7 = num(frac[1:])
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		// Out of range or not digits: time.Parse says what is wrong.
		return time.Parse(time.RFC3339Nano, v)
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), nil
}

// daysIn is the number of days in month m of year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
