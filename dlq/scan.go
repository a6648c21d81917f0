package dlq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// Defaults of ScanOptions.
const (
	// DefaultBatchSize is how many letters one receive asks for; the
	// provider may return fewer (SQS at most 10).
	DefaultBatchSize = 100
	// DefaultReceiveWait is how long one receive waits for letters before
	// it counts as an empty answer.
	DefaultReceiveWait = 5 * time.Second
)

// settleTimeout bounds the acks and releases that finish a batch or a scan
// after ctx ended: they run on a context of their own, so that a cancelled
// run still removes what it sent and gives back what it holds.
const settleTimeout = 30 * time.Second

// ScanOptions tune how an operation reads the dead-letter queue.
type ScanOptions struct {
	// Filter selects the letters to act on; the others are skipped and
	// given back unchanged.
	Filter Filter
	// Limit is the most letters acted on (listed, moved or purged); 0
	// means every matching letter.
	Limit int
	// BatchSize is how many letters one receive asks for. Default 100.
	BatchSize int
	// ReceiveWait is how long one receive waits for letters before it
	// counts as empty; the scan ends after two empty answers in a row.
	// Default 5 s: more than a provider's own long poll (1 s on SQS), so
	// that a receive is not cut off while the cloud hands out letters,
	// which would hide them until their lease ends.
	ReceiveWait time.Duration
}

func (o ScanOptions) withDefaults() ScanOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.ReceiveWait <= 0 {
		o.ReceiveWait = DefaultReceiveWait
	}
	return o
}

// item is a letter chosen to act on, with its delivery.
type item struct {
	d *providers.Delivery
	l Letter
}

// scan reads a dead-letter queue once. Letters it does not act on (skipped,
// over the limit, failed, or seen again after a lease ran out) are held
// leased until release, so that no receive returns them a second time.
type scan struct {
	q     *Queue
	o     ScanOptions
	m     matcher
	start int // the queue's count at the start; -1 when unknown
	// describe decodes every letter (List); otherwise only a filter that
	// needs it does.
	describe bool

	recv sync.Mutex // one receive at a time

	mu       sync.Mutex
	held     map[string]*providers.Delivery
	chosen   map[string]struct{} // letters handed out to act on
	inflight int                 // handed out, not yet settled or held
	taken    int
	received int
	empties  int
	skipped  int
	done     bool
}

func newScan(ctx context.Context, q *Queue, o ScanOptions) *scan {
	s := &scan{q: q, o: o.withDefaults(), m: newMatcher(o.Filter, time.Now()), start: -1,
		held: map[string]*providers.Delivery{}, chosen: map[string]struct{}{}}
	if n, err := q.q.Count(ctx); err == nil {
		s.start = n
	}
	return s
}

// key identifies a letter within a scan.
func key(d *providers.Delivery) string {
	if d.ProviderID != "" {
		return d.ProviderID
	}
	return d.ID
}

// next returns the next letters to act on, or none once the scan is over.
// Its error is ctx's, or the provider's receive error.
func (s *scan) next(ctx context.Context) ([]item, error) {
	s.recv.Lock()
	defer s.recv.Unlock()
	for {
		s.mu.Lock()
		done, ours := s.done, len(s.held)+s.inflight
		check := s.empties > 0 || (s.start >= 0 && s.received >= s.start)
		s.mu.Unlock()
		if done {
			return nil, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}

		// Once the letters counted at the start were received (or a
		// receive came back empty), ask the count whether any letter is
		// left that this scan does not hold: this ends a scan at once
		// where a receive would wait for ReceiveWait.
		if check {
			if n, err := s.q.q.Count(ctx); err == nil && n <= ours {
				s.finish()
				return nil, nil
			}
		}

		rctx, cancel := context.WithTimeout(ctx, s.o.ReceiveWait)
		ds, err := s.q.q.ReceiveBatch(rctx, s.o.BatchSize)
		cancel()
		if len(ds) == 0 && err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("dlq: receive dead letters of %s/%s: %w",
					s.q.topic, s.q.consumer, err)
			}
		}
		if out := s.sort(ds); len(out) > 0 {
			return out, nil
		}
	}
}

// sort splits received letters into those to act on, returned, and those
// to hold.
func (s *scan) sort(ds []*providers.Delivery) []item {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ds) == 0 {
		s.empties++
		if s.empties >= 2 {
			s.done = true
		}
		return nil
	}
	s.empties = 0
	s.received += len(ds)
	var out []item
	for _, d := range ds {
		k := key(d)
		if _, ok := s.held[k]; ok {
			s.held[k] = d // its lease ran out and it came back: hold it again
			continue
		}
		if _, ok := s.chosen[k]; ok {
			s.held[k] = d // handed out already; the first hand-out settles it
			continue
		}
		l := Letter{ID: d.ID, ProviderID: d.ProviderID}
		if s.describe || !s.o.Filter.IsZero() {
			l = letterOf(d)
		}
		if !s.m.match(&l) {
			s.held[k] = d
			s.skipped++
			continue
		}
		if s.done || (s.o.Limit > 0 && s.taken >= s.o.Limit) {
			s.held[k] = d // over the limit: not reached
			s.done = true
			continue
		}
		s.chosen[k] = struct{}{}
		s.taken++
		out = append(out, item{d: d, l: l})
	}
	s.inflight += len(out)
	if s.o.Limit > 0 && s.taken >= s.o.Limit {
		s.done = true
	}
	return out
}

// finish ends the scan: next returns no more letters.
func (s *scan) finish() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
}

// settled records that handed-out letters were removed from the queue.
func (s *scan) settled(n int) {
	s.mu.Lock()
	s.inflight -= n
	s.mu.Unlock()
}

// hold keeps handed-out letters leased until release.
func (s *scan) hold(items []item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		s.held[key(it.d)] = it.d
	}
	s.inflight -= len(items)
}

// release gives back every held letter, even when ctx has ended. A letter
// whose release fails comes back by itself when its lease ends.
func (s *scan) release(ctx context.Context) {
	s.mu.Lock()
	ds := make([]*providers.Delivery, 0, len(s.held))
	for _, d := range s.held {
		ds = append(ds, d)
	}
	clear(s.held)
	s.mu.Unlock()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	parallel(len(ds), func(i int) error { return s.q.q.Release(rctx, ds[i]) })
}

// parallelism bounds the acks and releases in flight at once.
const parallelism = 16

// parallel runs fn for 0..n-1, up to 16 at a time, and returns each error
// by index (nil when all succeeded).
func parallel(n int, fn func(i int) error) []error {
	var errs []error
	var mu sync.Mutex
	fail := func(i int, err error) {
		mu.Lock()
		if errs == nil {
			errs = make([]error, n)
		}
		errs[i] = err
		mu.Unlock()
	}
	if n <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				fail(i, err)
			}
		}
		return errs
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallelism)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				fail(i, err)
			}
		}()
	}
	wg.Wait()
	return errs
}
