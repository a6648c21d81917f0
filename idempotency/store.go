// Package idempotency holds the Store interface that makes herald's
// consumers exactly-once in effect over at-least-once delivery, and the
// in-memory store.
//
// A consumer claims the key "<consumer>/<message ID>" before its handler
// runs. Claim answers one of four ways:
//
//   - Acquired: this worker holds the key until the lease ends and gets a
//     fencing token; it must Complete (after success) or Release (after
//     failure) with that token.
//   - InProgress: another worker holds an unexpired claim.
//   - Completed: the message was handled; the consumer acks it without
//     running the handler.
//   - Conflict: the key was claimed or completed with another payload
//     fingerprint: the same ID was reused for a different message.
//
// A claim whose lease ended may be taken over by another worker, which gets
// a new, larger token. Complete and Release with the old token then fail
// with ErrStaleToken, so a worker that outlived its lease cannot overwrite
// the worker that took over. Completed keys are kept for the retention
// passed to Complete and then expire, after which the key can be claimed
// again.
//
// Backends: Memory (one process), idempotency/sqlite (embedded, durable),
// idempotency/redis and idempotency/postgres (shared by many hosts). All
// pass the suite in idempotency/storetest.
package idempotency

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Status is the outcome of a claim.
type Status uint8

// The outcomes of a claim.
const (
	// Acquired: the caller holds the key and must Complete or Release it.
	Acquired Status = iota + 1
	// InProgress: another worker holds an unexpired claim on the key.
	InProgress
	// Completed: the key's message was handled within the retention.
	Completed
	// Conflict: the key is held or completed with another fingerprint.
	Conflict
)

// String returns the status name.
func (s Status) String() string {
	switch s {
	case Acquired:
		return "acquired"
	case InProgress:
		return "in-progress"
	case Completed:
		return "completed"
	case Conflict:
		return "conflict"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Token is a fencing token: every acquisition of a key gets a larger one.
type Token int64

// Request is one claim: the key, the payload's fingerprint and the lease.
type Request struct {
	Key         string
	Fingerprint uint64
	Lease       time.Duration
}

// Result is the answer to one claim.
type Result struct {
	// Status is the outcome.
	Status Status
	// Token is the fencing token when Status is Acquired.
	Token Token
	// Until is when the current claim's lease ends (Acquired and
	// InProgress); zero otherwise.
	Until time.Time
}

// Store records which messages a consumer has handled. Implementations
// are safe for concurrent use, and each operation is atomic.
type Store interface {
	// Claim tries to take the key for lease.
	Claim(ctx context.Context, key string, fingerprint uint64, lease time.Duration) (Result, error)
	// ClaimBatch claims several keys in one round trip where the backend
	// allows; results are in the order of reqs. Keys in one batch are
	// distinct. The caller reuses reqs once ClaimBatch returns: a store
	// must not keep it.
	ClaimBatch(ctx context.Context, reqs []Request) ([]Result, error)
	// Complete marks the key handled and keeps it for retain. It fails
	// with ErrStaleToken when token no longer holds the key.
	Complete(ctx context.Context, key string, token Token, retain time.Duration) error
	// Release gives the key up so that a redelivery can claim it at once.
	// It fails with ErrStaleToken when token no longer holds the key.
	Release(ctx context.Context, key string, token Token) error
}

var (
	// ErrStaleToken: the token no longer holds the key (its lease ended
	// and another worker took over, or the key was released).
	ErrStaleToken = errors.New("idempotency: stale token")
	// ErrInvalidKey: the key is empty, too long or not valid UTF-8.
	ErrInvalidKey = errors.New("idempotency: invalid key")
)

// MaxKeyBytes is the longest key any backend accepts.
const MaxKeyBytes = 512

// ValidateKey returns an error wrapping ErrInvalidKey when the key is
// empty, over MaxKeyBytes or not valid UTF-8. Every backend applies it.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("%w: key is %d bytes, the limit is %d", ErrInvalidKey, len(key), MaxKeyBytes)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalidKey, key)
	}
	return nil
}

// ValidateBatch applies ValidateKey to every request and checks that no
// key repeats.
func ValidateBatch(reqs []Request) error {
	// Small batches (the common case when handlers are quick and slots
	// free one by one) are checked for repeats pairwise, without a map.
	var seen map[string]struct{}
	if len(reqs) > smallBatch {
		seen = make(map[string]struct{}, len(reqs))
	}
	for i, r := range reqs {
		if err := ValidateKey(r.Key); err != nil {
			return err
		}
		dup := false
		if seen != nil {
			_, dup = seen[r.Key]
			seen[r.Key] = struct{}{}
		} else {
			for _, e := range reqs[:i] {
				if e.Key == r.Key {
					dup = true
					break
				}
			}
		}
		if dup {
			return fmt.Errorf("%w: key %q twice in one batch", ErrInvalidKey, r.Key)
		}
		if r.Lease <= 0 {
			return fmt.Errorf("idempotency: lease for %q must be positive, got %v", r.Key, r.Lease)
		}
	}
	return nil
}

// smallBatch is the largest batch ValidateBatch checks for repeated keys
// by comparing pairs.
const smallBatch = 8
