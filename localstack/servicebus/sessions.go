package servicebus

import (
	"errors"
	"slices"
	"time"
)

// Session wire names (azservicebus session_receiver.go and internal/mgmt.go).
const (
	sessionFilterKey  symbol = "com.microsoft:session-filter"
	propSessionTimout symbol = "com.microsoft:timeout"
	propLockedUntil   symbol = "com.microsoft:locked-until-utc"
	condTimeout       symbol = "com.microsoft:timeout"
	condSessionLost   symbol = "com.microsoft:session-lock-lost"

	opRenewSession = "com.microsoft:renew-session-lock"
	opGetState     = "com.microsoft:get-session-state"
	opSetState     = "com.microsoft:set-session-state"

	// defaultAcceptTimeout is how long a next-available session receiver
	// waits when the client sends no com.microsoft:timeout: 60 s, as the
	// service does.
	defaultAcceptTimeout = 60 * time.Second
	// epochTicks is 1970-01-01 in .NET ticks (100 ns since year 1).
	epochTicks = int64(621355968000000000)
)

var errSessionLockLost = errors.New("the session lock was lost or was never held")

// msgSession is the lock and state of one session of a store.
type msgSession struct {
	owner       *outLink // nil when no receiver holds the lock
	lockedUntil time.Time
	state       []byte
}

// sessionsOn reports whether the store hands messages out by session:
// a queue or subscription with RequiresSession (never its dead-letter
// queue, which plain receivers read).
func (s *store) sessionsOn() bool { return s.props.RequiresSession && !s.isDLQ }

// sessionID is the message's group-id, the Service Bus session id.
func (m *message) sessionID() (string, bool) {
	id, ok := m.prop(10).(string)
	return id, ok
}

// sessionFilter reads the session filter of a receiver's source: wanted
// is nil for "next available session".
func sessionFilter(source any) (wanted *string, present bool) {
	sf, _, ok := composite(source)
	if !ok {
		return nil, false
	}
	filter, _ := sf.get(7).(amqpMap)
	v, present := filter.Lookup(sessionFilterKey)
	if !present {
		return nil, false
	}
	if d, ok := v.(described); ok {
		v = d.Value
	}
	if id, ok := v.(string); ok {
		return &id, true
	}
	return nil, true
}

// withSessionFilter returns source with the session filter's value set
// to id, as the service echoes the session it locked.
func withSessionFilter(source any, id string) any {
	d, _ := source.(described)
	f, _, _ := composite(source)
	nf := append(list(nil), f...)
	for len(nf) < 8 {
		nf = append(nf, nil)
	}
	old, _ := nf[7].(amqpMap)
	filter := make(amqpMap, 0, len(old))
	for _, p := range old {
		if keyEqual(p.Key, sessionFilterKey) {
			fd, ok := p.Value.(described)
			if !ok {
				fd = described{uint64(0x137000000c), nil}
			}
			fd.Value = id
			p.Value = fd
		}
		filter = append(filter, p)
	}
	nf[7] = filter
	return described{d.Descriptor, nf}
}

// acceptTimeout reads com.microsoft:timeout (milliseconds) from attach
// properties.
func acceptTimeout(props any) time.Duration {
	m, _ := props.(amqpMap)
	if ms, ok := (fields{m.Get(propSessionTimout)}).u32(0); ok {
		return time.Duration(ms) * time.Millisecond
	}
	return defaultAcceptTimeout
}

// sessionReply completes a session receiver's attach reply with the
// locked session id and its lock expiry.
func (l *outLink) sessionReply(id string, until time.Time) list {
	r := append(list(nil), l.reply...)
	r[5] = withSessionFilter(r[5], id)
	ticks := until.UnixMilli()*10000 + epochTicks
	return append(r, nil, nil, amqpMap{{propLockedUntil, ticks}})
}

// closeFromBroker detaches the link from a broker goroutine with e; the
// reader then ignores the client's answering detach.
func (l *outLink) closeFromBroker(e *amqpError, attachFirst bool) {
	l.closed.Store(true)
	s := l.s
	if attachFirst {
		r := append(list(nil), l.reply[:9]...)
		r[5] = nil
		s.c.out.frame(frameAMQP, s.ch, perf(codeAttach, r), nil)
	}
	s.c.out.frame(frameAMQP, s.ch, perf(codeDetach, list{l.handle, true, e.value()}), nil)
}

