package herald

import (
	"math/rand/v2"
	"time"
)

// Backoff is the schedule of retries after a failed attempt: the delay
// before attempt n+1 is Base * 2^(n-1), capped at Max, then spread by up to
// ±Jitter of itself so that messages that failed together do not come
// back together. With the defaults the delays are about 1 s, 2 s, 4 s,
// 8 s, ... up to 5 min.
type Backoff struct {
	// Base is the delay after the first failed attempt. Default 1 s.
	Base time.Duration
	// Max caps the delay. Default 5 min.
	Max time.Duration
	// Jitter is the fraction of the delay added or taken at random, from
	// 0 to 1. Default 0.2; a negative value means none.
	Jitter float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = time.Second
	}
	if b.Max <= 0 {
		b.Max = 5 * time.Minute
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	if b.Jitter == 0 {
		b.Jitter = 0.2
	}
	if b.Jitter < 0 {
		b.Jitter = 0
	}
	if b.Jitter > 1 {
		b.Jitter = 1
	}
	return b
}

// Delay returns the delay after failed attempt n (n >= 1).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := b.Base
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	if b.Jitter > 0 {
		spread := float64(d) * b.Jitter
		d += time.Duration(spread * (2*rand.Float64() - 1))
	}
	if d < 0 {
		d = 0
	}
	return d
}
