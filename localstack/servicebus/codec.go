package servicebus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// maxDepth bounds the nesting of compound values so that hostile input
// cannot exhaust the stack.
const maxDepth = 32

var (
	errTruncated = errors.New("amqp: value truncated")
	errBadCode   = errors.New("amqp: unknown type code")
	errTooDeep   = errors.New("amqp: values nested too deep")
	errBadUTF8   = errors.New("amqp: string is not valid UTF-8")
	errTooMany   = errors.New("amqp: element count exceeds the bytes present")
)

// decoder reads AMQP values from buf starting at pos.
type decoder struct {
	buf   []byte
	pos   int
	depth int
}

// decodeValue decodes one value from the start of b and reports how many
// bytes it used.
func decodeValue(b []byte) (any, int, error) {
	d := decoder{buf: b}
	v, err := d.value()
	return v, d.pos, err
}

func (d *decoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.buf)-d.pos < n {
		return nil, errTruncated
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) byte1() (byte, error) {
	if d.pos >= len(d.buf) {
		return 0, errTruncated
	}
	c := d.buf[d.pos]
	d.pos++
	return c, nil
}

func (d *decoder) value() (any, error) {
	code, err := d.byte1()
	if err != nil {
		return nil, err
	}
	if code == 0x00 {
		return d.described()
	}
	return d.byCode(code)
}

func (d *decoder) described() (any, error) {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return nil, errTooDeep
	}
	desc, err := d.value()
	if err != nil {
		return nil, err
	}
	val, err := d.value()
	if err != nil {
		return nil, err
	}
	return described{Descriptor: desc, Value: val}, nil
}

// width reads a size or count of one or four bytes.
func (d *decoder) width(four bool) (int, error) {
	if !four {
		c, err := d.byte1()
		return int(c), err
	}
	b, err := d.need(4)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(b)
	if n > math.MaxInt32 {
		return 0, errTruncated
	}
	return int(n), nil
}

// byCode decodes the value that follows the constructor code.
func (d *decoder) byCode(code byte) (any, error) {
	switch code {
	case 0x40:
		return nil, nil
	case 0x41:
		return true, nil
	case 0x42:
		return false, nil
	case 0x43:
		return uint32(0), nil
	case 0x44:
		return uint64(0), nil
	case 0x45:
		return list{}, nil
	}
	switch code >> 4 {
	case 0x5: // one byte
		b, err := d.byte1()
		if err != nil {
			return nil, err
		}
		switch code {
		case 0x50:
			return b, nil
		case 0x51:
			return int8(b), nil
		case 0x52:
			return uint32(b), nil
		case 0x53:
			return uint64(b), nil
		case 0x54:
			return int32(int8(b)), nil
		case 0x55:
			return int64(int8(b)), nil
		case 0x56:
			return b != 0, nil
		}
	case 0x6: // two bytes
		b, err := d.need(2)
		if err != nil {
			return nil, err
		}
		switch code {
		case 0x60:
			return binary.BigEndian.Uint16(b), nil
		case 0x61:
			return int16(binary.BigEndian.Uint16(b)), nil
		}
	case 0x7: // four bytes
		b, err := d.need(4)
		if err != nil {
			return nil, err
		}
		u := binary.BigEndian.Uint32(b)
		switch code {
		case 0x70:
			return u, nil
		case 0x71:
			return int32(u), nil
		case 0x72:
			return math.Float32frombits(u), nil
		case 0x73:
			return char(u), nil
		case 0x74:
			return decimal{Code: code, Raw: append([]byte(nil), b...)}, nil
		}
	case 0x8: // eight bytes
		b, err := d.need(8)
		if err != nil {
			return nil, err
		}
		u := binary.BigEndian.Uint64(b)
		switch code {
		case 0x80:
			return u, nil
		case 0x81:
			return int64(u), nil
		case 0x82:
			return math.Float64frombits(u), nil
		case 0x83:
			return time.UnixMilli(int64(u)).UTC(), nil
		case 0x84:
			return decimal{Code: code, Raw: append([]byte(nil), b...)}, nil
		}
	case 0x9: // sixteen bytes
		b, err := d.need(16)
		if err != nil {
			return nil, err
		}
		switch code {
		case 0x94:
			return decimal{Code: code, Raw: append([]byte(nil), b...)}, nil
		case 0x98:
			return uuid(b), nil
		}
	case 0xa, 0xb: // variable width
		n, err := d.width(code>>4 == 0xb)
		if err != nil {
			return nil, err
		}
		b, err := d.need(n)
		if err != nil {
			return nil, err
		}
		switch code & 0x0f {
		case 0x0:
			return append([]byte(nil), b...), nil
		case 0x1:
			if !utf8.Valid(b) {
				return nil, errBadUTF8
			}
			return string(b), nil
		case 0x3:
			return symbol(b), nil
		}
	case 0xc, 0xd: // list and map
		return d.compound(code)
	case 0xe, 0xf:
		if code&0x0f == 0 {
			return d.array(code == 0xf0)
		}
	}
	return nil, fmt.Errorf("%w 0x%02x", errBadCode, code)
}

// compound decodes a list or map body.
func (d *decoder) compound(code byte) (any, error) {
	four := code>>4 == 0xd
	size, err := d.width(four)
	if err != nil {
		return nil, err
	}
	body, err := d.need(size)
	if err != nil {
		return nil, err
	}
	sub := decoder{buf: body, depth: d.depth + 1}
	if sub.depth > maxDepth {
		return nil, errTooDeep
	}
	count, err := sub.width(four)
	if err != nil {
		return nil, err
	}
	if count > len(body) {
		return nil, errTooMany
	}
	switch code & 0x0f {
	case 0x0:
		l := make(list, 0, count)
		for range count {
			v, err := sub.value()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case 0x1:
		if count%2 != 0 {
			return nil, errors.New("amqp: map with an odd element count")
		}
		m := make(amqpMap, 0, count/2)
		for range count / 2 {
			k, err := sub.value()
			if err != nil {
				return nil, err
			}
			v, err := sub.value()
			if err != nil {
				return nil, err
			}
			m = append(m, pair{k, v})
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w 0x%02x", errBadCode, code)
}

// array decodes an array: size, count, one constructor, then the bare
// elements.
func (d *decoder) array(four bool) (any, error) {
	size, err := d.width(four)
	if err != nil {
		return nil, err
	}
	body, err := d.need(size)
	if err != nil {
		return nil, err
	}
	sub := decoder{buf: body, depth: d.depth + 1}
	if sub.depth > maxDepth {
		return nil, errTooDeep
	}
	count, err := sub.width(four)
	if err != nil {
		return nil, err
	}
	code, err := sub.byte1()
	if err != nil {
		return nil, err
	}
	var desc any
	if code == 0x00 {
		if desc, err = sub.value(); err != nil {
			return nil, err
		}
		if code, err = sub.byte1(); err != nil {
			return nil, err
		}
	}
	if code == 0x00 {
		return nil, fmt.Errorf("%w 0x00 as an array element", errBadCode)
	}
	// Each element takes at least a byte, except the zero-width ones
	// (null, true, false, uint0, ulong0, list0), which are capped instead.
	zeroWidth := code >= 0x40 && code <= 0x45
	if count > len(body) && !(zeroWidth && count <= 1<<16) {
		return nil, errTooMany
	}
	a := make(amqpArray, 0, count)
	for range count {
		v, err := sub.byCode(code)
		if err != nil {
			return nil, err
		}
		if desc != nil {
			v = described{Descriptor: desc, Value: v}
		}
		a = append(a, v)
	}
	return a, nil
}
