package idempotency

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// memoryShards spreads keys over independent locks so that concurrent
// workers rarely contend.
const memoryShards = 64

// Memory is a Store held in this process's memory: fast, but shared only by
// the consumers of one process and lost when it exits. Expired records are
// dropped as they are met and by a sweep every 4096 writes per shard.
//
// Leases and retention run on this process's clock. A claim whose lease
// ran out but that nobody took over can still be completed or released
// with its token: no other worker can have run the handler meanwhile.
type Memory struct {
	seed   maphash.Seed
	now    func() time.Time
	base   time.Time // record times are nanoseconds since base (monotonic)
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu     sync.Mutex
	recs   map[string]memoryRecord
	writes int
	_      [40]byte // keep shards on separate cache lines
}

type memoryRecord struct {
	fingerprint uint64
	token       Token
	completed   bool
	released    bool
	until       int64 // lease or retention end, in nanoseconds since base
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return newMemory(time.Now)
}

func newMemory(now func() time.Time) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), now: now, base: now()}
	for i := range m.shards {
		m.shards[i].recs = make(map[string]memoryRecord)
	}
	return m
}

func (m *Memory) shard(key string) *memoryShard {
	return &m.shards[maphash.String(m.seed, key)%memoryShards]
}

// Claim implements Store. It fails with the context's error when ctx is
// already done, and never takes the key then.
func (m *Memory) Claim(ctx context.Context, key string, fingerprint uint64,
	lease time.Duration) (Result, error) {
	// Validate without ValidateBatch's map: this is the consumer's hot path.
	if err := ValidateKey(key); err != nil {
		return Result{}, err
	}
	if lease <= 0 {
		return Result{}, fmt.Errorf("idempotency: lease for %q must be positive, got %v", key, lease)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("idempotency: claim %q: %w", key, err)
	}
	r := Request{Key: key, Fingerprint: fingerprint, Lease: lease}
	return m.claim(r, m.now()), nil
}

// ClaimBatch implements Store. It claims nothing when a key is invalid or
// repeated, or when ctx is already done.
func (m *Memory) ClaimBatch(ctx context.Context, reqs []Request) ([]Result, error) {
	if err := ValidateBatch(reqs); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("idempotency: claim batch of %d: %w", len(reqs), err)
	}
	now := m.now()
	out := make([]Result, len(reqs))
	for i, r := range reqs {
		out[i] = m.claim(r, now)
	}
	return out, nil
}

func (m *Memory) claim(r Request, now time.Time) Result {
	s := m.shard(r.Key)
	s.mu.Lock()
	defer s.mu.Unlock()

	rec, ok := s.recs[r.Key]
	at := int64(now.Sub(m.base))
	if ok && !rec.released && at < rec.until {
		switch {
		case rec.fingerprint != r.Fingerprint:
			return Result{Status: Conflict}
		case rec.completed:
			return Result{Status: Completed}
		default:
			return Result{Status: InProgress, Until: m.base.Add(time.Duration(rec.until))}
		}
	}

	// Free or expired: take it with a token above any earlier one.
	token := rec.token + 1
	if token < Token(now.UnixNano()) {
		token = Token(now.UnixNano())
	}
	s.recs[r.Key] = memoryRecord{fingerprint: r.Fingerprint, token: token, until: at + int64(r.Lease)}
	s.sweep(at)
	return Result{Status: Acquired, Token: token, Until: now.Add(r.Lease)}
}

// sweep drops expired records every 4096 writes, so that a long-running
// consumer's store does not grow without bound.
func (s *memoryShard) sweep(at int64) {
	s.writes++
	if s.writes%4096 != 0 {
		return
	}
	for k, rec := range s.recs {
		if at >= rec.until {
			delete(s.recs, k)
		}
	}
}

// Complete implements Store. A retention of zero or less lets the key be
// claimed again at once.
func (m *Memory) Complete(ctx context.Context, key string, token Token,
	retain time.Duration) error {
	return m.settle(ctx, "complete", key, token, func(s *memoryShard, rec memoryRecord,
		now time.Time) {
		rec.completed = true
		rec.until = int64(now.Add(retain).Sub(m.base))
		s.recs[key] = rec
	})
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, key string, token Token) error {
	return m.settle(ctx, "release", key, token, func(s *memoryShard, rec memoryRecord,
		now time.Time) {
		// Keep the token so the next claim's token is larger still, and
		// mark the record so that the released token cannot settle again.
		rec.released = true
		rec.until = int64(now.Sub(m.base))
		s.recs[key] = rec
	})
}

func (m *Memory) settle(ctx context.Context, op, key string, token Token,
	apply func(*memoryShard, memoryRecord, time.Time)) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("idempotency: %s %q: %w", op, key, err)
	}
	now := m.now()
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.recs[key]
	// A lease that ran out with nobody taking over still holds: no one
	// else can have run the handler, since a takeover changes the token.
	if !ok || rec.token != token || rec.completed || rec.released {
		return fmt.Errorf("idempotency: %s %q with token %d: %w", op, key, token, ErrStaleToken)
	}
	apply(s, rec, now)
	return nil
}
