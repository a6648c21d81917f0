package servicebus

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// rawConn is a hand-driven AMQP client for protocol edge cases.
type rawConn struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, em *Emulator) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", em.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc}
}

// open performs the plain (no SASL) handshake and the open exchange.
func (r *rawConn) open() {
	r.t.Helper()
	r.write(headerAMQP)
	var h [8]byte
	if _, err := io.ReadFull(r.nc, h[:]); err != nil || !bytes.Equal(h[:], headerAMQP) {
		r.t.Fatalf("header %q, %v", h, err)
	}
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeOpen, list{"raw", "localhost"}), nil))
	if f := r.read(); f.code != codeOpen {
		r.t.Fatalf("expected open, got 0x%x", f.code)
	}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the next non-empty frame.
func (r *rawConn) read() frame {
	r.t.Helper()
	for {
		var h [8]byte
		if _, err := io.ReadFull(r.nc, h[:]); err != nil {
			r.t.Fatalf("read frame: %v", err)
		}
		rest := make([]byte, binary.BigEndian.Uint32(h[:4])-8)
		if _, err := io.ReadFull(r.nc, rest); err != nil {
			r.t.Fatalf("read frame: %v", err)
		}
		f, err := parseFrame(h, rest)
		if err != nil {
			r.t.Fatalf("parse frame: %v", err)
		}
		if f.code != 0 {
			return f
		}
	}
}

// expectClose reads until a close frame and checks its condition, then
// that the emulator closed the socket.
func (r *rawConn) expectClose(cond symbol) {
	r.t.Helper()
	for {
		f := r.read()
		if f.code != codeClose {
			continue
		}
		e := parseError(f.fields.get(0))
		if e == nil || e.Condition != cond {
			r.t.Fatalf("close error %v, want %s", e, cond)
		}
		break
	}
	if _, err := io.ReadAll(r.nc); err != nil {
		r.t.Fatalf("socket not closed after close: %v", err)
	}
}

func TestWrongProtocolHeader(t *testing.T) {
	em := start(t, Config{})
	r := dialRaw(t, em)
	r.write([]byte("HTTP/1.1"))
	got, err := io.ReadAll(r.nc)
	if err != nil || !bytes.Equal(got, headerSASL) {
		t.Fatalf("answer %q, %v: want our header then EOF", got, err)
	}
}

func TestBadFramesCloseTheConnection(t *testing.T) {
	em := start(t, Config{})
	cases := map[string]struct {
		frame []byte
		cond  symbol
	}{
		"oversized":       {binary.BigEndian.AppendUint32(nil, MaxFrameSize+1), condFramingError},
		"undersized":      {[]byte{0, 0, 0, 4, 2, 0, 0, 0}, condFramingError},
		"bad data offset": {[]byte{0, 0, 0, 8, 1, 0, 0, 0}, condDecode},
		"malformed body": {appendFrame(nil, frameAMQP, 0, nil, []byte{0x00, 0x53, 0x11, 0xd0, 0xff}),
			condDecode},
		"unknown performative": {appendFrame(nil, frameAMQP, 0, perf(0x99, list{uint32(1)}), nil),
			condNotImplemented},
		"no session": {appendFrame(nil, frameAMQP, 7, perf(codeFlow, list{uint32(0)}), nil),
			condNotAllowed},
		"not a performative": {appendFrame(nil, frameAMQP, 0, "hello", nil), condDecode},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, em)
			r.open()
			b := tc.frame
			if len(b) == 4 { // a size alone: pad the header
				b = append(b, 2, 0, 0, 0)
			}
			r.write(b)
			r.expectClose(tc.cond)
		})
	}
	healthyRoundTrip(t, em)
}

// beginFrame is a client's begin on channel 0.
func beginFrame() []byte {
	return appendFrame(nil, frameAMQP, 0,
		perf(codeBegin, list{nil, uint32(0), uint32(10), uint32(10)}), nil)
}

// healthyRoundTrip proves that a fresh client still works.
func healthyRoundTrip(t *testing.T, em *Emulator) {
	t.Helper()
	_ = em.CreateQueue("healthy", EntityProperties{})
	c := client(t, em)
	send(t, c, "healthy", body("ok"))
	r := receiver(t, c, "healthy", nil)
	if m := receive(t, r, 1)[0]; string(m.Body) != "ok" {
		t.Fatalf("body %q", m.Body)
	}
}

