package dlq

import (
	"slices"
	"time"
)

// Filter selects dead letters. A letter matches when it passes every
// condition that is set; the zero Filter matches every letter.
type Filter struct {
	// Reasons keeps letters dead-lettered for one of these reasons
	// (providers.ReasonMalformed, ReasonMaxAttempts, ...).
	Reasons []string
	// Types keeps letters whose envelope type is one of these; a letter
	// that does not decode has no type and never matches.
	Types []string
	// IDs keeps letters with one of these message IDs.
	IDs []string
	// OlderThan keeps letters dead-lettered at least this long before
	// the scan started; 0 means no bound.
	OlderThan time.Duration
	// NewerThan keeps letters dead-lettered less than this long before
	// the scan started; 0 means no bound.
	NewerThan time.Duration
}

// IsZero reports whether the filter matches every letter.
func (f Filter) IsZero() bool {
	return len(f.Reasons) == 0 && len(f.Types) == 0 && len(f.IDs) == 0 &&
		f.OlderThan == 0 && f.NewerThan == 0
}

// matcher is a Filter fixed at the start of a scan.
type matcher struct {
	f      Filter
	before time.Time // OlderThan: dead-lettered at or before this
	after  time.Time // NewerThan: dead-lettered after this
}

func newMatcher(f Filter, now time.Time) matcher {
	m := matcher{f: f}
	if f.OlderThan > 0 {
		m.before = now.Add(-f.OlderThan)
	}
	if f.NewerThan > 0 {
		m.after = now.Add(-f.NewerThan)
	}
	return m
}

// match reports whether the letter passes the filter. A letter whose
// dead-letter time is unknown never matches an age bound.
func (m matcher) match(l *Letter) bool {
	f := m.f
	if len(f.Reasons) > 0 && !slices.Contains(f.Reasons, l.Reason) {
		return false
	}
	if len(f.Types) > 0 && (l.DecodeError != "" || !slices.Contains(f.Types, l.Type)) {
		return false
	}
	if len(f.IDs) > 0 && !slices.Contains(f.IDs, l.ID) {
		return false
	}
	if !m.before.IsZero() && (l.DeadLetteredAt.IsZero() || l.DeadLetteredAt.After(m.before)) {
		return false
	}
	if !m.after.IsZero() && (l.DeadLetteredAt.IsZero() || !l.DeadLetteredAt.After(m.after)) {
		return false
	}
	return true
}
