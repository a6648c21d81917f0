package snssqs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/seed06bc8277/herald/providers"
)

// topic sends to one SNS topic.
type topic struct {
	p       *Provider
	name    string // logical
	arn     string
	ordered bool // a FIFO topic

	closed atomic.Bool
}

// OpenTopic returns a sender for SNS topic t, or t.fifo when only that
// exists. The error wraps ErrNotFound, naming both, when neither exists.
func (p *Provider) OpenTopic(ctx context.Context, t string) (providers.Topic, error) {
	if err := p.checkOpen("open topic " + t); err != nil {
		return nil, err
	}
	arn, ordered, err := p.findTopic(ctx, t)
	if err != nil {
		return nil, err
	}
	return &topic{p: p, name: t, arn: arn, ordered: ordered}, nil
}

// entry is one message of a SendBatch call on its way.
type entry struct {
	index int // in the caller's slice
	req   snstypes.PublishBatchRequestEntry
	size  int
	group string // FIFO: MessageGroupId
}

// SendBatch publishes the messages with PublishBatch, 10 and 256 KiB a
// request, PublishConcurrency requests at a time. Every message is checked
// first: if any breaks a limit, nothing is sent and the error, wrapping
// ErrInvalid or ErrTooLarge, names it. When only some fail, the error is a
// *providers.BatchError naming them; the rest were published.
func (t *topic) SendBatch(ctx context.Context, msgs []*providers.Message) error {
	if t.closed.Load() {
		return fmt.Errorf("snssqs: publish to topic %s: %w", t.arn, providers.ErrClosed)
	}
	entries := make([]entry, len(msgs))
	for i, m := range msgs {
		e, err := t.entry(i, m)
		if err != nil {
			return fmt.Errorf("snssqs: publish to topic %s: message #%d (id %q): %w",
				t.arn, i, m.ID, err)
		}
		entries[i] = e
	}

	failed := make(map[int]error)
	var mu sync.Mutex
	fail := func(es []entry, err error) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range es {
			failed[e.index] = err
		}
	}
	if t.ordered {
		t.sendLanes(ctx, entries, fail)
	} else {
		t.sendAll(ctx, batches(entries, maxBatchEntries), fail)
	}

	switch {
	case len(failed) == 0:
		return nil
	case len(msgs) == 1:
		return failed[0]
	}
	return &providers.BatchError{Failed: failed}
}

// entry checks and encodes one message.
func (t *topic) entry(i int, m *providers.Message) (entry, error) {
	if m == nil {
		return entry{}, fmt.Errorf("%w: nil message", providers.ErrInvalid)
	}
	if m.OrderingKey != "" && !t.ordered {
		return entry{}, fmt.Errorf("%w: an ordering key needs a FIFO topic; %s is a standard "+
			"topic (provision the topic with Ordered)", providers.ErrInvalid, t.arn)
	}
	w, err := encode(m, false)
	if err != nil {
		return entry{}, err
	}
	if w.size > MaxMessageBytes {
		return entry{}, fmt.Errorf("%w: %d bytes as SNS counts them (body, attribute names, "+
			"types and values); SNS takes at most %d", providers.ErrTooLarge, w.size, MaxMessageBytes)
	}
	e := entry{index: i, size: w.size}
	e.req = snstypes.PublishBatchRequestEntry{
		Message:           aws.String(w.body),
		MessageAttributes: w.snsAttributes(),
	}
	if t.ordered {
		e.group = groupID(m)
		e.req.MessageGroupId = aws.String(e.group)
		e.req.MessageDeduplicationId = aws.String(dedupID(m.ID))
	}
	return e, nil
}

// groupID is a FIFO message's MessageGroupId: its ordering key when SNS
// takes it (1 to 128 of ASCII letters, digits and punctuation), else a
// hash of it. A message without a key gets a group of its own, so that
// unordered messages are not held up behind each other; groups starting
// with "herald-" are herald's own and never reported as ordering keys.
func groupID(m *providers.Message) string {
	if m.OrderingKey == "" {
		return "herald-" + hash(m.ID)
	}
	if len(m.OrderingKey) > 128 || !fifoToken(m.OrderingKey) ||
		len(m.OrderingKey) >= 7 && m.OrderingKey[:7] == "herald-" {
		return "herald-k-" + hash(m.OrderingKey)
	}
	return m.OrderingKey
}

// dedupID is a FIFO message's MessageDeduplicationId: its ID, or a hash
// of it when SNS would refuse the ID.
func dedupID(id string) string {
	if id != "" && len(id) <= 128 && fifoToken(id) {
		return id
	}
	return hash(id)
}

