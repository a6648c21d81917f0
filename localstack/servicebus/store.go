package servicebus

import (
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var (
	errLockLost   = errors.New("the lock on the message is lost or was never held")
	errNoMessages = errors.New("no messages")
)

// store holds the messages of one queue, subscription or dead-letter
// queue, under one mutex. Messages are ready, locked (peek-lock, by lock
// token), deferred or scheduled (by sequence number).
type store struct {
	mu        sync.Mutex
	path      string // entity path as created, e.g. "t/Subscriptions/c"
	props     EntityProperties
	dlq       *store // nil for a dead-letter queue itself
	isDLQ     bool
	isSub     bool       // a subscription: clients cannot send to it
	ready     []*message // ordered by sequence number from head on
	head      int
	locked    map[uuid]*message
	deferred  map[int64]*message
	scheduled map[int64]*message
	consumers []*outLink
	rr        int
	sessions  map[string]*msgSession // sessionsOn: locks and state by session id
	waiters   []*outLink             // next-available session receivers, oldest first
	nextSeq   int64                  // queues only; topics number their own messages
	nextCheck time.Time              // earliest lock, schedule or TTL deadline
	deleted   atomic.Bool            // set by Delete*: senders get not-found
}

func newStore(path string, props EntityProperties, isDLQ bool) *store {
	s := &store{
		path: path, props: props, isDLQ: isDLQ,
		locked:    map[uuid]*message{},
		deferred:  map[int64]*message{},
		scheduled: map[int64]*message{},
		sessions:  map[string]*msgSession{},
		nextSeq:   1,
	}
	if !isDLQ {
		s.dlq = newStore(path+"/$DeadLetterQueue", props, true)
	}
	return s
}

func newToken() uuid {
	var u uuid
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// deadline lowers nextCheck to t.
func (s *store) deadline(t time.Time) {
	if !t.IsZero() && (s.nextCheck.IsZero() || t.Before(s.nextCheck)) {
		s.nextCheck = t
	}
}

// enqueue adds messages that already carry sequence numbers (assigned by
// assignSeq or by the topic) and delivers what it can.
func (s *store) enqueue(now time.Time, msgs ...*message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.addLocked(now, m)
	}
	s.dispatchLocked(now)
}

// assignSeq numbers messages for a queue and stamps enqueue facts.
func (s *store) assignSeq(now time.Time, msgs []*message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		m.seq = s.nextSeq
		s.nextSeq++
		stamp(m, now, s.props)
	}
}

// stamp sets the enqueue time, TTL and schedule of a new message.
func stamp(m *message, now time.Time, p EntityProperties) {
	m.enqueued = now
	if m.ttl <= 0 || (p.DefaultMessageTimeToLive > 0 && m.ttl > p.DefaultMessageTimeToLive) {
		m.ttl = p.DefaultMessageTimeToLive
	}
	if m.ttl > 0 {
		m.expiresAt = now.Add(m.ttl)
	}
	if t, ok := m.scheduledTime(); ok && t.After(now) {
		m.scheduledAt, m.state = t, msgStateSchedul
	}
}

func (s *store) addLocked(now time.Time, m *message) {
	if m.state == msgStateSchedul {
		s.scheduled[m.seq] = m
		s.deadline(m.scheduledAt)
		return
	}
	s.pushReady(m)
	if !s.isDLQ {
		s.deadline(m.expiresAt)
	}
}

// pushReady inserts m in sequence order; new messages append.
func (s *store) pushReady(m *message) {
	m.state = 0
	q := s.ready[s.head:]
	if len(q) == 0 || q[len(q)-1].seq < m.seq {
		s.ready = append(s.ready, m)
		return
	}
	i, _ := slices.BinarySearchFunc(q, m.seq, func(x *message, seq int64) int {
		return int(x.seq - seq)
	})
	s.ready = slices.Insert(s.ready, s.head+i, m)
}

func (s *store) popReady() *message {
	m := s.ready[s.head]
	s.ready[s.head] = nil
	s.head++
	if s.head == len(s.ready) {
		s.ready, s.head = s.ready[:0], 0
	} else if s.head > 1024 && s.head > len(s.ready)/2 {
		s.ready = append(s.ready[:0], s.ready[s.head:]...)
		s.head = 0
	}
	return m
}

// dispatchLocked hands ready messages to consumers with credit, round
// robin, locking them (peek-lock) or removing them (receive-and-delete).
func (s *store) dispatchLocked(now time.Time) {
	if s.sessionsOn() {
		s.dispatchSessionsLocked(now)
		return
	}
	for s.head < len(s.ready) && len(s.consumers) > 0 {
		var c *outLink
		for range s.consumers {
			s.rr = (s.rr + 1) % len(s.consumers)
			if s.consumers[s.rr].credit > 0 {
				c = s.consumers[s.rr]
				break
			}
		}
		if c == nil {
			return
		}
		m := s.popReady()
		if s.expiredLocked(now, m) {
			continue
		}
		if c.receiveAndDelete {
			if !c.deliver(m, nil, time.Time{}) {
				s.pushReady(m)
				s.removeConsumerLocked(c)
			}
			continue
		}
		m.lockToken = newToken()
		m.lockedUntil = now.Add(s.props.LockDuration)
		s.locked[m.lockToken] = m
		s.deadline(m.lockedUntil)
		if !c.deliver(m, &m.lockToken, m.lockedUntil) {
			delete(s.locked, m.lockToken)
			s.pushReady(m)
			s.removeConsumerLocked(c)
		}
	}
}

