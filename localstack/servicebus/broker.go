package servicebus

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// EntityProperties are the settings of a queue or subscription that the
// emulator honours. Zero values take the Service Bus defaults.
type EntityProperties struct {
	// LockDuration is how long a peek-lock lasts; default 60 s, at most 5 min.
	LockDuration time.Duration
	// MaxDeliveryCount is how many deliveries a message gets before it is
	// dead-lettered with MaxDeliveryCountExceeded; default 10.
	MaxDeliveryCount int
	// DefaultMessageTimeToLive caps each message's time to live; 0 means
	// messages never expire unless they set their own.
	DefaultMessageTimeToLive time.Duration
	// DeadLetteringOnMessageExpiration moves expired messages to the
	// dead-letter queue (reason TTLExpiredException) instead of dropping.
	DeadLetteringOnMessageExpiration bool
	// RequiresSession makes the entity hand messages out by session:
	// only session receivers may attach, each holding one session's lock
	// (LockDuration, renewable) and receiving that session's messages in
	// order. A queue rejects messages without a session id; a
	// subscription dead-letters its copy (reason "SessionIdIsMissing").
	RequiresSession bool
}

func (p EntityProperties) withDefaults() EntityProperties {
	if p.LockDuration <= 0 {
		p.LockDuration = 60 * time.Second
	}
	if p.MaxDeliveryCount <= 0 {
		p.MaxDeliveryCount = 10
	}
	return p
}

func (p EntityProperties) validate(op, name string) error {
	if p.LockDuration > 5*time.Minute {
		return fmt.Errorf("servicebus: %s %q: LockDuration %s exceeds 5m: %w",
			op, name, p.LockDuration, providers.ErrInvalid)
	}
	if p.LockDuration < 0 || p.MaxDeliveryCount < 0 || p.DefaultMessageTimeToLive < 0 {
		return fmt.Errorf("servicebus: %s %q: negative property: %w", op, name, providers.ErrInvalid)
	}
	return nil
}

// topic fans each message out to its subscriptions.
type topic struct {
	name      string
	props     EntityProperties
	nextSeq   atomic.Int64
	mu        sync.RWMutex
	subs      map[string]*subscription // by lower-case name
	scheduled *store                   // scheduled messages wait here
	deleted   atomic.Bool
}

type subscription struct {
	name  string
	st    *store
	mu    sync.RWMutex // guards rules
	rules []Rule
}

// broker is the namespace: every queue and topic by lower-case name.
type broker struct {
	mu     sync.RWMutex
	queues map[string]*store
	topics map[string]*topic
}

func newBroker() *broker {
	return &broker{queues: map[string]*store{}, topics: map[string]*topic{}}
}

// node is what an address resolves to.
type node struct {
	st    *store // queue, subscription or dead-letter queue
	topic *topic // a topic itself
	mgmt  bool   // the address ended in /$management
}

// resolve maps an address (entity path, optionally with the dead-letter
// or $management suffixes, or a full amqp:// audience) to its node.
// Names compare case-insensitively, as in Service Bus.
func (b *broker) resolve(addr string) (node, bool) {
	if i := strings.Index(addr, "://"); i >= 0 {
		rest := addr[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return node{}, false
		}
		addr = rest[j+1:]
	}
	p := strings.ToLower(strings.Trim(addr, "/"))
	var n node
	if s, ok := strings.CutSuffix(p, "/$management"); ok {
		p, n.mgmt = s, true
	}
	dlq, xfer := false, false
	if s, ok := strings.CutSuffix(p, "/$deadletterqueue"); ok {
		p, dlq = s, true
		if s, ok := strings.CutSuffix(p, "/$transfer"); ok {
			p, xfer = s, true
		}
	}

	b.mu.RLock()
	defer b.mu.RUnlock()
	if tname, sname, ok := strings.Cut(p, "/subscriptions/"); ok {
		t := b.topics[tname]
		if t == nil {
			return node{}, false
		}
		t.mu.RLock()
		sub := t.subs[sname]
		t.mu.RUnlock()
		if sub == nil {
			return node{}, false
		}
		n.st = sub.st
	} else if q := b.queues[p]; q != nil {
		n.st = q
	} else if t := b.topics[p]; t != nil && !dlq {
		n.topic = t
		return n, true
	} else {
		return node{}, false
	}
	if xfer {
		n.st = n.st.dlq.xferStore()
	} else if dlq {
		n.st = n.st.dlq
	}
	return n, true
}

