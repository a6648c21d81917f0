package idempotency

import (
	"context"
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
type Memory struct {
	seed   maphash.Seed
	now    func() time.Time
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
	until       time.Time // lease end, or retention end once completed
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return newMemory(time.Now)
}

func newMemory(now func() time.Time) *Memory {
	m := &Memory{seed: maphash.MakeSeed(), now: now}
	for i := range m.shards {
		m.shards[i].recs = make(map[string]memoryRecord)
	}
	return m
}

func (m *Memory) shard(key string) *memoryShard {
	return &m.shards[maphash.String(m.seed, key)%memoryShards]
}

// Claim implements Store.
func (m *Memory) Claim(ctx context.Context, key string, fingerprint uint64, lease time.Duration) (Result, error) {
	r := Request{Key: key, Fingerprint: fingerprint, Lease: lease}
	if err := ValidateBatch([]Request{r}); err != nil {
		return Result{}, err
	}
	return m.claim(r, m.now()), nil
}

// ClaimBatch implements Store.
func (m *Memory) ClaimBatch(ctx context.Context, reqs []Request) ([]Result, error) {
	if err := ValidateBatch(reqs); err != nil {
		return nil, err
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
	if ok && now.Before(rec.until) {
		switch {
		case rec.fingerprint != r.Fingerprint:
			return Result{Status: Conflict}
		case rec.completed:
			return Result{Status: Completed}
		default:
			return Result{Status: InProgress, Until: rec.until}
		}
	}

	// Free or expired: take it with a token above any earlier one.
	token := rec.token + 1
	if token < Token(now.UnixNano()) {
		token = Token(now.UnixNano())
	}
	until := now.Add(r.Lease)
	s.recs[r.Key] = memoryRecord{fingerprint: r.Fingerprint, token: token, until: until}
	s.sweep(now)
	return Result{Status: Acquired, Token: token, Until: until}
}

// sweep drops expired records every 4096 writes, so that a long-running
// consumer's store does not grow without bound.
func (s *memoryShard) sweep(now time.Time) {
	s.writes++
	if s.writes%4096 != 0 {
		return
	}
	for k, rec := range s.recs {
		if !now.Before(rec.until) {
			delete(s.recs, k)
		}
	}
}

// Complete implements Store.
func (m *Memory) Complete(ctx context.Context, key string, token Token, retain time.Duration) error {
	return m.settle(key, token, func(s *memoryShard, rec memoryRecord, now time.Time) {
		rec.completed = true
		rec.until = now.Add(retain)
		s.recs[key] = rec
	})
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, key string, token Token) error {
	return m.settle(key, token, func(s *memoryShard, rec memoryRecord, now time.Time) {
		// Keep the token so the next claim's token is larger still.
		rec.until = now
		s.recs[key] = rec
	})
}

func (m *Memory) settle(key string, token Token, apply func(*memoryShard, memoryRecord, time.Time)) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	now := m.now()
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.recs[key]
	// A lease that ran out with nobody taking over still holds: no one
	// else can have run the handler, since a takeover changes the token.
	if !ok || rec.token != token || rec.completed {
		return ErrStaleToken
	}
	apply(s, rec, now)
	return nil
}