// acceptSession locks the wanted session (or, when wanted is nil, the
// next session with ready messages) for l and sends the attach reply. A
// next-available receiver with nothing to take waits until timeout. An
// error refuses the attach.
func (s *store) acceptSession(l *outLink, wanted *string, timeout time.Duration) *amqpError {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l.sessionful = true
	if wanted != nil {
		if ms := s.sessions[*wanted]; ms != nil && ms.owner != nil {
			return newError(condSessionsNotFound,
				"the session '%s' is locked by another receiver", *wanted)
		}
		s.lockSessionLocked(now, l, *wanted)
		s.dispatchLocked(now)
		return nil
	}
	s.waiters = append(s.waiters, l)
	s.dispatchLocked(now)
	if slices.Contains(s.waiters, l) {
		// The SDK gives up when its own deadline passes, a few ms after
		// the timeout it sent: answer on time, not at the next sweep.
		l.waitTimer = time.AfterFunc(timeout, func() { s.endWait(l) })
	}
	return nil
}

// endWait refuses l with com.microsoft:timeout if it still waits.
func (s *store) endWait(l *outLink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.waiters, l)
	if i < 0 {
		return
	}
	s.waiters = slices.Delete(s.waiters, i, i+1)
	l.closeFromBroker(newError(condTimeout,
		"no session with messages became available in time"), true)
}

// lockSessionLocked gives id's lock to l, answers its attach and makes
// it a consumer.
func (s *store) lockSessionLocked(now time.Time, l *outLink, id string) {
	ms := s.sessions[id]
	if ms == nil {
		ms = &msgSession{}
		s.sessions[id] = ms
	}
	ms.owner, ms.lockedUntil = l, now.Add(s.props.LockDuration)
	s.deadline(ms.lockedUntil)
	l.sessionID, l.hasSession = id, true
	if l.waitTimer != nil {
		l.waitTimer.Stop()
	}
	l.s.c.out.frame(frameAMQP, l.s.ch, perf(codeAttach, l.sessionReply(id, ms.lockedUntil)), nil)
	s.consumers = append(s.consumers, l)
}

// releaseSessionLocked ends l's session lock. The session's locked
// messages become ready again; count adds a delivery to each (lock
// expiry), a clean close does not.
func (s *store) releaseSessionLocked(now time.Time, l *outLink, count bool) {
	s.removeConsumerLocked(l)
	if i := slices.Index(s.waiters, l); i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
	}
	if l.waitTimer != nil {
		l.waitTimer.Stop()
	}
	if !l.hasSession {
		return
	}
	id := l.sessionID
	l.hasSession = false
	ms := s.sessions[id]
	if ms == nil || ms.owner != l {
		return
	}
	ms.owner = nil
	if ms.state == nil {
		delete(s.sessions, id)
	}
	for tok, m := range s.locked {
		if sid, _ := m.sessionID(); sid == id {
			delete(s.locked, tok)
			if count {
				s.redeliverLocked(now, m)
			} else if m.state == msgStateDefer {
				s.deferred[m.seq] = m
			} else {
				s.pushReady(m)
			}
		}
	}
}

// freeSessionLocked returns the session of the oldest ready message
// whose session nobody holds.
func (s *store) freeSessionLocked() (string, bool) {
	for _, m := range s.ready[s.head:] {
		id, ok := m.sessionID()
		if !ok {
			continue
		}
		if ms := s.sessions[id]; ms == nil || ms.owner == nil {
			return id, true
		}
	}
	return "", false
}

