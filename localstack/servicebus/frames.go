package servicebus

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Descriptor codes of the AMQP 1.0 performatives and types the emulator
// reads or writes (OASIS AMQP 1.0, parts 2, 3 and 5).
const (
	codeOpen        = 0x10
	codeBegin       = 0x11
	codeAttach      = 0x12
	codeFlow        = 0x13
	codeTransfer    = 0x14
	codeDisposition = 0x15
	codeDetach      = 0x16
	codeEnd         = 0x17
	codeClose       = 0x18
	codeError       = 0x1d
	codeReceived    = 0x23
	codeAccepted    = 0x24
	codeRejected    = 0x25
	codeReleased    = 0x26
	codeModified    = 0x27
	codeSource      = 0x28
	codeTarget      = 0x29

	codeSASLMechanisms = 0x40
	codeSASLInit       = 0x41
	codeSASLOutcome    = 0x44
)

// Frame types.
const (
	frameAMQP = 0x00
	frameSASL = 0x01
)

// Error conditions the emulator sends (OASIS AMQP 1.0, 2.8.15 onwards, and
// the com.microsoft conditions Service Bus adds).
const (
	condInternal          symbol = "amqp:internal-error"
	condNotFound          symbol = "amqp:not-found"
	condDecode            symbol = "amqp:decode-error"
	condNotAllowed        symbol = "amqp:not-allowed"
	condNotImplemented    symbol = "amqp:not-implemented"
	condInvalidField      symbol = "amqp:invalid-field"
	condFramingError      symbol = "amqp:connection:framing-error"
	condUnattachedHandle  symbol = "amqp:session:unattached-handle"
	condHandleInUse       symbol = "amqp:session:handle-in-use"
	condWindowViolation   symbol = "amqp:session:window-violation"
	condMessageSize       symbol = "amqp:link:message-size-exceeded"
	condLockLost          symbol = "com.microsoft:message-lock-lost"
	condDeadLetter        symbol = "com.microsoft:dead-letter"
	condSessionsNotFound  symbol = "com.microsoft:session-cannot-be-locked"
	condDetachForced      symbol = "amqp:link:detach-forced"
	condConnectionForced  symbol = "amqp:connection:forced"
	condResourceExhausted symbol = "amqp:resource-limit-exceeded"
)

// amqpError is the AMQP error type (0x1d).
type amqpError struct {
	Condition   symbol
	Description string
	Info        amqpMap
}

func (e *amqpError) Error() string { return string(e.Condition) + ": " + e.Description }

func (e *amqpError) value() any {
	if e == nil {
		return nil
	}
	var info any
	if e.Info != nil {
		info = e.Info
	}
	return described{uint64(codeError), trim(list{e.Condition, e.Description, info})}
}

func newError(cond symbol, format string, args ...any) *amqpError {
	return &amqpError{Condition: cond, Description: fmt.Sprintf(format, args...)}
}

// parseError reads an error field; anything but a described error list
// is treated as absent.
func parseError(v any) *amqpError {
	f, code, ok := composite(v)
	if !ok || code != codeError {
		return nil
	}
	e := &amqpError{}
	e.Condition, _ = f.get(0).(symbol)
	e.Description, _ = f.get(1).(string)
	e.Info, _ = f.get(2).(amqpMap)
	return e
}

// fields is the field list of a composite type.
type fields list

func (f fields) get(i int) any {
	if i < len(f) {
		return f[i]
	}
	return nil
}

// u32 reads an unsigned field of any width; ok is false when it is null
// or of another type.
func (f fields) u32(i int) (uint32, bool) {
	switch x := f.get(i).(type) {
	case uint8:
		return uint32(x), true
	case uint16:
		return uint32(x), true
	case uint32:
		return x, true
	case uint64:
		if x <= 0xffffffff {
			return uint32(x), true
		}
	}
	return 0, false
}

func (f fields) u32p(i int) *uint32 {
	if v, ok := f.u32(i); ok {
		return &v
	}
	return nil
}

func (f fields) boolean(i int) bool {
	b, _ := f.get(i).(bool)
	return b
}

// composite splits a described list into its fields and ulong code.
func composite(v any) (fields, uint64, bool) {
	d, ok := v.(described)
	if !ok {
		return nil, 0, false
	}
	code, ok := descriptorCode(d.Descriptor)
	if !ok {
		return nil, 0, false
	}
	switch l := d.Value.(type) {
	case list:
		return fields(l), code, true
	case nil:
		return nil, code, true
	}
	return nil, code, false
}

// symbolic maps the symbolic descriptors of the types above to codes.
var symbolic = map[symbol]uint64{
	"amqp:open:list": codeOpen, "amqp:begin:list": codeBegin,
	"amqp:attach:list": codeAttach, "amqp:flow:list": codeFlow,
	"amqp:transfer:list": codeTransfer, "amqp:disposition:list": codeDisposition,
	"amqp:detach:list": codeDetach, "amqp:end:list": codeEnd,
	"amqp:close:list": codeClose, "amqp:error:list": codeError,
	"amqp:accepted:list": codeAccepted, "amqp:rejected:list": codeRejected,
	"amqp:released:list": codeReleased, "amqp:modified:list": codeModified,
	"amqp:source:list": codeSource, "amqp:target:list": codeTarget,
}

func descriptorCode(d any) (uint64, bool) {
	switch x := d.(type) {
	case uint64:
		return x, true
	case symbol:
		c, ok := symbolic[x]
		return c, ok
	}
	return 0, false
}

// trim drops trailing nulls, which the spec treats as absent fields.
func trim(l list) list {
	for len(l) > 0 && l[len(l)-1] == nil {
		l = l[:len(l)-1]
	}
	return l
}

// perf builds a described performative.
func perf(code uint64, l list) described {
	return described{code, trim(l)}
}

// frameHeaderSize is the size of the fixed frame header; the emulator
// always writes data offset 2 and accepts larger offsets on input.
const frameHeaderSize = 8

// appendFrame appends one frame carrying body (a performative) and the
// payload that follows it (transfers only).
func appendFrame(b []byte, typ byte, channel uint16, body any, payload []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	if body != nil {
		b = appendValue(b, body)
	}
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// frame is one decoded incoming frame.
type frame struct {
	typ     byte
	channel uint16
	code    uint64 // performative; 0 for an empty (heartbeat) frame
	fields  fields
	payload []byte // bytes after the performative (transfer payload)
}

var errEmptyBody = errors.New("amqp: frame body is not a performative")

// parseFrame decodes a frame whose 8-byte header is hdr and whose
// remaining bytes are rest.
func parseFrame(hdr [8]byte, rest []byte) (frame, error) {
	f := frame{typ: hdr[5], channel: binary.BigEndian.Uint16(hdr[6:])}
	doff := int(hdr[4]) * 4
	if doff < frameHeaderSize || doff-frameHeaderSize > len(rest) {
		return f, fmt.Errorf("amqp: bad data offset %d", doff)
	}
	body := rest[doff-frameHeaderSize:]
	if len(body) == 0 {
		return f, nil
	}
	v, n, err := decodeValue(body)
	if err != nil {
		return f, err
	}
	fl, code, ok := composite(v)
	if !ok {
		return f, errEmptyBody
	}
	f.code, f.fields, f.payload = code, fl, body[n:]
	return f, nil
}