func TestTruncatedFrameDoesNotStallOthers(t *testing.T) {
	em := start(t, Config{})
	r := dialRaw(t, em)
	r.open()
	f := beginFrame()
	r.write(f[:len(f)-3]) // and then silence
	healthyRoundTrip(t, em)
	_ = r.nc.Close()
}

func TestSessionErrors(t *testing.T) {
	em := start(t, Config{})
	r := dialRaw(t, em)
	r.open()
	r.write(beginFrame())
	if f := r.read(); f.code != codeBegin {
		t.Fatalf("got 0x%x, want begin", f.code)
	}
	// A transfer on a handle that was never attached ends the session.
	r.write(appendFrame(nil, frameAMQP, 0,
		perf(codeTransfer, list{uint32(9), uint32(0), []byte{1}}), nil))
	f := r.read()
	e := parseError(f.fields.get(0))
	if f.code != codeEnd || e == nil || e.Condition != condUnattachedHandle {
		t.Fatalf("got 0x%x %v, want end with unattached-handle", f.code, e)
	}
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeEnd, nil), nil))
	// The connection survives: a new session on the same channel works.
	r.write(beginFrame())
	if f := r.read(); f.code != codeBegin {
		t.Fatalf("got 0x%x, want begin", f.code)
	}
	// Settling a delivery id that was never sent answers lock-lost.
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeDisposition,
		list{true, uint32(42), nil, false, described{uint64(codeAccepted), list{}}}), nil))
	f = r.read()
	st, code, _ := composite(f.fields.get(4))
	if f.code != codeDisposition || code != codeRejected ||
		parseError(st.get(0)).Condition != condLockLost {
		t.Fatalf("got 0x%x state 0x%x, want rejected lock-lost", f.code, code)
	}
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeClose, nil), nil))
	if f := r.read(); f.code != codeClose {
		t.Fatalf("got 0x%x, want close", f.code)
	}
}

// TestHeartbeats checks that the emulator sends empty frames at half the
// idle timeout the client announced, so that its idle timer never fires.
func TestHeartbeats(t *testing.T) {
	em := start(t, Config{})
	r := dialRaw(t, em)
	r.write(headerAMQP)
	var h [8]byte
	if _, err := io.ReadFull(r.nc, h[:]); err != nil {
		t.Fatal(err)
	}
	open := perf(codeOpen, list{"raw", "localhost", uint32(65536), uint16(10), uint32(200)})
	r.write(appendFrame(nil, frameAMQP, 0, open, nil))
	start := time.Now()
	for beats := 0; beats < 3; {
		if _, err := io.ReadFull(r.nc, h[:]); err != nil {
			t.Fatal(err)
		}
		size := binary.BigEndian.Uint32(h[:4])
		if _, err := io.CopyN(io.Discard, r.nc, int64(size-8)); err != nil {
			t.Fatal(err)
		}
		if size == 8 {
			beats++
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("3 heartbeats took %v with a 200 ms idle timeout", d)
	}
}

// attachSender opens a session on channel 0 and a sender link (handle 0)
// to addr, reading the emulator's begin, attach and flow.
func (r *rawConn) attachSender(addr string) {
	r.t.Helper()
	r.write(beginFrame())
	r.read() // begin
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeAttach, list{"s", uint32(0), false, nil, nil,
		described{uint64(codeSource), list{}}, described{uint64(codeTarget), list{addr}},
		nil, nil, uint32(0)}), nil))
	if f := r.read(); f.code != codeAttach {
		r.t.Fatalf("got 0x%x, want attach", f.code)
	}
	if f := r.read(); f.code != codeFlow {
		r.t.Fatalf("got 0x%x, want flow", f.code)
	}
}

