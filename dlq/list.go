package dlq

import "context"

// List returns the letters that match opts.Filter, up to opts.Limit (0: all),
// in the order the provider hands them out (oldest first on most), without
// their payloads and without removing any. A letter that no longer decodes
// is listed with DecodeError set. Every letter is given back unchanged
// before List returns; when ctx ends first, List returns what it read so
// far with ctx's error.
func (q *Queue) List(ctx context.Context, opts ScanOptions) ([]Letter, error) {
	return q.list(ctx, opts, false)
}

// Peek is List with each letter's payload in Letter.Data.
func (q *Queue) Peek(ctx context.Context, opts ScanOptions) ([]Letter, error) {
	return q.list(ctx, opts, true)
}

func (q *Queue) list(ctx context.Context, opts ScanOptions, data bool) ([]Letter, error) {
	s := newScan(ctx, q, opts)
	s.describe = true
	defer s.release(ctx)
	var out []Letter
	for {
		items, err := s.next(ctx)
		if err != nil || len(items) == 0 {
			return out, err
		}
		for _, it := range items {
			l := it.l
			if data {
				l = withData(l, it.d)
			}
			out = append(out, l)
		}
		s.hold(items)
	}
}
