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
			t, err := time.Parse(time.RFC3339Nano, v)
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
		t, err := time.Parse(time.RFC3339Nano, s.Time)
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
