package servicebus

import (
	"strings"
	"sync/atomic"
	"time"
)

// linkCredit is the credit granted to client senders, topped up when
// half is used.
const linkCredit = 1000

// Link kinds of an inLink.
const (
	linkEntity = iota // messages for a queue or topic
	linkCBS           // put-token requests to $cbs
	linkMgmt          // requests to <entity>/$management
)

// inLink receives from a client sender.
type inLink struct {
	s             *session
	name          string
	handle        uint32
	kind          int
	node          node
	deliveryCount uint32 // the client's, as far as we have seen
	credit        uint32
	// The delivery being assembled from frames with more=true.
	partial    []byte
	partialID  uint32
	partialSet bool
	settled    bool
	format     uint32
	tooBig     bool
}

// outLink sends to a client receiver: a consumer of a store, or a reply
// link for $cbs and $management when st is nil.
type outLink struct {
	s                *session
	name             string
	handle           uint32
	target           string
	st               *store
	receiveAndDelete bool
	// Guarded by st.mu for consumers; reader goroutine only for replies.
	credit        uint32
	deliveryCount uint32
	// Session receivers, guarded by st.mu.
	sessionful bool
	sessionID  string
	hasSession bool        // holds sessionID's lock
	waitTimer  *time.Timer // refuses a waiting next-available receiver
	reply      list        // the attach reply, sent once a session is locked
	// closed is set once the broker detached the link (accept timeout,
	// session lock expiry): the client's answering detach needs no reply.
	closed atomic.Bool
}

func closeLink(l any) {
	switch l := l.(type) {
	case *outLink:
		if l.st != nil {
			l.st.removeConsumer(l)
		} else if l.s.c.replies[l.target] == l {
			delete(l.s.c.replies, l.target)
		}
	case *inLink:
		l.partial = nil
	}
}

// address reads the address of a source or target.
func address(v any) (string, bool) {
	f, code, ok := composite(v)
	if !ok || (code != codeSource && code != codeTarget) {
		return "", false
	}
	a, _ := f.get(0).(string)
	return a, true
}

// attach answers a client's attach: it resolves the address, replies with
// the mirrored attach and grants credit, or refuses with a closing detach.
func (s *session) attach(f frame) error {
	name, _ := f.fields.get(0).(string)
	h, ok := f.fields.u32(1)
	if !ok {
		return sessionError{newError(condInvalidField, "attach without handle")}
	}
	delete(s.refused, h)
	if _, busy := s.links[h]; busy {
		return sessionError{newError(condHandleInUse, "handle %d is in use", h)}
	}
	clientReceiver := f.fields.boolean(2)
	source, target := f.fields.get(5), f.fields.get(6)
	reply := list{name, h, !clientReceiver, f.fields.get(3), f.fields.get(4), source, target}
	reply = append(reply, nil, nil, nil, uint64(s.c.em.maxMessageSize))

	if !clientReceiver {
		addr, _ := address(target)
		l := &inLink{s: s, name: name, handle: h, credit: linkCredit}
		l.deliveryCount, _ = f.fields.u32(9)
		var refuse *amqpError
		switch {
		case addr == "$cbs":
			l.kind = linkCBS
		default:
			n, found := s.c.em.broker.resolve(addr)
			switch {
			case !found:
				refuse = newError(condNotFound, "the messaging entity '%s' could not be found", addr)
			case n.mgmt:
				l.kind, l.node = linkMgmt, n
			case n.st != nil && (n.st.isDLQ || n.st.isSub):
				refuse = newError(condNotAllowed, "cannot send to '%s'", addr)
			default:
				l.kind, l.node = linkEntity, n
			}
		}
		if refuse != nil {
			reply[6] = nil
			return s.refuse(reply, h, refuse)
		}
		reply[9] = nil
		reply = append(reply, nil, nil)
		if l.kind == linkEntity {
			reply = append(reply, amqpMap{{symbol("com.microsoft:max-message-batch-size"),
				uint64(s.c.em.maxMessageSize)}})
		}
		s.links[h] = l
		s.c.out.frame(frameAMQP, s.ch, perf(codeAttach, reply), nil)
		l.sendFlow()
		return nil
	}

	addr, _ := address(source)
	taddr, _ := address(target)
	l := &outLink{s: s, name: name, handle: h, target: taddr}
	reply[9] = uint32(0)
	if addr == "$cbs" || strings.HasSuffix(strings.ToLower(addr), "/$management") {
		if addr != "$cbs" {
			if n, found := s.c.em.broker.resolve(addr); !found || !n.mgmt {
				reply[5] = nil
				return s.refuse(reply, h,
					newError(condNotFound, "the messaging entity '%s' could not be found", addr))
			}
		}
		s.links[h] = l
		s.c.replies[taddr] = l
		s.c.out.frame(frameAMQP, s.ch, perf(codeAttach, reply), nil)
		return nil
	}
	wanted, sessionful := sessionFilter(source)
	n, found := s.c.em.broker.resolve(addr)
	if !found || n.st == nil || n.mgmt {
		reply[5] = nil
		return s.refuse(reply, h,
			newError(condNotFound, "the messaging entity '%s' could not be found", addr))
	}
	switch {
	case sessionful && !n.st.sessionsOn():
		reply[5] = nil
		return s.refuse(reply, h, newError(condNotAllowed,
			"'%s' does not require sessions: use a receiver without a session", addr))
	case !sessionful && n.st.sessionsOn():
		reply[5] = nil
		return s.refuse(reply, h, newError(condNotAllowed,
			"'%s' requires sessions: only session receivers may attach", addr))
	}
	snd, _ := f.fields.get(3).(uint8)
	l.st, l.receiveAndDelete = n.st, snd == 1
	if sessionful {
		l.reply = reply
		s.links[h] = l
		if e := n.st.acceptSession(l, wanted, acceptTimeout(f.fields.get(13))); e != nil {
			delete(s.links, h)
			reply[5] = nil
			return s.refuse(reply, h, e)
		}
		return nil
	}
	s.links[h] = l
	s.c.out.frame(frameAMQP, s.ch, perf(codeAttach, reply), nil)
	n.st.addConsumer(l)
	return nil
}

