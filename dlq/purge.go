package dlq

import "context"

// PurgeOptions tune a Purge. The zero value removes every letter.
type PurgeOptions struct {
	ScanOptions
	// DryRun reads and filters the letters and counts those that would be
	// removed in Report.Purged, but removes nothing.
	DryRun bool
	// Workers is how many batches are removed at once. Default 4.
	Workers int
	// Progress, when set, is called after each batch with the counts so
	// far, from one goroutine at a time. It must not block for long.
	Progress func(Report)
}

// Purge removes the matching letters for good; the others are given back
// unchanged. Letters whose removal failed stay, counted in Report.Failed.
// When ctx ends, Purge gives back what it holds and returns the report
// with ctx's error.
func (q *Queue) Purge(ctx context.Context, opts PurgeOptions) (Report, error) {
	return q.run(ctx, runOptions{
		scan: opts.ScanOptions, workers: opts.Workers, dry: opts.DryRun,
		progress: opts.Progress,
		act: func(ctx context.Context, items []item) batchResult {
			var res batchResult
			q.remove(ctx, items, &res)
			return res
		},
		count: func(r *Report) *int { return &r.Purged },
	})
}
