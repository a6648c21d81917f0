package idempotency

import (
	"context"
	"time"
)

// None is a Store that remembers nothing: every claim is acquired, so every
// delivery runs the handler. Use it only for handlers that are idempotent
// by themselves (an upsert keyed by the message ID, say), to save the
// store's cost.
type None struct{}

// Claim always acquires.
func (None) Claim(ctx context.Context, key string, fingerprint uint64, lease time.Duration) (Result, error) {
	return Result{Status: Acquired, Token: 1, Until: time.Now().Add(lease)}, nil
}

// ClaimBatch always acquires every key.
func (None) ClaimBatch(ctx context.Context, reqs []Request) ([]Result, error) {
	out := make([]Result, len(reqs))
	now := time.Now()
	for i, r := range reqs {
		out[i] = Result{Status: Acquired, Token: 1, Until: now.Add(r.Lease)}
	}
	return out, nil
}

// Complete does nothing.
func (None) Complete(ctx context.Context, key string, token Token, retain time.Duration) error {
	return nil
}

// Release does nothing.
func (None) Release(ctx context.Context, key string, token Token) error { return nil }
