package memory

import (
	"sync"
	"time"
)

// The states of an entry in its queue.
const (
	stReady   uint8 = iota + 1 // in q.ready, deliverable now
	stPending                  // behind the head of its ordering group
	stLeased                   // leased to a receiver until deadline
	stDelayed                  // nacked with a delay, visible at deadline
	stDone                     // acked, dead-lettered or dropped
)

// epoch is the origin of the queues' clock: deadlines are nanoseconds on the
// monotonic clock since it, so that comparing them is an integer compare.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

func wallTime(t int64) time.Time { return epoch.Add(time.Duration(t)) }

// entry is one message in one consumer's queue. A Delivery's handle points
// at the entry together with the entry's gen at lease time: every change of
// the lease (settlement, expiry, release) bumps gen, which fences old
// handles.
type entry struct {
	msg      *stored // shared read-only by every consumer
	group    *group  // ordering group, nil without a key
	deadline int64   // lease end or visible time, while in the heap
	gen      uint32
	attempts int32 // deliveries so far
	hidx     int32 // index in q.timers, -1 when not there
	state    uint8
}

// group is an ordering group: the messages of one ordering key. Its head
// (the entry that is ready, leased or delayed) is not in pending; the rest
// wait in pending, in send order, until the head is settled.
type group struct {
	key     string
	pending []*entry
	next    int // index of the first pending entry
}

// queue is a leased queue: one consumer's queue or dead-letter queue. Every
// field is guarded by mu; receivers wait on notify, which is closed (and
// replaced) when entries become ready.
type queue struct {
	name    string // "topic/consumer" or "topic/consumer (dead letters)"
	ordered bool   // whether ordering keys group messages (false for DLQs)

	mu      sync.Mutex
	ready   ring
	groups  map[string]*group
	free    []*group // spare groups, so that a key costs no allocation
	timers  []*entry // min-heap of leased and delayed entries by deadline
	timer   *time.Timer
	timerAt int64 // deadline the timer is set for, 0 when unset
	notify  chan struct{}
	closed  bool

	pending   int // entries in stPending
	leased    int
	delayed   int
	delivered uint64
	acked     uint64
}

func newQueue(name string, ordered bool) *queue {
	q := &queue{name: name, ordered: ordered}
	if ordered {
		q.groups = make(map[string]*group)
	}
	return q
}

// enqueueLocked adds a new entry: ready, or pending behind its group's
// head. The caller wakes the receivers.
func (q *queue) enqueueLocked(e *entry) {
	e.hidx = -1
	if !q.ordered || e.msg.OrderingKey == "" {
		e.state = stReady
		q.ready.pushBack(e)
		return
	}
	g := q.groups[e.msg.OrderingKey]
	if g != nil {
		e.group = g
		e.state = stPending
		g.pending = append(g.pending, e)
		q.pending++
		return
	}
	if n := len(q.free); n > 0 {
		g = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		g = new(group)
	}
	g.key = e.msg.OrderingKey
	q.groups[g.key] = g
	e.group = g
	e.state = stReady
	q.ready.pushBack(e)
}

// wakeLocked wakes every waiting receiver.
func (q *queue) wakeLocked() {
	if q.notify != nil {
		close(q.notify)
		q.notify = nil
	}
}

// waitChanLocked returns the channel closed at the next wake-up.
func (q *queue) waitChanLocked() chan struct{} {
	if q.notify == nil {
		q.notify = make(chan struct{})
	}
	return q.notify
}

// leaseLocked leases the entry at the head of q.ready until deadline.
func (q *queue) leaseLocked(deadline int64) *entry {
	e := q.ready.popFront()
	e.state = stLeased
	e.gen++
	e.attempts++
	e.deadline = deadline
	q.pushTimerLocked(e)
	q.leased++
	q.delivered++
	return e
}

// checkLocked reports whether the handle's lease on e still holds at t,
// expiring the lease first when its deadline passed.
func (q *queue) checkLocked(e *entry, gen uint32, t int64) bool {
	if e.state != stLeased || e.gen != gen {
		return false
	}
	if t >= e.deadline {
		q.expireLocked(t)
		return false
	}
	return true
}

// removeLocked takes a leased entry out of the queue for good (ack or dead
// letter) and lets the next message of its ordering group through.
func (q *queue) removeLocked(e *entry) {
	q.removeTimerLocked(e)
	q.leased--
	e.gen++
	e.state = stDone
	e.msg = nil
	if e.group != nil {
		q.advanceLocked(e.group)
		e.group = nil
	}
}

// advanceLocked makes the next pending entry of g its head, or retires g
// when none is left.
func (q *queue) advanceLocked(g *group) {
	if g.next < len(g.pending) {
		e := g.pending[g.next]
		g.pending[g.next] = nil
		g.next++
		switch {
		case g.next == len(g.pending):
			g.pending, g.next = g.pending[:0], 0
		case g.next >= 64 && 2*g.next >= len(g.pending):
			// A key that never drains would grow pending for ever:
			// drop the consumed half.
			n := copy(g.pending, g.pending[g.next:])
			clear(g.pending[n:])
			g.pending, g.next = g.pending[:n], 0
		}
		q.pending--
		e.state = stReady
		q.ready.pushBack(e)
		q.wakeLocked()
		return
	}
	delete(q.groups, g.key)
	g.key, g.pending, g.next = "", g.pending[:0], 0
	if cap(g.pending) > 256 {
		g.pending = nil
	}
	if len(q.free) < 1024 {
		q.free = append(q.free, g)
	}
}

// requeueLocked ends a lease without settling it: the entry is visible
// again at visibleAt (at once when visibleAt <= t), at the head of its
// ordering group, which it never left.
func (q *queue) requeueLocked(e *entry, visibleAt, t int64, front bool) {
	q.removeTimerLocked(e)
	q.leased--
	e.gen++
	if visibleAt > t {
		e.state = stDelayed
		e.deadline = visibleAt
		q.pushTimerLocked(e)
		q.delayed++
		return
	}
	e.state = stReady
	if front {
		q.ready.pushFront(e)
	} else {
		q.ready.pushBack(e)
	}
	q.wakeLocked()
}

// expireLocked ends every lease and delay whose deadline is at or before t.
// An expired lease puts its entry back first in line, a delay that ended
// puts its entry back last.
func (q *queue) expireLocked(t int64) {
	for len(q.timers) > 0 && q.timers[0].deadline <= t {
		e := q.timers[0]
		switch e.state {
		case stLeased:
			q.requeueLocked(e, 0, t, true)
		case stDelayed:
			q.removeTimerLocked(e)
			q.delayed--
			e.state = stReady
			q.ready.pushBack(e)
			q.wakeLocked()
		default:
			q.removeTimerLocked(e) // unreachable: only timed entries are there
		}
	}
}

// armLocked sets the queue's one timer for the earliest deadline, unless it
// is already set for that time or earlier.
func (q *queue) armLocked(t int64) {
	if len(q.timers) == 0 || q.closed {
		return
	}
	at := q.timers[0].deadline
	if q.timerAt != 0 && q.timerAt <= at {
		return
	}
	q.timerAt = at
	d := time.Duration(at - t)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.fire)
		return
	}
	q.timer.Reset(d)
}

// fire runs on the timer's goroutine: it expires what is due and sets the
// timer for the next deadline.
func (q *queue) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.timerAt = 0
	if q.closed {
		return
	}
	t := now()
	q.expireLocked(t)
	q.armLocked(t)
}

// close stops the timer and wakes every receiver, which then sees closed.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.wakeLocked()
}
