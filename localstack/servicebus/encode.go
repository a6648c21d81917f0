package servicebus

import (
	"encoding/binary"
	"math"
	"reflect"
	"time"
)

// appendValue appends the AMQP encoding of v, choosing the type from the
// Go type as listed in codec.go. int encodes as long and uint as ulong.
// A value of any other Go type is a programming error: it encodes as
// null, so that a bug never takes a connection down mid-frame.
func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 0x40)
	case bool:
		if x {
			return append(b, 0x41)
		}
		return append(b, 0x42)
	case uint8:
		return append(b, 0x50, x)
	case uint16:
		return binary.BigEndian.AppendUint16(append(b, 0x60), x)
	case uint32:
		switch {
		case x == 0:
			return append(b, 0x43)
		case x < 256:
			return append(b, 0x52, byte(x))
		}
		return binary.BigEndian.AppendUint32(append(b, 0x70), x)
	case uint64:
		switch {
		case x == 0:
			return append(b, 0x44)
		case x < 256:
			return append(b, 0x53, byte(x))
		}
		return binary.BigEndian.AppendUint64(append(b, 0x80), x)
	case uint:
		return appendValue(b, uint64(x))
	case int8:
		return append(b, 0x51, byte(x))
	case int16:
		return binary.BigEndian.AppendUint16(append(b, 0x61), uint16(x))
	case int32:
		if x >= -128 && x <= 127 {
			return append(b, 0x54, byte(int8(x)))
		}
		return binary.BigEndian.AppendUint32(append(b, 0x71), uint32(x))
	case int64:
		if x >= -128 && x <= 127 {
			return append(b, 0x55, byte(int8(x)))
		}
		return binary.BigEndian.AppendUint64(append(b, 0x81), uint64(x))
	case int:
		return appendValue(b, int64(x))
	case float32:
		return binary.BigEndian.AppendUint32(append(b, 0x72), math.Float32bits(x))
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 0x82), math.Float64bits(x))
	case char:
		return binary.BigEndian.AppendUint32(append(b, 0x73), uint32(x))
	case time.Time:
		return binary.BigEndian.AppendUint64(append(b, 0x83), uint64(x.UnixMilli()))
	case uuid:
		return append(append(b, 0x98), x[:]...)
	case decimal:
		return append(append(b, x.Code), x.Raw...)
	case []byte:
		return appendVariable(b, 0xa0, x)
	case string:
		return appendVariable(b, 0xa1, []byte(x))
	case symbol:
		return appendVariable(b, 0xa3, []byte(x))
	case list:
		return appendList(b, x)
	case amqpMap:
		return appendMap(b, x)
	case amqpArray:
		return appendArray(b, x)
	case described:
		return appendValue(appendValue(append(b, 0x00), x.Descriptor), x.Value)
	}
	return append(b, 0x40)
}

// appendVariable writes binary, string or symbol data with the one-byte
// size form when it fits (code) and the four-byte form otherwise.
func appendVariable(b []byte, code byte, data []byte) []byte {
	if len(data) < 256 {
		b = append(b, code, byte(len(data)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, code|0x10), uint32(len(data)))
	}
	return append(b, data...)
}

// appendCompound writes a list (0xd0) or map (0xd1) header with a
// placeholder size, lets fill append the elements, then patches the size.
// The four-byte form is used always: it costs a few bytes and no copy.
func appendCompound(b []byte, code byte, count int, fill func([]byte) []byte) []byte {
	b = append(b, code, 0, 0, 0, 0)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	b = fill(b)
	binary.BigEndian.PutUint32(b[start-4:], uint32(len(b)-start))
	return b
}

func appendList(b []byte, l list) []byte {
	if len(l) == 0 {
		return append(b, 0x45)
	}
	return appendCompound(b, 0xd0, len(l), func(b []byte) []byte {
		for _, v := range l {
			b = appendValue(b, v)
		}
		return b
	})
}

func appendMap(b []byte, m amqpMap) []byte {
	return appendCompound(b, 0xd1, 2*len(m), func(b []byte) []byte {
		for _, p := range m {
			b = appendValue(appendValue(b, p.Key), p.Value)
		}
		return b
	})
}

