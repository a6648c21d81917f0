package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// RedriveOptions tune a Redrive. The zero value moves every letter.
type RedriveOptions struct {
	ScanOptions
	// DryRun reads and filters the letters and counts those that would
	// move in Report.Moved, but sends and removes nothing.
	DryRun bool
	// Rate is the most letters sent per second, on average; 0 means no
	// limit. A batch then holds at most one second's worth of letters.
	Rate float64
	// Workers is how many batches are sent and removed at once. Default 4.
	Workers int
	// Progress, when set, is called after each batch with the counts so
	// far, from one goroutine at a time. It must not block for long.
	Progress func(Report)
}

// Redrive sends the matching letters back to the consumer whose queue this
// is, and to no other consumer of the topic (each provider's
// DeadLetterQueue.Redrive routes them), then removes them from the
// dead-letter queue.
//
// Each message keeps its ID, body, ordering key and attributes, less
// herald's dead-letter and target attributes (providers.StripDeadLetter);
// its attempt count starts again at 1. A letter is removed only after the
// provider accepted its message. Letters whose message the provider
// refused stay in the queue, counted in Report.Failed; when the provider
// refuses a whole batch for a reason other than load (a deleted target
// wraps providers.ErrNotFound), Redrive stops and its error wraps
// ErrAborted and the provider's error.
//
// When ctx ends, Redrive finishes removing the letters whose messages were
// sent, gives back the rest and returns the report with ctx's error. Run
// again, it moves what is left; a message that was sent but whose letter
// could not be removed is sent once more, with the same ID, which the
// consumer's idempotency store recognises.
func (q *Queue) Redrive(ctx context.Context, opts RedriveOptions) (Report, error) {
	return q.run(ctx, runOptions{
		scan: opts.ScanOptions, workers: opts.Workers, rate: opts.Rate, dry: opts.DryRun,
		progress: opts.Progress,
		act:      q.redriveBatch,
		count:    func(r *Report) *int { return &r.Moved },
	})
}

// Redrive opens the consumer's dead-letter queue on p, redrives it with
// opts (see Queue.Redrive) and closes it.
func Redrive(ctx context.Context, p providers.Provider, topic, consumer string,
	opts RedriveOptions) (Report, error) {
	q, err := Open(ctx, p, topic, consumer)
	if err != nil {
		return Report{Remaining: -1, DryRun: opts.DryRun}, err
	}
	defer q.Close()
	return q.Redrive(ctx, opts)
}

// sendRetries is how many times a batch refused for load
// (providers.ErrUnavailable) is sent again, after 200 ms, 400 ms and 800 ms.
const sendRetries = 3

// redriveBatch sends one batch back to the consumer and removes the
// letters whose message was sent.
func (q *Queue) redriveBatch(ctx context.Context, items []item) batchResult {
	msgs := make([]*providers.Message, len(items))
	for i, it := range items {
		m := it.d.Message
		m.Attributes = providers.StripDeadLetter(m.Attributes)
		msgs[i] = &m
	}

	// Send, again after a pause while the provider is only busy.
	var err error
	for try := 0; ; try++ {
		err = q.q.Redrive(ctx, msgs)
		if try == sendRetries || !retryable(err) {
			break
		}
		if sleep(ctx, (200*time.Millisecond)<<try) != nil {
			break
		}
	}

	var res batchResult
	sent := items
	var be *providers.BatchError
	switch {
	case err == nil:
	case errors.As(err, &be):
		sent = sent[:0:0]
		for i, it := range items {
			if why, bad := be.Failed[i]; bad {
				res.failed = append(res.failed, it)
				res.why = append(res.why, why)
			} else {
				sent = append(sent, it)
			}
		}
	default:
		res.failed = items
		res.why = make([]error, len(items))
		for i := range res.why {
			res.why[i] = err
		}
		if ctx.Err() != nil {
			res.fatal = ctx.Err()
		} else {
			res.fatal = fmt.Errorf("%w: redrive to %s/%s: %w", ErrAborted, q.topic, q.consumer, err)
		}
		return res
	}

	// Remove what was sent, even if ctx ends meanwhile: a letter left
	// behind would be sent again by the next redrive.
	q.remove(ctx, sent, &res)
	return res
}

// remove acks the letters, adding them to res.done or res.failed.
func (q *Queue) remove(ctx context.Context, items []item, res *batchResult) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	errs := parallel(len(items), func(i int) error { return q.q.Ack(actx, items[i].d) })
	for i, it := range items {
		if errs != nil && errs[i] != nil {
			res.failed = append(res.failed, it)
			res.why = append(res.why, fmt.Errorf("remove letter: %w", errs[i]))
			continue
		}
		res.done++
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isUnavailable(err error) bool { return errors.Is(err, providers.ErrUnavailable) }
