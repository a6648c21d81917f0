package servicebus

import (
	"encoding/binary"
	"net"
	"reflect"
	"testing"
	"time"
)

// seedValues are encodings of every type the codec knows.
func seedValues() [][]byte {
	vals := []any{
		nil, true, false, uint8(7), uint16(300), uint32(0), uint32(9), uint32(70000),
		uint64(0), uint64(5), uint64(1 << 40), int8(-3), int16(-300), int32(-5), int32(1 << 20),
		int64(-7), int64(1 << 40), float32(1.5), float64(-2.25), char('é'),
		time.UnixMilli(1700000000123).UTC(), uuid{1, 2, 3}, []byte("bin"), "str", symbol("sym"),
		list{}, list{uint32(1), "a", nil}, amqpMap{{symbol("k"), int64(1)}, {"s", list{true}}},
		amqpArray{int64(1), int64(2)}, amqpArray{symbol("ANONYMOUS")}, amqpArray{uuid{9}}, amqpArray{},
		described{uint64(codeOpen), list{"c"}}, decimal{Code: 0x74, Raw: []byte{1, 2, 3, 4}},
	}
	var out [][]byte
	for _, v := range vals {
		out = append(out, appendValue(nil, v))
	}
	return append(out, []byte{0xa1, 0x05, 'a'}, []byte{0xd0, 0xff, 0xff, 0xff, 0xff},
		[]byte{0xe0, 0x04, 0x02, 0x40}, []byte{0x00, 0x00, 0x00, 0x00})
}

// FuzzDecodeValue checks that decoding never panics and that whatever
// decodes re-encodes to something that decodes to the same value.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range seedValues() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := decodeValue(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		again, _, err := decodeValue(appendValue(nil, v))
		if err != nil {
			t.Fatalf("re-encoding of %#v does not decode: %v", v, err)
		}
		if !equalValues(v, again) {
			t.Fatalf("round trip changed %#v into %#v", v, again)
		}
	})
}

// equalValues compares decoded values, treating NaN as equal to itself
// and empty arrays as arrays whatever their element type.
func equalValues(a, b any) bool {
	switch x := a.(type) {
	case float32:
		y, ok := b.(float32)
		return ok && (x == y || x != x && y != y)
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || x != x && y != y)
	case list:
		y, ok := b.(list)
		return ok && len(x) == len(y) &&
			allEqual(len(x), func(i int) bool { return equalValues(x[i], y[i]) })
	case amqpArray:
		y, ok := b.(amqpArray)
		return ok && len(x) == len(y) &&
			allEqual(len(x), func(i int) bool { return equalValues(x[i], y[i]) })
	case amqpMap:
		y, ok := b.(amqpMap)
		return ok && len(x) == len(y) && allEqual(len(x), func(i int) bool {
			return equalValues(x[i].Key, y[i].Key) && equalValues(x[i].Value, y[i].Value)
		})
	case described:
		y, ok := b.(described)
		return ok && equalValues(x.Descriptor, y.Descriptor) && equalValues(x.Value, y.Value)
	}
	return reflect.DeepEqual(a, b)
}

func allEqual(n int, eq func(int) bool) bool {
	for i := range n {
		if !eq(i) {
			return false
		}
	}
	return true
}

// FuzzParseFrame checks the frame and message decoders on hostile bytes.
func FuzzParseFrame(f *testing.F) {
	f.Add(appendFrame(nil, frameAMQP, 0, perf(codeOpen, list{"c", "h", uint32(65536)}), nil))
	msg := &message{body: appendValue(nil, described{uint64(secData), []byte("x")})}
	f.Add(appendFrame(nil, frameAMQP, 1, perf(codeTransfer, list{uint32(0), uint32(1), []byte{1}}),
		msg.encode(nil, nil, time.Time{})))
	f.Add(appendFrame(nil, frameSASL, 0, perf(codeSASLInit, list{symbol("ANONYMOUS")}), nil))
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 12, 9, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 8 {
			return
		}
		fr, err := parseFrame([8]byte(b[:8]), b[8:])
		if err != nil {
			return
		}
		if m, err := parseMessage(fr.payload); err == nil {
			_ = m.encode(nil, &uuid{}, time.Time{})
		}
		_, _ = splitBatch(fr.payload)
		_, _ = outcomeOf(fr.fields.get(4))
		_ = parseError(fr.fields.get(0))
	})
}

