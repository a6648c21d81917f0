package servicebus

import (
	"errors"
	"slices"
	"time"
)

// Management operations (application property "operation").
const (
	opPutToken       = "put-token"
	opRenewLock      = "com.microsoft:renew-lock"
	opPeek           = "com.microsoft:peek-message"
	opSchedule       = "com.microsoft:schedule-message"
	opCancel         = "com.microsoft:cancel-scheduled-message"
	opReceiveBySeq   = "com.microsoft:receive-by-sequence-number"
	opUpdateDisposal = "com.microsoft:update-disposition"
)

// rpcReply builds a response; statusKey/descKey differ between $cbs
// (status-code) and $management (statusCode).
func rpcReply(statusKey, descKey string, status int32, desc string, body amqpMap) *message {
	m := &message{appProps: amqpMap{{statusKey, status}, {descKey, desc}}}
	var v any
	if body != nil {
		v = body
	}
	m.body = appendValue(nil, described{uint64(0x77), v})
	return m
}

func mgmtReply(status int32, desc string, body amqpMap) *message {
	return rpcReply("statusCode", "statusDescription", status, desc, body)
}

// requestBody returns the amqp-value map of a request.
func requestBody(req *message) amqpMap {
	v, _, err := decodeValue(req.body)
	if err != nil {
		return nil
	}
	d, _ := v.(described)
	m, _ := d.Value.(amqpMap)
	return m
}

// cbs answers put-token: any token is accepted for an entity that exists;
// 404 otherwise, which the SDK reports as CodeNotFound.
func (em *Emulator) cbs(req *message) *message {
	op, _ := req.appProps.Get("operation").(string)
	if op != opPutToken {
		return rpcReply("status-code", "status-description", 400, "unsupported operation", nil)
	}
	name, _ := req.appProps.Get("name").(string)
	if _, ok := em.broker.resolve(name); !ok {
		return rpcReply("status-code", "status-description", 404,
			"The messaging entity could not be found.", nil)
	}
	return rpcReply("status-code", "status-description", 202, "Accepted", nil)
}

// manage runs one $management operation against n.
func (em *Emulator) manage(n node, req *message) *message {
	op, _ := req.appProps.Get("operation").(string)
	body := requestBody(req)
	now := time.Now()
	switch op {
	case opSchedule:
		return em.schedule(n, body, now)
	case opCancel:
		return cancelScheduled(n, body)
	}
	if n.st == nil {
		return mgmtReply(400, "operation "+op+" is not supported on a topic", nil)
	}
	st := n.st
	if reply, ok := manageSession(st, op, body); ok {
		return reply
	}
	switch op {
	case opRenewLock:
		tokens, _ := body.Get("lock-tokens").(amqpArray)
		var out amqpArray
		for _, t := range tokens {
			u, _ := t.(uuid)
			until, err := st.renew(u)
			if err != nil {
				return mgmtReply(410, errLockLost.Error(), nil)
			}
			out = append(out, until)
		}
		return mgmtReply(200, "", amqpMap{{"expirations", out}})
	case opPeek:
		from, _ := body.Get("from-sequence-number").(int64)
		count, _ := body.Get("message-count").(int32)
		msgs := st.peek(from, int(count))
		if len(msgs) == 0 {
			return mgmtReply(204, "no messages", nil)
		}
		return mgmtReply(200, "", amqpMap{{"messages", msgs}})
	case opReceiveBySeq:
		seqs, _ := body.Get("sequence-numbers").(amqpArray)
		mode, _ := body.Get("receiver-settle-mode").(uint32)
		msgs, err := st.receiveDeferred(seqs, mode == 0)
		if err != nil {
			return mgmtReply(404, err.Error(), nil)
		}
		return mgmtReply(200, "", amqpMap{{"messages", msgs}})
	case opUpdateDisposal:
		return updateDisposition(st, body)
	}
	return mgmtReply(501, "operation "+op+" is not supported by the emulator", nil)
}