// refuse answers an attach to a missing or forbidden node: the attach
// with a null terminus, then a closing detach with the error (2.6.3).
func (s *session) refuse(reply list, h uint32, e *amqpError) error {
	s.c.out.frame(frameAMQP, s.ch, perf(codeAttach, reply[:9]), nil)
	s.c.out.frame(frameAMQP, s.ch, perf(codeDetach, list{h, true, e.value()}), nil)
	s.refused[h] = true
	return nil
}

// detach answers a client's detach and forgets the link.
func (s *session) detach(f frame) error {
	h, _ := f.fields.u32(0)
	l, ok := s.links[h]
	if !ok {
		if s.refused[h] {
			delete(s.refused, h) // the client's answer to our closing detach
			return nil
		}
		return sessionError{newError(condUnattachedHandle, "detach for handle %d", h)}
	}
	closeLink(l)
	delete(s.links, h)
	if ol, ok := l.(*outLink); ok && ol.closed.Load() {
		return nil // we detached it first; this is the client's answer
	}
	s.c.out.frame(frameAMQP, s.ch, perf(codeDetach, list{h, f.fields.boolean(1)}), nil)
	return nil
}

// sendFlow grants the client sender fresh credit.
func (l *inLink) sendFlow() {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	l.credit = linkCredit
	s.c.out.frame(frameAMQP, s.ch, s.flowFieldsLocked(list{l.handle, l.deliveryCount,
		uint32(linkCredit)}), nil)
}

// onFlow applies the client receiver's credit and delivers.
func (l *outLink) onFlow(deliveryCount, credit uint32, drain, echo bool) {
	if l.st != nil {
		l.st.flow(l, deliveryCount, credit, drain, echo)
		return
	}
	l.credit = deliveryCount + credit - l.deliveryCount
	if echo {
		l.sendFlow(false)
	}
}

// sendFlow reports our delivery-count and the credit left (drain echo).
func (l *outLink) sendFlow(drain bool) {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.out.frame(frameAMQP, s.ch, s.flowFieldsLocked(list{l.handle, l.deliveryCount,
		l.credit, uint32(0), drain}), nil)
}

// deliver sends m to the client; the caller holds the store's mutex.
// token is nil in receive-and-delete mode. False when the session is gone.
func (l *outLink) deliver(m *message, token *uuid, lockedUntil time.Time) bool {
	tok := newToken()
	var d *outDelivery
	if token != nil {
		tok = *token
		d = &outDelivery{st: l.st, token: tok}
	}
	encode := func(b []byte) []byte { return m.encode(b, token, lockedUntil) }
	if !l.s.sendTransfer(l.handle, dotnetGUID(tok), token == nil, d, encode) {
		return false
	}
	l.credit--
	l.deliveryCount++
	return true
}

// dotnetGUID returns the lock token in .NET Guid.ToByteArray order, which
// is how Service Bus writes delivery tags.
func dotnetGUID(u uuid) []byte {
	return []byte{u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6],
		u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]}
}
