package memory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/seed06bc8277/herald/providers"
)

// sender is a providers.Topic of mem://.
type sender struct {
	p      *Provider
	t      *topic
	res    string // `topic "NAME"`, for errors
	closed atomic.Bool
}

// SendBatch puts a copy of each message into the queue of every consumer
// the topic has now. The copy takes the message's ID, body and ordering
// key; its attribute map is shared, read-only, with every delivery, so the
// caller must not modify it after the call. A message over 1 MiB fails
// alone with providers.ErrTooLarge, a nil one with providers.ErrInvalid,
// in a *providers.BatchError; the others are sent.
func (s *sender) SendBatch(ctx context.Context, msgs []*providers.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() || s.p.closed.Load() {
		return errClosed("send to", s.res)
	}
	if len(msgs) == 0 {
		return nil
	}
	copies, failed := copyMessages(s.p.in, "send to "+s.res, msgs)
	if len(copies) > 0 {
		for _, c := range *s.t.consumers.Load() {
			c.q.push(copies)
		}
	}
	if failed != nil {
		return failed
	}
	return nil
}

// Close stops the sender; later sends fail with providers.ErrClosed.
func (s *sender) Close() error {
	s.closed.Store(true)
	return nil
}

// copied is a message as a queue stores it, with its ProviderID.
type copied struct {
	msg *providers.Message
	id  string
}

// copyMessages validates msgs and copies the valid ones, in a few
// allocations for the whole batch: one array of messages, one buffer of
// bodies and one string of ProviderIDs. Each copy gets the next sequence
// number of the instance as its ProviderID.
func copyMessages(in *instance, op string, msgs []*providers.Message) (
	[]copied, *providers.BatchError) {
	var failed *providers.BatchError
	fail := func(i int, err error) {
		if failed == nil {
			failed = &providers.BatchError{Failed: map[int]error{}}
		}
		failed.Failed[i] = err
	}

	// Validate, and size the body buffer.
	total, ok := 0, 0
	for i, m := range msgs {
		if m == nil {
			fail(i, fmt.Errorf("%w: memory: %s: message %d is nil",
				providers.ErrInvalid, op, i))
			continue
		}
		size := len(m.Body)
		for k, v := range m.Attributes {
			size += len(k) + len(v)
		}
		if size > MaxMessageBytes {
			fail(i, fmt.Errorf("%w: memory: %s: message %q is %d bytes, over %d",
				providers.ErrTooLarge, op, m.ID, size, MaxMessageBytes))
			continue
		}
		total += len(m.Body)
		ok++
	}
	if ok == 0 {
		return nil, failed
	}

	// Copy.
	first := in.seq.Add(uint64(ok)) - uint64(ok) + 1
	var ids strings.Builder
	ids.Grow(ok * 8)
	ends := make([]int, 0, 128)[:0]
	for i := 0; i < ok; i++ {
		var num [20]byte
		ids.Write(strconv.AppendUint(num[:0], first+uint64(i), 10))
		ends = append(ends, ids.Len())
	}
	idstr := ids.String()
	bodies := make([]byte, total)
	store := make([]providers.Message, ok)
	out := make([]copied, ok)
	j, start := 0, 0
	for i, m := range msgs {
		if failed != nil && failed.Failed[i] != nil {
			continue
		}
		n := copy(bodies, m.Body)
		store[j] = providers.Message{ID: m.ID, Body: bodies[:n:n],
			Attributes: m.Attributes, OrderingKey: m.OrderingKey}
		bodies = bodies[n:]
		out[j] = copied{msg: &store[j], id: idstr[start:ends[j]]}
		start = ends[j]
		j++
	}
	return out, failed
}
