package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/idempotency"
)

// BatchSize is the number of keys per ClaimBatch call in Bench.
const BatchSize = 10

// Bench measures a store's claim rate on fresh keys from one goroutine,
// the way one consumer claims: sub-benchmark "Claim" claims one key per
// call, "ClaimBatch10" ten keys per call. Both count one op per claimed
// key, so their ns/op and claims/s compare directly, and report
// allocations. newStore is called at every start of a sub-benchmark (they
// run several times with growing b.N), so that it may hand out an empty
// store each time; it may also return one shared store.
//
// "Interleaved" alternates ten single claims with one batch of ten, so
// that both meet the same server conditions (a database's commit latency
// drifts over seconds), and reports the batch's speedup as "x-batched".
func Bench(b *testing.B, newStore func(b *testing.B) idempotency.Store) {
	b.Run("Claim", func(b *testing.B) {
		s := newStore(b)
		prefix := benchPrefix(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := string(strconv.AppendInt(prefix, int64(i), 10))
			r, err := s.Claim(ctx, k, 1, time.Minute)
			if err != nil || r.Status != idempotency.Acquired {
				b.Fatalf("Claim(%q) = %v, %v", k, r.Status, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
	})
	b.Run("ClaimBatch10", func(b *testing.B) {
		s := newStore(b)
		prefix := benchPrefix(b)
		reqs := make([]idempotency.Request, BatchSize)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += BatchSize {
			for j := range reqs {
				k := string(strconv.AppendInt(prefix, int64(i+j), 10))
				reqs[j] = idempotency.Request{Key: k, Fingerprint: 1, Lease: time.Minute}
			}
			acquireBatch(b, s, reqs)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
	})
	b.Run("Interleaved", func(b *testing.B) { benchInterleaved(b, newStore(b)) })
}

// benchInterleaved is Bench's "Interleaved" sub-benchmark: each op is ten
// single claims and one batch of ten, timed apart.
func benchInterleaved(b *testing.B, s idempotency.Store) {
	prefix := benchPrefix(b)
	ctx := context.Background()
	reqs := make([]idempotency.Request, BatchSize)
	var single, batched time.Duration
	n := 0
	next := func() string {
		n++
		return string(strconv.AppendInt(prefix, int64(n), 10))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		for range BatchSize {
			k := next()
			if r, err := s.Claim(ctx, k, 1, time.Minute); err != nil || r.Status != idempotency.Acquired {
				b.Fatalf("Claim(%q) = %v, %v", k, r.Status, err)
			}
		}
		mid := time.Now()
		for j := range reqs {
			reqs[j] = idempotency.Request{Key: next(), Fingerprint: 1, Lease: time.Minute}
		}
		acquireBatch(b, s, reqs)
		single += mid.Sub(start)
		batched += time.Since(mid)
	}
	b.ReportMetric(float64(single)/float64(batched), "x-batched")
	b.ReportMetric(float64(b.N*BatchSize)/single.Seconds(), "single-claims/s")
	b.ReportMetric(float64(b.N*BatchSize)/batched.Seconds(), "batched-claims/s")
}

// acquireBatch claims reqs' fresh keys in one batch and fails b unless
// every one was acquired.
func acquireBatch(b *testing.B, s idempotency.Store, reqs []idempotency.Request) {
	res, err := s.ClaimBatch(context.Background(), reqs)
	if err != nil {
		b.Fatalf("ClaimBatch: %v", err)
	}
	for j, r := range res {
		if r.Status != idempotency.Acquired {
			b.Fatalf("ClaimBatch(%q) = %v", reqs[j].Key, r.Status)
		}
	}
}

func benchPrefix(b *testing.B) []byte {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		b.Fatal(err)
	}
	return []byte("bench/" + hex.EncodeToString(r[:]) + "/")
}