// appendArray writes an array32 whose constructor comes from the first
// element. Every element must have the first one's Go type (and, for
// described elements, its descriptor); others are written as that type's
// zero value, so that a programming error never corrupts the frame.
func appendArray(b []byte, a amqpArray) []byte {
	b = append(b, 0xf0, 0, 0, 0, 0)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(a)))
	if len(a) == 0 {
		b = append(b, 0x40)
	} else {
		first := a[0]
		if d, ok := first.(described); ok {
			b = appendValue(append(b, 0x00), d.Descriptor)
			first = d.Value
		}
		code := wideCode(first)
		b = append(b, code)
		for _, v := range a {
			if d, ok := v.(described); ok {
				v = d.Value
			}
			if wideCode(v) != code {
				v = zeroOf(first)
			}
			b = appendBare(b, v)
		}
	}
	binary.BigEndian.PutUint32(b[start-4:], uint32(len(b)-start))
	return b
}

// wideCode is the constructor of v's type in its widest form, the form
// array elements use.
func wideCode(v any) byte {
	switch x := v.(type) {
	case bool:
		return 0x56
	case uint8:
		return 0x50
	case uint16:
		return 0x60
	case uint32:
		return 0x70
	case uint64, uint:
		return 0x80
	case int8:
		return 0x51
	case int16:
		return 0x61
	case int32:
		return 0x71
	case int64, int:
		return 0x81
	case float32:
		return 0x72
	case float64:
		return 0x82
	case char:
		return 0x73
	case time.Time:
		return 0x83
	case uuid:
		return 0x98
	case decimal:
		return x.Code
	case []byte:
		return 0xb0
	case string:
		return 0xb1
	case symbol:
		return 0xb3
	case list:
		return 0xd0
	case amqpMap:
		return 0xd1
	case amqpArray:
		return 0xf0
	}
	return 0x40
}

func zeroOf(v any) any {
	switch v.(type) {
	case decimal:
		return v
	case nil, described:
		return nil
	}
	return reflect.Zero(reflect.TypeOf(v)).Interface()
}

// appendBare appends v in its wide form without the constructor byte.
func appendBare(b []byte, v any) []byte {
	switch x := v.(type) {
	case bool:
		if x {
			return append(b, 1)
		}
		return append(b, 0)
	case uint8:
		return append(b, x)
	case int8:
		return append(b, byte(x))
	case uint16:
		return binary.BigEndian.AppendUint16(b, x)
	case int16:
		return binary.BigEndian.AppendUint16(b, uint16(x))
	case uint32:
		return binary.BigEndian.AppendUint32(b, x)
	case int32:
		return binary.BigEndian.AppendUint32(b, uint32(x))
	case char:
		return binary.BigEndian.AppendUint32(b, uint32(x))
	case float32:
		return binary.BigEndian.AppendUint32(b, math.Float32bits(x))
	case uint64:
		return binary.BigEndian.AppendUint64(b, x)
	case uint:
		return binary.BigEndian.AppendUint64(b, uint64(x))
	case int64:
		return binary.BigEndian.AppendUint64(b, uint64(x))
	case int:
		return binary.BigEndian.AppendUint64(b, uint64(x))
	case float64:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(x))
	case time.Time:
		return binary.BigEndian.AppendUint64(b, uint64(x.UnixMilli()))
	case uuid:
		return append(b, x[:]...)
	case decimal:
		return append(b, x.Raw...)
	case []byte:
		return append(binary.BigEndian.AppendUint32(b, uint32(len(x))), x...)
	case string:
		return append(binary.BigEndian.AppendUint32(b, uint32(len(x))), x...)
	case symbol:
		return append(binary.BigEndian.AppendUint32(b, uint32(len(x))), x...)
	case list:
		n := len(b)
		b = appendCompound(b, 0xd0, len(x), func(b []byte) []byte {
			for _, v := range x {
				b = appendValue(b, v)
			}
			return b
		})
		return append(b[:n], b[n+1:]...)
	case amqpMap:
		n := len(b)
		b = appendMap(b, x)
		return append(b[:n], b[n+1:]...)
	case amqpArray:
		n := len(b)
		b = appendArray(b, x)
		return append(b[:n], b[n+1:]...)
	}
	return b
}
