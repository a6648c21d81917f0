package servicebus

import (
	"errors"
	"time"
)

// Message section descriptors (OASIS AMQP 1.0, part 3.2).
const (
	secHeader       = 0x70
	secDeliveryAnn  = 0x71
	secMessageAnn   = 0x72
	secProperties   = 0x73
	secAppProps     = 0x74
	secData         = 0x75
	secFooter       = 0x78
	batchFormat     = 0x80013700
	msgStateDefer   = 1
	msgStateSchedul = 2
)

// Annotation keys Service Bus reads or writes.
const (
	annLockToken      symbol = "x-opt-lock-token"
	annLockedUntil    symbol = "x-opt-locked-until"
	annSequence       symbol = "x-opt-sequence-number"
	annEnqueued       symbol = "x-opt-enqueued-time"
	annEnqueueSeq     symbol = "x-opt-enqueue-sequence-number"
	annDLSource       symbol = "x-opt-deadletter-source"
	annScheduledTime  symbol = "x-opt-scheduled-enqueue-time"
	annMessageState   symbol = "x-opt-message-state"
	propDLReason             = "DeadLetterReason"
	propDLDescription        = "DeadLetterErrorDescription"
)

// message is one message held by the broker. The parsed parts are never
// modified after parse except through copy-on-write in withProps, so that
// the copies a topic fans out can share them.
type message struct {
	durable     bool
	priority    any // ubyte or nil
	ttl         time.Duration
	annotations amqpMap // the sender's message annotations
	props       fields  // properties section fields, nil when absent
	propsRaw    []byte  // properties section as received
	appProps    amqpMap
	appRaw      []byte // application-properties as received; nil once changed
	body        []byte // body sections and footer as received
	size        int

	seq           int64
	enqueued      time.Time
	expiresAt     time.Time // zero: never
	deliveryCount uint32    // failed deliveries so far (header delivery-count)
	scheduledAt   time.Time // zero: not scheduled
	state         int       // 0 active, msgStateDefer, msgStateSchedul
	lockToken     uuid
	lockedUntil   time.Time
}

var errNotMessage = errors.New("amqp: message section is not a described type")

// parseMessage splits an encoded message into the parts the broker reads
// and the raw bytes it passes through.
func parseMessage(b []byte) (*message, error) {
	m := &message{size: len(b)}
	pos := 0
	for pos < len(b) {
		v, n, err := decodeValue(b[pos:])
		if err != nil {
			return nil, err
		}
		d, ok := v.(described)
		if !ok {
			return nil, errNotMessage
		}
		code, _ := descriptorCode(d.Descriptor)
		switch code {
		case secHeader:
			f, _ := d.Value.(list)
			hf := fields(f)
			m.durable = hf.boolean(0)
			m.priority = hf.get(1)
			if ms, ok := hf.u32(2); ok {
				m.ttl = time.Duration(ms) * time.Millisecond
			}
		case secDeliveryAnn:
		case secMessageAnn:
			m.annotations, _ = d.Value.(amqpMap)
		case secProperties:
			f, _ := d.Value.(list)
			m.props = fields(f)
			m.propsRaw = b[pos : pos+n]
		case secAppProps:
			m.appProps, _ = d.Value.(amqpMap)
			m.appRaw = b[pos : pos+n]
		default:
			m.body = b[pos:]
			return m, nil
		}
		pos += n
	}
	return m, nil
}

// splitBatch returns the messages inside a batch (message format
// 0x80013700): each data section of the envelope is one encoded message.
func splitBatch(b []byte) ([]*message, error) {
	var out []*message
	pos := 0
	for pos < len(b) {
		v, n, err := decodeValue(b[pos:])
		if err != nil {
			return nil, err
		}
		pos += n
		d, ok := v.(described)
		if !ok {
			return nil, errNotMessage
		}
		if code, _ := descriptorCode(d.Descriptor); code != secData {
			continue
		}
		inner, ok := d.Value.([]byte)
		if !ok {
			return nil, errNotMessage
		}
		m, err := parseMessage(inner)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// clone returns a copy that shares the immutable parts.
func (m *message) clone() *message {
	c := *m
	return &c
}

// withProps merges properties into the application properties, copying
// them first so that other copies of the message are not touched.
func (m *message) withProps(set amqpMap) {
	if len(set) == 0 {
		return
	}
	merged := make(amqpMap, len(m.appProps), len(m.appProps)+len(set))
	copy(merged, m.appProps)
	for _, p := range set {
		if s, ok := p.Key.(symbol); ok {
			p.Key = string(s)
		}
		merged = merged.Set(p.Key, p.Value)
	}
	m.appProps, m.appRaw = merged, nil
}

// prop returns a properties field (0 message-id .. 12 reply-to-group-id).
func (m *message) prop(i int) any { return m.props.get(i) }

// scheduledTime returns the x-opt-scheduled-enqueue-time annotation.
func (m *message) scheduledTime() (time.Time, bool) {
	t, ok := m.annotations.Get(annScheduledTime).(time.Time)
	return t, ok
}

// encode returns the message as delivered: a fresh header, the lock token
// as delivery annotation (peek-lock), the sender's annotations plus the
// broker's, then the sections as received.
func (m *message) encode(b []byte, token *uuid, lockedUntil time.Time) []byte {
	var ttl any
	if m.ttl > 0 && m.ttl/time.Millisecond <= 0xffffffff {
		ttl = uint32(m.ttl / time.Millisecond)
	}
	b = appendValue(b, described{uint64(secHeader),
		trim(list{m.durable, m.priority, ttl, nil, m.deliveryCount})})
	if token != nil {
		b = appendValue(b, described{uint64(secDeliveryAnn), amqpMap{{annLockToken, *token}}})
	}

	ann := make(amqpMap, 0, len(m.annotations)+6)
	for _, p := range m.annotations {
		switch p.Key {
		case annLockedUntil, annSequence, annEnqueued, annEnqueueSeq, annDLSource, annMessageState:
			continue
		}
		ann = append(ann, p)
	}
	ann = append(ann, pair{annEnqueued, m.enqueued}, pair{annSequence, m.seq},
		pair{annEnqueueSeq, m.seq})
	if token != nil {
		ann = append(ann, pair{annLockedUntil, lockedUntil})
	}
	if m.state != 0 {
		ann = append(ann, pair{annMessageState, int64(m.state)})
	}
	b = appendValue(b, described{uint64(secMessageAnn), ann})

	if m.propsRaw != nil {
		b = append(b, m.propsRaw...)
	} else {
		b = appendValue(b, described{uint64(secProperties), list{}})
	}
	switch {
	case m.appRaw != nil:
		b = append(b, m.appRaw...)
	case m.appProps != nil:
		b = appendValue(b, described{uint64(secAppProps), m.appProps})
	}
	return append(b, m.body...)
}

// encodeReply encodes a $cbs or $management response: properties,
// application properties and the body as built by the handler.
func (m *message) encodeReply() []byte {
	b := append([]byte(nil), m.propsRaw...)
	b = appendValue(b, described{uint64(secAppProps), m.appProps})
	return append(b, m.body...)
}