// fifoToken reports whether s holds only what SNS and SQS take in group
// and deduplication IDs: ASCII letters, digits and punctuation.
func fifoToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// maxFIFOBatchEntries caps FIFO batches at 9 entries. The query protocol
// sends entry fields sorted by name, so entry 10 comes before entry 2, and
// fauxqs 1.9.2 publishes a batch in the order it reads it; SNS itself
// orders by entry number. Nine entries cost FIFO topics about 11% more
// requests and keep the order everywhere.
const maxFIFOBatchEntries = 9

// batches packs entries in order into requests of at most max entries
// and 256 KiB.
func batches(entries []entry, max int) [][]entry {
	var out [][]entry
	start, size := 0, 0
	for i, e := range entries {
		if i-start == max || size+e.size > maxBatchBytes {
			out = append(out, entries[start:i])
			start, size = i, 0
		}
		size += e.size
	}
	if start < len(entries) {
		out = append(out, entries[start:])
	}
	return out
}

// sendAll sends the batches, PublishConcurrency at a time.
func (t *topic) sendAll(ctx context.Context, bs [][]entry, fail func([]entry, error)) {
	workers := min(t.p.opts.PublishConcurrency, len(bs))
	if workers <= 1 {
		for _, b := range bs {
			t.publish(ctx, b, fail)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bs) {
					return
				}
				t.publish(ctx, bs[i], fail)
			}
		})
	}
	wg.Wait()
}

var laneSeed = maphash.MakeSeed()

// sendLanes sends a FIFO topic's entries: those of one group go in one
// lane, whose batches go one after another, in order; the lanes run in
// parallel. Once a batch of a lane fails, the lane's later entries are not
// sent, so that no message overtakes one of its group that failed.
func (t *topic) sendLanes(ctx context.Context, entries []entry, fail func([]entry, error)) {
	n := min(t.p.opts.PublishConcurrency, len(entries))
	lanes := make([][]entry, n)
	for _, e := range entries {
		l := int(maphash.String(laneSeed, e.group) % uint64(n))
		lanes[l] = append(lanes[l], e)
	}
	var wg sync.WaitGroup
	for _, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Go(func() {
			bs := batches(lane, maxFIFOBatchEntries)
			for i, b := range bs {
				if !t.publish(ctx, b, fail) {
					for _, rest := range bs[i+1:] {
						fail(rest, fmt.Errorf("snssqs: publish to topic %s: %w: not sent, "+
							"since an earlier message of its lane failed", t.arn, providers.ErrUnavailable))
					}
					return
				}
			}
		})
	}
	wg.Wait()
}

// publish sends one batch and reports which entries failed; it returns
// whether all of them went through.
func (t *topic) publish(ctx context.Context, b []entry, fail func([]entry, error)) bool {
	if err := ctx.Err(); err != nil {
		fail(b, fmt.Errorf("snssqs: publish to topic %s: not sent: %w", t.arn, err))
		return false
	}
	reqs := make([]snstypes.PublishBatchRequestEntry, len(b))
	for i := range b {
		reqs[i] = b[i].req
		reqs[i].Id = aws.String(strconv.Itoa(i))
	}
	out, err := t.p.sns.PublishBatch(ctx, &sns.PublishBatchInput{
		TopicArn:                   &t.arn,
		PublishBatchRequestEntries: reqs,
	})
	if err != nil {
		fail(b, wrap("PublishBatch", "topic "+t.arn, err))
		return false
	}

	// An entry SNS names in neither list is counted as failed: only an
	// answer says it was published.
	done := make([]bool, len(b))
	ok := true
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i >= 0 && i < len(b) {
			done[i] = true
		}
	}
	for _, f := range out.Failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i < 0 || i >= len(b) {
			continue
		}
		done[i] = true
		ok = false
		fail(b[i:i+1], entryError("PublishBatch", "topic "+t.arn,
			aws.ToString(f.Code), aws.ToString(f.Message), f.SenderFault))
	}
	for i, d := range done {
		if !d {
			ok = false
			fail(b[i:i+1], fmt.Errorf("snssqs: PublishBatch topic %s: %w: SNS did not report "+
				"entry %d", t.arn, providers.ErrUnavailable, i))
		}
	}
	return ok
}

// Close stops the sender: later SendBatch calls fail with ErrClosed.
// SendBatch is synchronous, so there is nothing to flush.
func (t *topic) Close() error {
	t.closed.Store(true)
	return nil
}