// expiredLocked dead-letters or drops m when its time to live is over.
func (s *store) expiredLocked(now time.Time, m *message) bool {
	if s.isDLQ || m.expiresAt.IsZero() || now.Before(m.expiresAt) {
		return false
	}
	if s.props.DeadLetteringOnMessageExpiration {
		s.deadLetterLocked(now, m, "TTLExpiredException", "The message expired and was dead lettered.")
	}
	return true
}

// deadLetterLocked moves m to the dead-letter queue with a reason.
func (s *store) deadLetterLocked(now time.Time, m *message, reason, desc string) {
	if s.dlq == nil {
		// Nothing is dead-lettered out of a dead-letter queue: keep it.
		s.pushReady(m)
		return
	}
	var set amqpMap
	if reason != "" {
		set = append(set, pair{propDLReason, reason})
	}
	if desc != "" {
		set = append(set, pair{propDLDescription, desc})
	}
	m.withProps(set)
	m.expiresAt = time.Time{}
	s.dlq.enqueue(now, m)
}

func (s *store) addConsumer(c *outLink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consumers = append(s.consumers, c)
}

func (s *store) removeConsumer(c *outLink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.sessionful {
		now := time.Now()
		s.releaseSessionLocked(now, c, false)
		s.dispatchLocked(now)
		return
	}
	s.removeConsumerLocked(c)
}

func (s *store) removeConsumerLocked(c *outLink) {
	if i := slices.Index(s.consumers, c); i >= 0 {
		s.consumers = slices.Delete(s.consumers, i, i+1)
	}
}

// flow applies a receiver's flow: credit = its delivery-count plus its
// link-credit minus what was sent. With drain, unused credit is spent.
func (s *store) flow(c *outLink, deliveryCount, linkCredit uint32, drain, echo bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.credit = deliveryCount + linkCredit - c.deliveryCount
	if c.credit > 1<<20 {
		c.credit = 0 // delivery-count ahead of ours: a confused peer
	}
	s.dispatchLocked(time.Now())
	if drain {
		// Spend what is left and tell the receiver, even when nothing was.
		c.deliveryCount += c.credit
		c.credit = 0
	}
	if drain || echo {
		c.sendFlow(drain)
	}
}

// settleOutcome is how a lock holder ends a delivery.
type settleOutcome struct {
	kind   int     // outcome* constants
	props  amqpMap // properties to modify
	reason string
	desc   string
}

const (
	outcomeComplete = iota
	outcomeAbandon
	outcomeRelease
	outcomeDefer
	outcomeDeadLetter
)

// settle ends the lock named by token.
func (s *store) settle(token uuid, o settleOutcome) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.locked[token]
	if !ok || now.After(m.lockedUntil) {
		return errLockLost
	}
	delete(s.locked, token)
	switch o.kind {
	case outcomeAbandon:
		m.withProps(o.props)
		s.redeliverLocked(now, m)
	case outcomeRelease:
		if m.state == msgStateDefer {
			s.deferred[m.seq] = m
		} else {
			s.pushReady(m)
		}
	case outcomeDefer:
		m.withProps(o.props)
		m.state = msgStateDefer
		s.deferred[m.seq] = m
	case outcomeDeadLetter:
		m.withProps(o.props)
		s.deadLetterLocked(now, m, o.reason, o.desc)
	}
	s.dispatchLocked(now)
	return nil
}

// redeliverLocked counts a failed delivery and makes m ready again, or
// dead-letters it once it has been delivered MaxDeliveryCount times.
func (s *store) redeliverLocked(now time.Time, m *message) {
	m.deliveryCount++
	if !s.isDLQ && int(m.deliveryCount) >= s.props.MaxDeliveryCount {
		s.deadLetterLocked(now, m, "MaxDeliveryCountExceeded",
			"Message could not be consumed after the maximum delivery attempts.")
		return
	}
	if m.state == msgStateDefer {
		s.deferred[m.seq] = m
		return
	}
	s.pushReady(m)
}

// renew extends a lock by the lock duration and returns the new end.
func (s *store) renew(token uuid) (time.Time, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.locked[token]
	if !ok || now.After(m.lockedUntil) {
		return time.Time{}, errLockLost
	}
	m.lockedUntil = now.Add(s.props.LockDuration)
	return m.lockedUntil, nil
}

// sweep expires locks, enqueues due scheduled messages and drops or
// dead-letters expired ones. It scans only once a deadline has passed.
func (s *store) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextCheck.IsZero() || now.Before(s.nextCheck) {
		return
	}
	s.nextCheck = time.Time{}
	if s.sessionsOn() {
		s.sweepSessionsLocked(now)
	}
	for tok, m := range s.locked {
		if now.After(m.lockedUntil) {
			delete(s.locked, tok)
			s.redeliverLocked(now, m)
		} else {
			s.deadline(m.lockedUntil)
		}
	}
	for seq, m := range s.scheduled {
		if !now.Before(m.scheduledAt) {
			delete(s.scheduled, seq)
			s.pushReady(m)
		} else {
			s.deadline(m.scheduledAt)
		}
	}
	if !s.isDLQ {
		kept := s.ready[:s.head]
		for _, m := range s.ready[s.head:] {
			if !s.expiredLocked(now, m) {
				kept = append(kept, m)
				s.deadline(m.expiresAt)
			}
		}
		clear(s.ready[len(kept):])
		s.ready = kept
	}
	s.dispatchLocked(now)
}

// Stats counts the messages of one queue, subscription or dead-letter
// queue at one instant.
type Stats struct {
	Active    int // ready to be received
	Locked    int // received in peek-lock and not yet settled
	Deferred  int
	Scheduled int
}

// Total is every message the entity holds.
func (s Stats) Total() int { return s.Active + s.Locked + s.Deferred + s.Scheduled }

func (s *store) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{len(s.ready) - s.head, len(s.locked), len(s.deferred), len(s.scheduled)}
}
