package servicebus

import "time"

// onTransfer assembles a delivery from its frames and, once complete,
// accepts it for its node and settles it with the client.
func (l *inLink) onTransfer(f frame) error {
	if !l.partialSet {
		id, ok := f.fields.u32(1)
		if !ok {
			return sessionError{newError(condInvalidField, "first transfer without delivery-id")}
		}
		l.partialSet, l.partialID, l.tooBig = true, id, false
		l.format, _ = f.fields.u32(3)
		l.settled = f.fields.boolean(4)
		l.partial = l.partial[:0]
	} else if f.fields.boolean(4) {
		l.settled = true
	}
	if f.fields.boolean(10) { // aborted: discard what was sent
		l.partialSet, l.partial = false, nil
		return nil
	}
	more := f.fields.boolean(5)
	switch {
	case len(l.partial)+len(f.payload) > l.s.c.em.maxMessageSize+64<<10:
		l.tooBig, l.partial = true, l.partial[:0]
	case l.tooBig:
	case len(l.partial) == 0 && !more:
		l.partial = f.payload // one frame: its buffer is ours to keep
	default:
		l.partial = append(l.partial, f.payload...)
	}
	if more {
		return nil
	}

	l.partialSet = false
	l.deliveryCount++
	l.credit--
	if l.credit <= linkCredit/2 {
		l.sendFlow()
	}
	payload := l.partial
	l.partial = nil
	if l.kind == linkEntity && l.node.gone() {
		// The entity was deleted under the link: detach it, as the
		// service does, so that the client reports not-found.
		s := l.s
		delete(s.links, l.handle)
		s.refused[l.handle] = true
		s.c.out.frame(frameAMQP, s.ch, perf(codeDetach, list{l.handle, true,
			newError(condNotFound, "the messaging entity was deleted").value()}), nil)
		return nil
	}
	var state any = described{uint64(codeAccepted), list{}}
	if e := l.accept(payload); e != nil {
		state = described{uint64(codeRejected), list{e.value()}}
	}
	if !l.settled {
		s := l.s
		s.c.out.frame(frameAMQP, s.ch,
			perf(codeDisposition, list{true, l.partialID, nil, true, state}), nil)
	}
	return nil
}

// accept processes one complete delivery; an error rejects it.
func (l *inLink) accept(payload []byte) *amqpError {
	c := l.s.c
	if l.tooBig {
		return newError(condMessageSize, "the message exceeds %d bytes", c.em.maxMessageSize)
	}
	switch l.kind {
	case linkCBS:
		return c.request(payload, c.em.cbs)
	case linkMgmt:
		return c.request(payload, func(req *message) *message { return c.em.manage(l.node, req) })
	}
	var msgs []*message
	var err error
	if l.format == batchFormat {
		msgs, err = splitBatch(payload)
	} else {
		var m *message
		m, err = parseMessage(payload)
		msgs = []*message{m}
	}
	if err != nil {
		return newError(condDecode, "the message cannot be decoded: %v", err)
	}
	for _, m := range msgs {
		if m.size > c.em.maxMessageSize {
			return newError(condMessageSize, "the message exceeds %d bytes", c.em.maxMessageSize)
		}
	}
	if l.node.st != nil && l.node.st.sessionsOn() {
		for _, m := range msgs {
			if _, ok := m.sessionID(); !ok {
				return newError(condNotAllowed, "'%s' requires sessions: "+
					"every message needs a session id", l.node.st.path)
			}
		}
	}
	l.node.send(time.Now(), msgs)
	return nil
}

