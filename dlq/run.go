package dlq

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultWorkers is how many batches a Redrive or Purge has in flight at
// once by default.
const DefaultWorkers = 4

// batchResult is what acting on one batch did.
type batchResult struct {
	done   int    // letters moved or purged and removed
	failed []item // letters that stay in the queue
	why    []error
	fatal  error // stop the run
}

// runOptions are what Redrive and Purge share.
type runOptions struct {
	scan     ScanOptions
	workers  int
	rate     float64
	dry      bool
	progress func(Report)
	act      func(ctx context.Context, items []item) batchResult
	count    func(r *Report) *int // Moved or Purged
}

// run scans the queue with workers that act on batches in parallel, then
// gives back every letter it did not remove and reports.
func (q *Queue) run(ctx context.Context, o runOptions) (Report, error) {
	begin := time.Now()
	o.scan = o.scan.withDefaults()
	o.scan.BatchSize = batchFor(o.scan.BatchSize, o.rate)
	if o.workers <= 0 {
		o.workers = DefaultWorkers
	}
	s := newScan(ctx, q, o.scan)
	pace := newPacer(o.rate)

	var mu sync.Mutex
	rep := Report{DryRun: o.dry, Remaining: -1}
	var first error
	record := func(done int, failed []item, why []error, err error) {
		mu.Lock()
		defer mu.Unlock()
		*o.count(&rep) += done
		rep.Failed += len(failed)
		for i, it := range failed {
			if len(rep.Failures) < maxFailures {
				rep.Failures = append(rep.Failures, Failure{ID: it.l.ID, Error: why[i].Error()})
			}
		}
		if err != nil && first == nil {
			first = err
			s.finish()
		}
		if o.progress != nil {
			s.mu.Lock()
			rep.Skipped = s.skipped
			s.mu.Unlock()
			rep.Elapsed = time.Since(begin)
			o.progress(rep)
		}
	}

	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for {
				items, err := s.next(ctx)
				if err != nil {
					record(0, nil, nil, err)
					return
				}
				if len(items) == 0 {
					return
				}
				if o.dry {
					s.hold(items)
					record(len(items), nil, nil, nil)
					continue
				}
				if err := pace.wait(ctx, len(items)); err != nil {
					s.hold(items)
					record(0, nil, nil, err)
					return
				}
				r := o.act(ctx, items)
				s.settled(r.done)
				s.hold(r.failed)
				record(r.done, r.failed, r.why, r.fatal)
				if r.fatal != nil {
					return
				}
			}
		})
	}
	wg.Wait()

	s.release(ctx)
	rep.Skipped = s.skipped
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if n, err := q.q.Count(cctx); err == nil {
		rep.Remaining = n
	}
	rep.Elapsed = time.Since(begin)
	return rep, first
}

// retryable reports whether a whole batch that failed with err may succeed
// if sent again shortly.
func retryable(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded) && isUnavailable(err)
}