// xferStore returns the always-empty transfer dead-letter queue: the
// emulator forwards nothing, so nothing is ever dead-lettered in transfer.
func (s *store) xferStore() *store {
	return newStore(s.path+"/$Transfer", s.props, true)
}

// gone reports whether the queue or topic was deleted after the link
// to it was attached.
func (n node) gone() bool {
	if n.st != nil {
		return n.st.deleted.Load()
	}
	return n.topic.deleted.Load()
}

// send accepts messages for a queue or topic at one instant.
func (n node) send(now time.Time, msgs []*message) {
	if n.st != nil {
		n.st.assignSeq(now, msgs)
		n.st.enqueue(now, msgs...)
		return
	}
	n.topic.publish(now, msgs)
}

// publish numbers the messages, holds scheduled ones and copies the rest
// to every subscription whose rules match.
func (t *topic) publish(now time.Time, msgs []*message) {
	var due []*message
	for _, m := range msgs {
		m.seq = t.nextSeq.Add(1)
		stamp(m, now, t.props)
		if m.state == msgStateSchedul {
			t.scheduled.enqueue(now, m)
			continue
		}
		due = append(due, m)
	}
	t.fanOut(now, due)
}

func (t *topic) fanOut(now time.Time, msgs []*message) {
	if len(msgs) == 0 {
		return
	}
	t.mu.RLock()
	subs := make([]*subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.RUnlock()
	for _, sub := range subs {
		var copies, noSession []*message
		for _, m := range msgs {
			if sub.matches(m) {
				c := m.clone()
				c.state, c.scheduledAt = 0, time.Time{}
				if p := sub.st.props.DefaultMessageTimeToLive; p > 0 && (c.ttl <= 0 || c.ttl > p) {
					c.ttl, c.expiresAt = p, c.enqueued.Add(p)
				}
				if _, ok := c.sessionID(); !ok && sub.st.sessionsOn() {
					noSession = append(noSession, c)
					continue
				}
				copies = append(copies, c)
			}
		}
		if len(copies) > 0 {
			sub.st.enqueue(now, copies...)
		}
		if len(noSession) > 0 {
			sub.st.deadLetterNoSession(now, noSession)
		}
	}
}

// sweepTopic releases the topic's due scheduled messages to the
// subscriptions.
func (t *topic) sweep(now time.Time) {
	s := t.scheduled
	s.mu.Lock()
	var due []*message
	if !s.nextCheck.IsZero() && !now.Before(s.nextCheck) {
		s.nextCheck = time.Time{}
		for seq, m := range s.scheduled {
			if !now.Before(m.scheduledAt) {
				delete(s.scheduled, seq)
				due = append(due, m)
			} else {
				s.deadline(m.scheduledAt)
			}
		}
	}
	s.mu.Unlock()
	t.fanOut(now, due)
}

// sweep runs every store's and topic's deadlines.
func (b *broker) sweep(now time.Time) {
	b.mu.RLock()
	var stores []*store
	var topics []*topic
	for _, q := range b.queues {
		stores = append(stores, q, q.dlq)
	}
	for _, t := range b.topics {
		topics = append(topics, t)
		t.mu.RLock()
		for _, s := range t.subs {
			stores = append(stores, s.st, s.st.dlq)
		}
		t.mu.RUnlock()
	}
	b.mu.RUnlock()
	for _, s := range stores {
		s.sweep(now)
	}
	for _, t := range topics {
		t.sweep(now)
	}
}
