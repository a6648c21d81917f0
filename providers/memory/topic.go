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

// SendBatch puts each message into the queue of every consumer the topic
// has now. It copies the body, so the caller may reuse its buffer; the
// attribute map is kept and shared read-only with every delivery, so the
// caller must not modify it after the call (herald's envelope builds a
// new map for each message). A message over 1 MiB fails
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
	ms, failed := storeMessages(s.p.in, "send to "+s.res, msgs)
	if len(ms) > 0 {
		for _, c := range *s.t.consumers.Load() {
			c.q.push(ms)
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

// stored is a message as the queues hold it: a copy of the sent Message
// (its body copied, its attribute map shared) with its ProviderID. Every
// consumer's entry of the message points at the same stored, and so every
// consumer's deliveries share the body: receivers must not modify it.
type stored struct {
	providers.Message
	pid string
}

// storeMessages validates msgs and copies the valid ones: one allocation
// per body (not one buffer for the batch, so that one message kept long in
// a queue does not keep its batch's bodies alive), plus one array of stored
// messages and one string holding every ProviderID for the batch. Each
// gets the next sequence number of the instance, in decimal, as its
// ProviderID.
func storeMessages(in *instance, op string, msgs []*providers.Message) (
	[]stored, *providers.BatchError) {
	var failed *providers.BatchError
	ok := len(msgs)
	for i, m := range msgs {
		var err error
		if m == nil {
			err = fmt.Errorf("%w: memory: %s: message %d is nil", providers.ErrInvalid, op, i)
		} else if size := messageSize(m); size > MaxMessageBytes {
			err = fmt.Errorf("%w: memory: %s: message %q is %d bytes, over %d",
				providers.ErrTooLarge, op, m.ID, size, MaxMessageBytes)
		}
		if err != nil {
			if failed == nil {
				failed = &providers.BatchError{Failed: map[int]error{}}
			}
			failed.Failed[i] = err
			ok--
		}
	}
	if ok == 0 {
		return nil, failed
	}

	// Write the IDs first+0 ... first+ok-1 one after the other, counting
	// up in ASCII rather than formatting each.
	first := in.seq.Add(uint64(ok)) - uint64(ok) + 1
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], first, 10)
	var ids strings.Builder
	ids.Grow(ok * (len(digits) + 1))
	for i := 0; i < ok; i++ {
		if i > 0 {
			digits = increment(digits)
		}
		ids.Write(digits)
	}
	all := ids.String()

	// Copy, cutting each ID out of all: its length grows by one digit
	// at each power of ten.
	out := make([]stored, ok)
	width := len(strconv.FormatUint(first, 10))
	next := pow10(width)
	j, at := 0, 0
	for i, m := range msgs {
		if failed != nil && failed.Failed[i] != nil {
			continue
		}
		if v := first + uint64(j); v >= next {
			width++
			next *= 10
		}
		out[j] = stored{Message: *m, pid: all[at : at+width]}
		out[j].Body = append([]byte(nil), m.Body...)
		at += width
		j++
	}
	return out, failed
}

// messageSize is the size mem:// counts against MaxMessageBytes: the body
// plus the attribute names and values.
func messageSize(m *providers.Message) int {
	size := len(m.Body)
	for k, v := range m.Attributes {
		size += len(k) + len(v)
	}
	return size
}

// increment adds one to a decimal number in ASCII, in place when it keeps
// its length. digits must have spare capacity for one more digit.
func increment(digits []byte) []byte {
	for i := len(digits) - 1; i >= 0; i-- {
		if digits[i] != '9' {
			digits[i]++
			return digits
		}
		digits[i] = '0'
	}
	digits = append(digits, '0')
	digits[0] = '1'
	return digits
}

// pow10 returns 10 to the n, saturating at the largest uint64.
func pow10(n int) uint64 {
	p := uint64(1)
	for range n {
		if p > ^uint64(0)/10 {
			return ^uint64(0)
		}
		p *= 10
	}
	return p
}