// transferFrames sends payload as delivery id in frames of at most chunk
// bytes; abort marks the last frame aborted.
func (r *rawConn) transferFrames(id uint32, payload []byte, chunk int, abort bool) {
	for first := true; ; first = false {
		n := min(chunk, len(payload))
		more := n < len(payload)
		fl := list{uint32(0), nil, nil, nil, false, more}
		if first {
			fl = list{uint32(0), id, []byte{byte(id)}, uint32(0), false, more}
		}
		if !more && abort {
			fl = append(fl, nil, nil, nil, nil, true)
		}
		r.write(appendFrame(nil, frameAMQP, 0, perf(codeTransfer, fl), payload[:n]))
		payload = payload[n:]
		if !more {
			return
		}
	}
}

func TestMultiFrameTransfers(t *testing.T) {
	em := start(t, Config{MaxMessageSize: 4000})
	_ = em.CreateQueue("q", EntityProperties{})
	r := dialRaw(t, em)
	r.open()
	r.attachSender("q")
	data := func(n int) []byte {
		return appendValue(nil, described{uint64(secData), make([]byte, n)})
	}

	// Reassembled from three frames and accepted.
	r.transferFrames(0, data(2500), 1000, false)
	f := r.read()
	if _, code, _ := composite(f.fields.get(4)); f.code != codeDisposition || code != codeAccepted {
		t.Fatalf("got 0x%x state 0x%x, want accepted", f.code, code)
	}
	// Over MaxMessageSize: rejected with message-size-exceeded.
	r.transferFrames(1, data(5000), 1000, false)
	f = r.read()
	st, code, _ := composite(f.fields.get(4))
	if code != codeRejected || parseError(st.get(0)).Condition != condMessageSize {
		t.Fatalf("state 0x%x %v, want rejected message-size-exceeded", code, st)
	}
	// Aborted: dropped without a disposition.
	r.transferFrames(2, data(2500), 1000, true)
	r.transferFrames(3, data(10), 1000, false)
	f = r.read()
	if first, _ := f.fields.u32(1); f.code != codeDisposition || first != 3 {
		t.Fatalf("got 0x%x for delivery %d, want the disposition of delivery 3", f.code, first)
	}
	if n, _ := em.Count("q"); n != 2 {
		t.Fatalf("queue holds %d messages, want 2", n)
	}
}

func TestAttachErrors(t *testing.T) {
	em := start(t, Config{})
	_ = em.CreateTopic("t", EntityProperties{})
	_ = em.CreateSubscription("t", "s", EntityProperties{})
	r := dialRaw(t, em)
	r.open()
	r.attachSender("t")
	// Handle 0 is taken: a second attach on it ends the session.
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeAttach, list{"x", uint32(0), false, nil, nil,
		described{uint64(codeSource), list{}}, described{uint64(codeTarget), list{"t"}}}), nil))
	f := r.read()
	if e := parseError(f.fields.get(0)); f.code != codeEnd || e.Condition != condHandleInUse {
		t.Fatalf("got 0x%x %v, want end with handle-in-use", f.code, e)
	}
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeEnd, nil), nil))
	// Sending to a subscription is refused with a closing detach.
	r.write(beginFrame())
	r.read()
	r.write(appendFrame(nil, frameAMQP, 0, perf(codeAttach, list{"y", uint32(1), false, nil, nil,
		described{uint64(codeSource), list{}},
		described{uint64(codeTarget), list{"t/Subscriptions/s"}}}), nil))
	if f := r.read(); f.code != codeAttach || f.fields.get(6) != nil {
		t.Fatalf("got 0x%x target %v, want attach with a null target", f.code, f.fields.get(6))
	}
	f = r.read()
	if e := parseError(f.fields.get(2)); f.code != codeDetach || e.Condition != condNotAllowed {
		t.Fatalf("got 0x%x %v, want detach with not-allowed", f.code, e)
	}
}

// TestEndWithoutSessionIsIgnored: go-amqp sends end for a session whose
// begin it abandoned; that must not cost the connection its other links.
func TestEndWithoutSessionIsIgnored(t *testing.T) {
	em := start(t, Config{})
	r := dialRaw(t, em)
	r.open()
	r.write(appendFrame(nil, frameAMQP, 3, perf(codeEnd, nil), nil))
	r.write(beginFrame())
	if f := r.read(); f.code != codeBegin {
		t.Fatalf("got 0x%x, want begin: the connection did not survive", f.code)
	}
}