// dispatchSessionsLocked first gives free sessions to waiting
// next-available receivers, then hands each ready message to the
// receiver holding its session, in sequence order, while it has credit.
func (s *store) dispatchSessionsLocked(now time.Time) {
	for len(s.waiters) > 0 {
		id, ok := s.freeSessionLocked()
		if !ok {
			break
		}
		w := s.waiters[0]
		s.waiters = slices.Delete(s.waiters, 0, 1)
		s.lockSessionLocked(now, w, id)
	}
	if len(s.consumers) == 0 {
		return
	}
	for i := s.head; i < len(s.ready); {
		m := s.ready[i]
		id, _ := m.sessionID()
		ms := s.sessions[id]
		if ms == nil || ms.owner == nil || ms.owner.credit == 0 {
			i++
			continue
		}
		c := ms.owner
		if i == s.head {
			s.popReady()
			i = s.head // popReady may have compacted the list
		} else {
			s.ready = slices.Delete(s.ready, i, i+1) // i names the next one
		}
		if s.expiredLocked(now, m) {
			continue
		}
		var tok *uuid
		if !c.receiveAndDelete {
			m.lockToken = newToken()
			m.lockedUntil = ms.lockedUntil
			s.locked[m.lockToken] = m
			tok = &m.lockToken
		}
		if !c.deliver(m, tok, m.lockedUntil) {
			if tok != nil {
				delete(s.locked, m.lockToken)
			}
			s.pushReady(m)
			s.releaseSessionLocked(now, c, false)
		}
	}
}

// sweepSessionsLocked ends expired session locks: the receiver is
// detached with session-lock-lost.
func (s *store) sweepSessionsLocked(now time.Time) {
	for _, ms := range s.sessions {
		if ms.owner == nil {
			continue
		}
		if now.After(ms.lockedUntil) {
			l := ms.owner
			s.releaseSessionLocked(now, l, true)
			l.closeFromBroker(newError(condSessionLost,
				"the lock on session '%s' expired", l.sessionID), false)
			continue
		}
		s.deadline(ms.lockedUntil)
	}
}

// lockedSessionLocked returns id's session while a receiver holds it.
func (s *store) lockedSessionLocked(now time.Time, id string) (*msgSession, error) {
	ms := s.sessions[id]
	if ms == nil || ms.owner == nil || now.After(ms.lockedUntil) {
		return nil, errSessionLockLost
	}
	return ms, nil
}

// renewSession extends id's lock, and the locks of its messages, by the
// lock duration.
func (s *store) renewSession(id string) (time.Time, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ms, err := s.lockedSessionLocked(now, id)
	if err != nil {
		return time.Time{}, err
	}
	ms.lockedUntil = now.Add(s.props.LockDuration)
	for _, m := range s.locked {
		if sid, _ := m.sessionID(); sid == id {
			m.lockedUntil = ms.lockedUntil
		}
	}
	return ms.lockedUntil, nil
}

// sessionState returns id's state (nil when none was set).
func (s *store) sessionState(id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms, err := s.lockedSessionLocked(time.Now(), id)
	if err != nil {
		return nil, err
	}
	return ms.state, nil
}

// setSessionState replaces id's state; nil clears it.
func (s *store) setSessionState(id string, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms, err := s.lockedSessionLocked(time.Now(), id)
	if err != nil {
		return err
	}
	ms.state = append([]byte(nil), state...)
	if state == nil {
		ms.state = nil
	}
	return nil
}

// manageSession runs the session management operations; ok is false
// for any other operation.
func manageSession(st *store, op string, body amqpMap) (*message, bool) {
	switch op {
	case opRenewSession, opGetState, opSetState:
	default:
		return nil, false
	}
	id, _ := body.Get("session-id").(string)
	if !st.sessionsOn() {
		return mgmtReply(400, "the entity does not require sessions", nil), true
	}
	var err error
	var reply amqpMap
	switch op {
	case opRenewSession:
		var until time.Time
		until, err = st.renewSession(id)
		reply = amqpMap{{"expiration", until}}
	case opGetState:
		var state []byte
		state, err = st.sessionState(id)
		var v any
		if state != nil {
			v = state
		}
		reply = amqpMap{{"session-state", v}}
	case opSetState:
		state, _ := body.Get("session-state").([]byte)
		err = st.setSessionState(id, state)
	}
	if err != nil {
		return mgmtReply(410, err.Error(), nil), true
	}
	return mgmtReply(200, "", reply), true
}

// deadLetterNoSession dead-letters a subscription's copies that carry no
// session id, as the service does for session-enabled subscriptions.
func (s *store) deadLetterNoSession(now time.Time, msgs []*message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.deadLetterLocked(now, m, "SessionIdIsMissing",
			"a session-enabled subscription takes only messages with a session id")
	}
}
