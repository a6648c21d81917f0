package servicebus

import (
	"encoding/binary"
	"sync"
)

// sessionWindow is the incoming window the emulator grants each session,
// in transfer frames; it is topped up whenever half of it was used.
const sessionWindow = 5000

// maxDispositionRange bounds the deliveries one disposition may settle,
// so that a hostile first/last pair cannot pin the reader.
const maxDispositionRange = 1 << 16

// sessionError ends one session (end with error) and keeps the
// connection.
type sessionError struct{ e *amqpError }

func (s sessionError) Error() string { return s.e.Error() }

// session is one AMQP session. The reader goroutine owns links and the
// incoming counters; mu guards the outgoing side, which broker
// goroutines use to deliver messages.
type session struct {
	c              *conn
	ch             uint16
	links          map[uint32]any  // *inLink or *outLink, by the client's handle
	refused        map[uint32]bool // handles we refused, until the client detaches
	nextIncomingID uint32
	sinceFlow      uint32
	ending         bool // we sent end with an error; waiting for the client's end

	mu             sync.Mutex
	nextOutgoingID uint32
	nextDeliveryID uint32
	unsettled      map[uint32]outDelivery
	ended          bool
}

// outDelivery is an unsettled peek-lock delivery to a client.
type outDelivery struct {
	st    *store
	token uuid
}

func newSession(c *conn, ch uint16, nextIncoming uint32) *session {
	return &session{
		c: c, ch: ch, links: map[uint32]any{}, refused: map[uint32]bool{},
		nextIncomingID: nextIncoming,
		unsettled:      map[uint32]outDelivery{},
	}
}

// handle dispatches one frame addressed to this session.
func (s *session) handle(f frame) error {
	if s.ending {
		if f.code == codeEnd {
			delete(s.c.sessions, s.ch)
		}
		return nil
	}
	switch f.code {
	case codeAttach:
		return s.attach(f)
	case codeFlow:
		return s.flow(f)
	case codeTransfer:
		return s.transfer(f)
	case codeDisposition:
		s.disposition(f)
		return nil
	case codeDetach:
		return s.detach(f)
	case codeEnd:
		s.cleanup()
		delete(s.c.sessions, s.ch)
		s.c.out.frame(frameAMQP, s.ch, perf(codeEnd, nil), nil)
		return nil
	}
	return connError{newError(condNotImplemented, "unknown performative 0x%x", f.code)}
}

// end ends the session from our side with an error.
func (s *session) end(e *amqpError) {
	s.cleanup()
	s.ending = true
	s.c.out.frame(frameAMQP, s.ch, perf(codeEnd, list{e.value()}), nil)
}

// cleanup detaches every link (the client may end a session without
// detaching) and stops deliveries on this session.
func (s *session) cleanup() {
	for h, l := range s.links {
		closeLink(l)
		delete(s.links, h)
	}
	s.mu.Lock()
	s.ended = true
	clear(s.unsettled)
	s.mu.Unlock()
}

// flow applies a flow frame: link credit for our sending links, echo when
// asked. The client's incoming window is not enforced on our side: the
// client's link credit already bounds what we send.
func (s *session) flow(f frame) error {
	h, hasHandle := f.fields.u32(4)
	echo := f.fields.boolean(9)
	if !hasHandle {
		if echo {
			s.sendSessionFlow()
		}
		return nil
	}
	l, ok := s.links[h]
	if !ok {
		if s.refused[h] {
			return nil
		}
		return sessionError{newError(condUnattachedHandle, "flow for handle %d", h)}
	}
	switch l := l.(type) {
	case *outLink:
		credit, _ := f.fields.u32(6)
		dc, ok := f.fields.u32(5)
		if !ok {
			dc = 0 // before our attach: counts start at our initial-delivery-count
		}
		l.onFlow(dc, credit, f.fields.boolean(8), echo)
	case *inLink:
		if echo {
			l.sendFlow()
		}
	}
	return nil
}

// sendSessionFlow tells the client its window is open again.
func (s *session) sendSessionFlow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.out.frame(frameAMQP, s.ch, s.flowFieldsLocked(nil), nil)
}

// flowFieldsLocked builds a flow; link adds the link fields (handle on).
func (s *session) flowFieldsLocked(link list) described {
	l := list{s.nextIncomingID, uint32(sessionWindow), s.nextOutgoingID, uint32(0xffffffff)}
	return perf(codeFlow, append(l, link...))
}

// transfer counts the frame against the window and hands it to its link.
func (s *session) transfer(f frame) error {
	s.nextIncomingID++
	s.sinceFlow++
	if s.sinceFlow >= sessionWindow/2 {
		s.sinceFlow = 0
		s.sendSessionFlow()
	}
	h, _ := f.fields.u32(0)
	l, ok := s.links[h].(*inLink)
	if !ok {
		return sessionError{newError(condUnattachedHandle, "transfer for handle %d", h)}
	}
	return l.onTransfer(f)
}

// sendTransfer queues a delivery to the client. encode appends the
// message; it runs straight into the connection's write buffer, and only a
// message larger than the client's max-frame-size is copied out again to
// be split into frames with more=true. Unsettled peek-lock deliveries are
// remembered by delivery id for the client's disposition.
func (s *session) sendTransfer(handle uint32, tag []byte, settled bool, d *outDelivery,
	encode func([]byte) []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	id := s.nextDeliveryID
	s.nextDeliveryID++
	if !settled && d != nil {
		s.unsettled[id] = *d
	}
	frames := uint32(0)
	ok := s.c.out.append(func(b []byte) []byte {
		// Fast path: the whole delivery in one frame.
		start := len(b)
		b = append(b, 0, 0, 0, 0, 2, frameAMQP, byte(s.ch>>8), byte(s.ch))
		b = appendValue(b, perf(codeTransfer, list{handle, id, tag, uint32(0), settled}))
		body := len(b)
		b = encode(b)
		if len(b)-start <= s.c.peerMax {
			binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
			frames = 1
			return b
		}
		payload := append([]byte(nil), b[body:]...)
		b, frames = s.appendSplit(b[:start], handle, id, tag, settled, payload)
		return b
	})
	s.nextOutgoingID += frames
	if !ok {
		delete(s.unsettled, id)
	}
	return ok
}

// appendSplit appends a delivery as several transfer frames: the first
// carries the delivery id and tag, all but the last have more=true.
func (s *session) appendSplit(b []byte, handle, id uint32, tag []byte, settled bool,
	payload []byte) ([]byte, uint32) {
	frames := uint32(0)
	first := list{handle, id, tag, uint32(0), settled, true}
	cont := list{handle, nil, nil, nil, settled, true}
	for rest := payload; ; {
		fl := cont
		if frames == 0 {
			fl = first
		}
		hdr := appendValue(nil, perf(codeTransfer, fl))
		n := min(s.c.peerMax-frameHeaderSize-len(hdr), len(rest))
		if n == len(rest) {
			hdr = appendValue(hdr[:0], perf(codeTransfer, trim(fl[:5])))
		}
		size := frameHeaderSize + len(hdr) + n
		b = append(b, byte(size>>24), byte(size>>16), byte(size>>8), byte(size),
			2, frameAMQP, byte(s.ch>>8), byte(s.ch))
		b = append(append(b, hdr...), rest[:n]...)
		rest = rest[n:]
		frames++
		if len(rest) == 0 {
			return b, frames
		}
	}
}