func updateDisposition(st *store, body amqpMap) *message {
	status, _ := body.Get("disposition-status").(string)
	o := settleOutcome{}
	o.props, _ = body.Get("properties-to-modify").(amqpMap)
	switch status {
	case "completed":
		o.kind = outcomeComplete
	case "abandoned":
		o.kind = outcomeAbandon
	case "defered", "deferred":
		o.kind = outcomeDefer
	case "suspended":
		o.kind = outcomeDeadLetter
		o.reason, _ = body.Get("deadletter-reason").(string)
		o.desc, _ = body.Get("deadletter-description").(string)
	default:
		return mgmtReply(400, "unknown disposition-status "+status, nil)
	}
	tokens, _ := body.Get("lock-tokens").(amqpArray)
	for _, t := range tokens {
		u, _ := t.(uuid)
		if err := st.settle(u, o); err != nil {
			return mgmtReply(410, err.Error(), nil)
		}
	}
	return mgmtReply(200, "", nil)
}

// schedule enqueues messages that carry x-opt-scheduled-enqueue-time and
// returns their sequence numbers.
func (em *Emulator) schedule(n node, body amqpMap, now time.Time) *message {
	entries, _ := body.Get("messages").(list)
	var msgs []*message
	for _, e := range entries {
		em, _ := e.(amqpMap)
		raw, _ := em.Get("message").([]byte)
		m, err := parseMessage(raw)
		if err != nil {
			return mgmtReply(400, "a scheduled message cannot be decoded", nil)
		}
		msgs = append(msgs, m)
	}
	n.send(now, msgs)
	seqs := make(amqpArray, 0, len(msgs))
	for _, m := range msgs {
		seqs = append(seqs, m.seq)
	}
	return mgmtReply(200, "", amqpMap{{"sequence-numbers", seqs}})
}

func cancelScheduled(n node, body amqpMap) *message {
	seqs, _ := body.Get("sequence-numbers").(amqpArray)
	st := n.st
	if n.topic != nil {
		st = n.topic.scheduled
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, s := range seqs {
		seq, _ := s.(int64)
		delete(st.scheduled, seq)
	}
	return mgmtReply(200, "", nil)
}

// peek returns up to count encoded messages from sequence number from on,
// whatever their state, without locking them.
func (s *store) peek(from int64, count int) list {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*message
	add := func(m *message) {
		if m.seq >= from {
			all = append(all, m)
		}
	}
	for _, m := range s.ready[s.head:] {
		add(m)
	}
	for _, m := range s.locked {
		add(m)
	}
	for _, m := range s.deferred {
		add(m)
	}
	for _, m := range s.scheduled {
		add(m)
	}
	slices.SortFunc(all, func(a, b *message) int { return int(a.seq - b.seq) })
	if count <= 0 {
		count = 1
	}
	out := list{}
	for _, m := range all[:min(count, len(all))] {
		out = append(out, amqpMap{{"message", m.encode(nil, nil, time.Time{})}})
	}
	return out
}

var errNotDeferred = errors.New("the message with this sequence number is not deferred")

// receiveDeferred locks (or, in receive-and-delete, removes) deferred
// messages by sequence number.
func (s *store) receiveDeferred(seqs amqpArray, andDelete bool) (list, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range seqs {
		if seq, _ := v.(int64); s.deferred[seq] == nil {
			return nil, errNotDeferred
		}
	}
	out := list{}
	for _, v := range seqs {
		seq, _ := v.(int64)
		m := s.deferred[seq]
		if m == nil {
			continue // named twice
		}
		delete(s.deferred, seq)
		if andDelete {
			out = append(out, amqpMap{{"message", m.encode(nil, nil, time.Time{})}})
			continue
		}
		m.lockToken = newToken()
		m.lockedUntil = now.Add(s.props.LockDuration)
		s.locked[m.lockToken] = m
		s.deadline(m.lockedUntil)
		out = append(out, amqpMap{{"message", m.encode(nil, &m.lockToken, m.lockedUntil)}})
	}
	return out, nil
}