// request runs a $cbs or $management request and routes the response to
// the client's link whose target is the request's reply-to.
func (c *conn) request(payload []byte, serve func(*message) *message) *amqpError {
	req, err := parseMessage(payload)
	if err != nil {
		return newError(condDecode, "the request cannot be decoded: %v", err)
	}
	replyTo, _ := req.prop(4).(string)
	resp := serve(req)
	resp.props = fields{nil, nil, replyTo, nil, nil, req.prop(0)}
	resp.propsRaw = appendValue(nil, described{uint64(secProperties), trim(list(resp.props))})
	l := c.replies[replyTo]
	if l == nil {
		return nil // nobody listens; the real service drops it too
	}
	payload = resp.encodeReply()
	encode := func(b []byte) []byte { return append(b, payload...) }
	if l.s.sendTransfer(l.handle, dotnetGUID(newToken()), true, nil, encode) {
		l.credit--
		l.deliveryCount++
	}
	return nil
}

// disposition applies the client's outcomes for our deliveries and
// answers each unsettled one, with lock-lost when the lock is gone.
func (s *session) disposition(f frame) {
	if !f.fields.boolean(0) {
		return // the client settles its own deliveries to us: nothing to do
	}
	first, _ := f.fields.u32(1)
	last, ok := f.fields.u32(2)
	if !ok || last < first {
		last = first
	}
	if last-first >= maxDispositionRange {
		last = first + maxDispositionRange - 1
	}
	settled := f.fields.boolean(3)
	state := f.fields.get(4)
	o, final := outcomeOf(state)
	if !final {
		if !settled {
			return // a non-terminal state: wait for the outcome
		}
		// Settled with no outcome: the message goes back, as on release.
		o, final = settleOutcome{kind: outcomeRelease}, true
	}

	if o.kind == outcomeDeadLetter {
		// Echoing the error would fail the client's settlement: the
		// service answers a dead-letter with a bare rejected.
		state = described{uint64(codeRejected), list{}}
	}
	runStart, runOK := first, true
	flush := func(end uint32) {
		if settled {
			return
		}
		st := state
		if !runOK {
			st = described{uint64(codeRejected), list{(&amqpError{Condition: condLockLost,
				Description: errLockLost.Error()}).value()}}
		}
		s.c.out.frame(frameAMQP, s.ch, perf(codeDisposition, list{false, runStart, end, true, st}), nil)
	}
	for id := first; ; id++ {
		s.mu.Lock()
		d, known := s.unsettled[id]
		delete(s.unsettled, id)
		s.mu.Unlock()
		ok := known && d.st.settle(d.token, o) == nil
		if id == first {
			runOK = ok
		} else if ok != runOK {
			flush(id - 1)
			runStart, runOK = id, ok
		}
		if id == last {
			break
		}
	}
	flush(last)
}

// outcomeOf maps an AMQP delivery state to a Service Bus settlement;
// final is false for a non-terminal state (received, or none).
func outcomeOf(state any) (settleOutcome, bool) {
	f, code, ok := composite(state)
	if !ok {
		return settleOutcome{}, false
	}
	switch code {
	case codeAccepted:
		return settleOutcome{kind: outcomeComplete}, true
	case codeReleased:
		// Service Bus does not count a release as a delivery: azservicebus
		// releases whatever arrives between ReceiveMessages calls.
		return settleOutcome{kind: outcomeRelease}, true
	case codeModified:
		props, _ := f.get(2).(amqpMap)
		if f.boolean(1) {
			return settleOutcome{kind: outcomeDefer, props: props}, true
		}
		return settleOutcome{kind: outcomeAbandon, props: props}, true
	case codeRejected:
		o := settleOutcome{kind: outcomeDeadLetter}
		if e := parseError(f.get(0)); e != nil {
			for _, p := range e.Info {
				k := p.Key
				if s, ok := k.(symbol); ok {
					k = string(s)
				}
				switch k {
				case propDLReason:
					o.reason, _ = p.Value.(string)
				case propDLDescription:
					o.desc, _ = p.Value.(string)
				default:
					o.props = append(o.props, p)
				}
			}
			if e.Condition != condDeadLetter && o.reason == "" {
				o.reason, o.desc = string(e.Condition), e.Description
			}
		}
		return o, true
	}
	return settleOutcome{}, false
}
