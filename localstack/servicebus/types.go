package servicebus

import "fmt"

// The AMQP 1.0 type system (OASIS AMQP 1.0, part 1) maps onto Go values:
//
//	null -> nil, boolean -> bool, ubyte/ushort/uint/ulong -> uint8..uint64,
//	byte/short/int/long -> int8..int64, float/double -> float32/float64,
//	char -> char, timestamp -> time.Time (UTC, millisecond precision),
//	uuid -> uuid, binary -> []byte, string -> string, symbol -> symbol,
//	list -> list, map -> amqpMap, array -> amqpArray, described -> described,
//	decimal32/64/128 -> decimal (raw bytes, passed through untouched).

// symbol is an AMQP symbol: an ASCII name such as "amqp:not-found".
type symbol string

// char is an AMQP char: one UTF-32 code point.
type char rune

// uuid is an AMQP uuid in RFC 4122 byte order.
type uuid [16]byte

// String formats the uuid in its canonical 8-4-4-4-12 hex form.
func (u uuid) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// decimal is an AMQP decimal32, decimal64 or decimal128 kept as its raw
// IEEE 754 bytes, since the emulator never computes with them.
type decimal struct {
	Code byte
	Raw  []byte
}

// list is an AMQP list: a sequence of values of any type.
type list []any

// pair is one key/value entry of an amqpMap.
type pair struct {
	Key, Value any
}

// amqpMap is an AMQP map, kept in wire order. Keys are compared by Get
// with ==, so binary keys are never found but never panic either.
type amqpMap []pair

// Get returns the value stored under key, or nil when absent. A string
// key also matches a symbol key with the same text, and the reverse.
func (m amqpMap) Get(key any) any {
	v, _ := m.Lookup(key)
	return v
}

// Lookup is Get that also reports whether the key was present.
func (m amqpMap) Lookup(key any) (any, bool) {
	for _, p := range m {
		if keyEqual(p.Key, key) {
			return p.Value, true
		}
	}
	return nil, false
}

// Set replaces the value under key, or appends the pair when absent.
func (m amqpMap) Set(key, value any) amqpMap {
	for i, p := range m {
		if keyEqual(p.Key, key) {
			m[i].Value = value
			return m
		}
	}
	return append(m, pair{key, value})
}

func keyEqual(a, b any) bool {
	switch x := a.(type) {
	case symbol:
		switch y := b.(type) {
		case symbol:
			return x == y
		case string:
			return string(x) == y
		}
		return false
	case string:
		switch y := b.(type) {
		case symbol:
			return x == string(y)
		case string:
			return x == y
		}
		return false
	case []byte, list, amqpMap, amqpArray, described, decimal:
		return false
	}
	switch b.(type) {
	case []byte, list, amqpMap, amqpArray, described, decimal:
		return false
	}
	return a == b
}

// amqpArray is an AMQP array: values of one type sharing one constructor.
// When encoding, the element type is taken from the first element; an
// empty array is encoded as an array of null.
type amqpArray []any

// described is an AMQP described type: a descriptor (a ulong code or a
// symbol) and the value it describes.
type described struct {
	Descriptor any
	Value      any
}
