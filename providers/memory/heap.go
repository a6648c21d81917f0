package memory

// pushTimerLocked adds e to the deadline heap.
func (q *queue) pushTimerLocked(e *entry) {
	e.hidx = int32(len(q.timers))
	q.timers = append(q.timers, e)
	q.upLocked(int(e.hidx))
}

// removeTimerLocked takes e out of the deadline heap.
func (q *queue) removeTimerLocked(e *entry) {
	i := int(e.hidx)
	if i < 0 {
		return
	}
	last := len(q.timers) - 1
	if i != last {
		q.swapLocked(i, last)
	}
	q.timers[last] = nil
	q.timers = q.timers[:last]
	e.hidx = -1
	if i != last {
		if !q.downLocked(i) {
			q.upLocked(i)
		}
	}
}

// fixTimerLocked restores the heap after e's deadline changed.
func (q *queue) fixTimerLocked(e *entry) {
	if !q.downLocked(int(e.hidx)) {
		q.upLocked(int(e.hidx))
	}
}

func (q *queue) swapLocked(i, j int) {
	h := q.timers
	h[i], h[j] = h[j], h[i]
	h[i].hidx = int32(i)
	h[j].hidx = int32(j)
}

func (q *queue) upLocked(i int) {
	h := q.timers
	for i > 0 {
		p := (i - 1) / 2
		if h[p].deadline <= h[i].deadline {
			break
		}
		q.swapLocked(i, p)
		i = p
	}
}

// downLocked sifts element i down and reports whether it moved.
func (q *queue) downLocked(i int) bool {
	h := q.timers
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].deadline < h[l].deadline {
			m = r
		}
		if h[i].deadline <= h[m].deadline {
			break
		}
		q.swapLocked(i, m)
		i = m
	}
	return i > start
}

// ring is a double-ended queue of entries on a power-of-two ring buffer.
type ring struct {
	buf  []*entry
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) grow() {
	size := 2 * len(r.buf)
	if size == 0 {
		size = 64
	}
	buf := make([]*entry, size)
	for i := 0; i < r.n; i++ {
		buf[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = buf, 0
}

func (r *ring) pushBack(e *entry) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = e
	r.n++
}

func (r *ring) pushFront(e *entry) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1) & (len(r.buf) - 1)
	r.buf[r.head] = e
	r.n++
}

func (r *ring) popFront() *entry {
	e := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return e
}
