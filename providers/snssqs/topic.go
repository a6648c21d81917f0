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

	// queue packs the messages of concurrent SendBatch calls on a
	// standard topic into shared PublishBatch requests.
	queue  *batcher[*chunk]
	closed atomic.Bool
}

func newTopic(p *Provider, name, arn string, ordered bool) *topic {
	t := &topic{p: p, name: name, arn: arn, ordered: ordered}
	if !ordered {
		t.queue = newBatcher(p.opts.PublishConcurrency, t.publishChunks)
		t.queue.count = func(c *chunk) int { return len(c.entries) }
		t.queue.size = func(c *chunk) int { return c.size }
		t.queue.maxBytes = maxBatchBytes
	}
	return t
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
	return newTopic(p, t, arn, ordered), nil
}

// entry is one message of a SendBatch call on its way.
type entry struct {
	index int // in the caller's slice
	req   snstypes.PublishBatchRequestEntry
	size  int
	group string // FIFO: MessageGroupId
}

// SendBatch publishes the messages with PublishBatch, 10 and 256 KiB a
// request, PublishConcurrency requests at a time. On a standard topic the
// messages of concurrent calls share requests. Every message is checked
// first: if any breaks a limit, nothing is sent and the error, wrapping
// ErrInvalid or ErrTooLarge, names it. When only some fail, the error is a
// *providers.BatchError naming them; the rest were published. Once ctx
// ends no more requests start (the messages left fail with its error);
// requests under way are waited for, at most 30 s, so that every result
// is known.
func (t *topic) SendBatch(ctx context.Context, msgs []*providers.Message) error {
	if t.closed.Load() {
		return fmt.Errorf("snssqs: publish to topic %s: %w", t.arn, providers.ErrClosed)
	}
	entries := make([]entry, len(msgs))
	for i, m := range msgs {
		e, err := t.entry(i, m)
		if err != nil {
			id := ""
			if m != nil {
				id = m.ID
			}
			return fmt.Errorf("snssqs: publish to topic %s: message #%d (id %q): %w",
				t.arn, i, id, err)
		}
		entries[i] = e
	}

	failed := make(map[int]error)
	if t.ordered {
		var mu sync.Mutex
		t.sendLanes(ctx, entries, func(e *entry, err error) {
			mu.Lock()
			defer mu.Unlock()
			failed[e.index] = err
		})
	} else {
		// Full requests' worth of one call travel together; what is left
		// shares a request with other calls'.
		bs := batches(entries, maxBatchEntries)
		chunks := make([]*chunk, len(bs))
		for i, b := range bs {
			chunks[i] = &chunk{entries: b}
			for _, e := range b {
				chunks[i].size += e.size
			}
		}
		_, queued, err := t.queue.submitAll(ctx, chunks)
		if err != nil {
			return fmt.Errorf("snssqs: publish to topic %s: %w", t.arn, err)
		}
		for i, c := range chunks {
			for j, e := range c.entries {
				switch {
				case i >= queued:
					failed[e.index] = fmt.Errorf("snssqs: publish to topic %s: not sent: %w",
						t.arn, ctx.Err())
				case c.errs[j] != nil:
					failed[e.index] = c.errs[j]
				}
			}
		}
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
func batches(entries []entry, max int) [][]*entry {
	var out [][]*entry
	var cur []*entry
	size := 0
	for i := range entries {
		e := &entries[i]
		if len(cur) == max || len(cur) > 0 && size+e.size > maxBatchBytes {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += e.size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

var laneSeed = maphash.MakeSeed()

// sendLanes sends a FIFO topic's entries: those of one group go in one
// lane, whose batches go one after another, in order; the lanes run in
// parallel. Once a batch of a lane fails, the lane's later entries are not
// sent, so that no message overtakes one of its group that failed.
func (t *topic) sendLanes(ctx context.Context, entries []entry, fail func(*entry, error)) {
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
				var errs []error
				if err := ctx.Err(); err != nil {
					errs = repeat(len(b), fmt.Errorf("snssqs: publish to topic %s: not sent: %w",
						t.arn, err))
				} else {
					errs = t.publishBatch(ctx, b)
				}
				ok := true
				for j, err := range errs {
					if err != nil {
						fail(b[j], err)
						ok = false
					}
				}
				if ok {
					continue
				}
				for _, rest := range bs[i+1:] {
					for _, e := range rest {
						fail(e, fmt.Errorf("snssqs: publish to topic %s: %w: not sent, since "+
							"an earlier message of its lane failed", t.arn, providers.ErrUnavailable))
					}
				}
				return
			}
		})
	}
	wg.Wait()
}

// chunk is consecutive entries of one SendBatch call, published in one
// request (with other calls' chunks when they fit).
type chunk struct {
	entries []*entry
	size    int
	errs    []error // one per entry, once published
}

// publishChunks publishes chunks in one request and files each entry's
// result in its chunk.
func (t *topic) publishChunks(ctx context.Context, cs []*chunk) []error {
	var all []*entry
	if len(cs) == 1 {
		all = cs[0].entries
	} else {
		for _, c := range cs {
			all = append(all, c.entries...)
		}
	}
	errs := t.publishBatch(ctx, all)
	for _, c := range cs {
		c.errs, errs = errs[:len(c.entries)], errs[len(c.entries):]
	}
	return make([]error, len(cs))
}

// publishBatch sends one PublishBatch request and returns each entry's
// error. An entry SNS names in neither list failed: only an answer says
// it was published.
func (t *topic) publishBatch(ctx context.Context, b []*entry) []error {
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
		return repeat(len(b), wrap("PublishBatch", "topic "+t.arn, err))
	}

	errs := repeat(len(b), fmt.Errorf("snssqs: PublishBatch topic %s: %w: SNS did not "+
		"report the entry", t.arn, providers.ErrUnavailable))
	for _, s := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && i >= 0 && i < len(b) {
			errs[i] = nil
		}
	}
	for _, f := range out.Failed {
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(b) {
			errs[i] = entryError("PublishBatch", "topic "+t.arn,
				aws.ToString(f.Code), aws.ToString(f.Message), f.SenderFault)
		}
	}
	return errs
}

// Close stops the sender: it waits for SendBatch calls under way, and
// later ones fail with ErrClosed.
func (t *topic) Close() error {
	t.closed.Store(true)
	if t.queue != nil {
		t.queue.close()
	}
	return nil
}