// frameStream turns fuzz input into frames on channel 0: each body is
// preceded by its two-byte length, so that mutations land inside
// performatives rather than in frame headers.
func frameStream(b []byte) []byte {
	var out []byte
	for len(b) >= 2 {
		n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
		out = appendFrame(out, frameAMQP, 0, nil, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// streamOf is the inverse of frameStream for seeds.
func streamOf(bodies ...[]byte) []byte {
	var out []byte
	for _, b := range bodies {
		out = append(binary.BigEndian.AppendUint16(out, uint16(len(b))), b...)
	}
	return out
}

// FuzzConnection feeds arbitrary performatives to a live connection after
// a valid handshake: the emulator must never panic or hang.
func FuzzConnection(f *testing.F) {
	body := func(code uint64, l list, payload []byte) []byte {
		return append(appendValue(nil, perf(code, l)), payload...)
	}
	begin := body(codeBegin, list{nil, uint32(0), uint32(9), uint32(9)}, nil)
	attachSender := body(codeAttach, list{"s", uint32(0), false, nil, nil,
		described{uint64(codeSource), list{}}, described{uint64(codeTarget), list{"q"}}}, nil)
	transfer := body(codeTransfer, list{uint32(0), uint32(0), []byte{1}, uint32(0), false, false},
		appendValue(nil, described{uint64(secData), []byte("x")}))
	attachReceiver := body(codeAttach, list{"r", uint32(1), true, nil, uint8(1),
		described{uint64(codeSource), list{"q"}}, described{uint64(codeTarget), list{}}}, nil)
	flow := body(codeFlow, list{uint32(1), uint32(9), uint32(1), uint32(9), uint32(1),
		uint32(0), uint32(10)}, nil)
	settle := body(codeDisposition, list{true, uint32(0), uint32(5), false,
		described{uint64(codeModified), list{false, true, amqpMap{{"k", "v"}}}}}, nil)
	detach := body(codeDetach, list{uint32(1), true}, nil)
	end := body(codeEnd, nil, nil)
	f.Add(streamOf(begin, attachSender, transfer, attachReceiver, flow, settle, detach, end))
	f.Add(streamOf(begin, attachReceiver, flow, attachSender, transfer, transfer, settle))
	f.Add(streamOf(begin, body(codeAttach, list{"c", uint32(0), false, nil, nil,
		described{uint64(codeSource), list{}}, described{uint64(codeTarget), list{"$cbs"}}}, nil)))
	em, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	_ = em.CreateQueue("q", EntityProperties{LockDuration: time.Second})
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			em.serveConn(server)
		}()
		go func() { // drain what the emulator writes
			buf := make([]byte, 4096)
			for {
				if _, err := client.Read(buf); err != nil {
					return
				}
			}
		}()
		open := appendFrame(nil, frameAMQP, 0, perf(codeOpen, list{"fuzz"}), nil)
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		in := append(append(append([]byte{}, headerAMQP...), open...), frameStream(b)...)
		_, _ = client.Write(in)
		_ = client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("connection goroutine did not end after the client closed")
		}
	})
}

func TestFrameSizeField(t *testing.T) {
	b := appendFrame(nil, frameAMQP, 3, perf(codeEnd, nil), []byte("xy"))
	if int(binary.BigEndian.Uint32(b)) != len(b) || b[4] != 2 || b[7] != 3 {
		t.Fatalf("frame header % x", b[:8])
	}
}
