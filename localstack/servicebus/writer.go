package servicebus

import (
	"net"
	"sync"
	"time"
)

// maxPending bounds the bytes queued for one connection. A client that
// reads slower than the broker produces is disconnected past it, so a
// slow client never holds broker memory or blocks other connections.
const maxPending = 256 << 20

// writer owns the socket's write side. Callers append frames to pending
// under mu without blocking; the writer goroutine swaps the buffer out and
// writes it in one call, so frames queued together share a syscall.
type writer struct {
	nc      net.Conn
	mu      sync.Mutex
	pending []byte
	spare   []byte
	closed  bool
	wake    chan struct{}
	done    chan struct{}
	beat    chan time.Duration
}

func newWriter(nc net.Conn) *writer {
	return &writer{
		nc: nc, wake: make(chan struct{}, 1), done: make(chan struct{}),
		beat: make(chan time.Duration, 1),
	}
}

// frame queues one frame; false when the connection is closed.
func (w *writer) frame(typ byte, ch uint16, body any, payload []byte) bool {
	return w.append(func(b []byte) []byte { return appendFrame(b, typ, ch, body, payload) })
}

// append lets fill encode frames straight into the pending buffer.
func (w *writer) append(fill func([]byte) []byte) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.pending = fill(w.pending)
	over := len(w.pending) > maxPending
	if over {
		w.closed = true
	}
	w.mu.Unlock()
	if over {
		_ = w.nc.Close()
		return false
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

func (w *writer) startHeartbeat(every time.Duration) { w.beat <- every }

// run writes until close. It also sends an empty frame every heartbeat
// interval (half the client's idle timeout, at most 15 s), so that the
// client's idle timer never fires.
func (w *writer) run() {
	defer close(w.done)
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		select {
		case d := <-w.beat:
			tick.Reset(d)
			continue
		case <-tick.C:
			w.append(func(b []byte) []byte { return appendFrame(b, frameAMQP, 0, nil, nil) })
			continue
		case <-w.wake:
		}
		w.mu.Lock()
		buf := w.pending
		w.pending = w.spare[:0]
		closed := w.closed
		w.mu.Unlock()
		if len(buf) > 0 {
			_ = w.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := w.nc.Write(buf); err != nil {
				w.mu.Lock()
				w.closed = true
				w.mu.Unlock()
				_ = w.nc.Close()
				return
			}
		}
		if cap(buf) <= 4<<20 {
			w.mu.Lock()
			w.spare = buf[:0]
			w.mu.Unlock()
		}
		if closed {
			return
		}
	}
}

// close stops accepting frames; the goroutine flushes what is queued
// (within a second) and exits.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	select {
	case <-w.done:
	case <-time.After(time.Second):
		_ = w.nc.Close()
		<-w.done
	}
}
