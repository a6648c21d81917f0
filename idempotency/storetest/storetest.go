// Package storetest is the conformance suite that every idempotency.Store
// must pass: the memory store, SQLite, Redis and PostgreSQL all run it.
//
// Run uses fresh, unique keys in every test, so that a store shared
// between tests (one Redis database, one table) needs no cleanup. Tests
// that wait for a lease or a retention to end use leases of 200-400 ms and
// poll for up to 10 s, so that a loaded machine slows the suite down
// rather than failing it. The whole suite takes about a second.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/idempotency"
)

// Timing of the suite.
const (
	// longLease is the lease of claims that must not expire during a test.
	longLease = time.Minute
	// shortLease is the lease of claims whose expiry a test waits for.
	shortLease = 300 * time.Millisecond
	// retain is the retention of completions that must outlive a test.
	retain = time.Hour
	// patience bounds every poll for an expiry.
	patience = 10 * time.Second
	// clockSlack is how far the store's clock (a server's) and the
	// suite's may disagree about when a lease ends.
	clockSlack = time.Second
)

// Run runs the conformance suite against the stores newStore returns.
// newStore may return the same store for every call, or a new one; it
// should register its own cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) idempotency.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, idempotency.Store)
	}{
		{"ClaimCompleteDuplicate", testClaimCompleteDuplicate},
		{"ReleaseThenReclaim", testReleaseThenReclaim},
		{"InProgressWhileHeld", testInProgressWhileHeld},
		{"LeaseExpiryTakeover", testLeaseExpiryTakeover},
		{"ExpiredNotTakenOver", testExpiredNotTakenOver},
		{"TokensGrow", testTokensGrow},
		{"OneWinnerOf50", testOneWinnerOf50},
		{"RetentionThenReclaim", testRetentionThenReclaim},
		{"ConflictCompleted", testConflictCompleted},
		{"ConflictHeld", testConflictHeld},
		{"SettledTokenIsStale", testSettledTokenIsStale},
		{"ClaimBatchMatchesClaim", testClaimBatchMatchesClaim},
		{"ClaimBatchDuplicateKeys", testClaimBatchDuplicateKeys},
		{"ClaimBatchEmpty", testClaimBatchEmpty},
		{"InvalidKeys", testInvalidKeys},
		{"LongestKey", testLongestKey},
		{"UnusualKeys", testUnusualKeys},
		{"NonPositiveLease", testNonPositiveLease},
		{"CancelledContext", testCancelledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// key returns a key no other test, run or process uses.
func key(t *testing.T, suffix string) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := strings.ReplaceAll(t.Name(), "/", ".")
	return "storetest/" + name + "/" + hex.EncodeToString(b[:]) + "/" + suffix
}

func claim(t *testing.T, s idempotency.Store, k string, fp uint64,
	lease time.Duration) idempotency.Result {
	t.Helper()
	r, err := s.Claim(context.Background(), k, fp, lease)
	if err != nil {
		t.Fatalf("Claim(%q): %v", k, err)
	}
	return r
}

func mustAcquire(t *testing.T, s idempotency.Store, k string, fp uint64,
	lease time.Duration) idempotency.Result {
	t.Helper()
	before := time.Now()
	r := claim(t, s, k, fp, lease)
	after := time.Now()
	if r.Status != idempotency.Acquired {
		t.Fatalf("Claim(%q) on a free key = %v, want acquired", k, r.Status)
	}
	if r.Token <= 0 {
		t.Fatalf("Claim(%q) acquired with token %d, want a positive token", k, r.Token)
	}
	checkUntil(t, "acquired", r.Until, before.Add(lease), after.Add(lease))
	return r
}

func checkUntil(t *testing.T, what string, until, earliest, latest time.Time) {
	t.Helper()
	if until.Before(earliest.Add(-clockSlack)) || until.After(latest.Add(clockSlack)) {
		t.Fatalf("%s: Until = %v, want between %v and %v (±%v)",
			what, until, earliest, latest, clockSlack)
	}
}

func wantStatus(t *testing.T, what string, got idempotency.Result, want idempotency.Status) {
	t.Helper()
	if got.Status != want {
		t.Fatalf("%s = %v, want %v", what, got.Status, want)
	}
	if want != idempotency.Acquired && got.Token != 0 {
		t.Fatalf("%s = %v with token %d, want no token", what, got.Status, got.Token)
	}
}

func complete(t *testing.T, s idempotency.Store, k string, tok idempotency.Token,
	d time.Duration) {
	t.Helper()
	if err := s.Complete(context.Background(), k, tok, d); err != nil {
		t.Fatalf("Complete(%q, %d): %v", k, tok, err)
	}
}

func release(t *testing.T, s idempotency.Store, k string, tok idempotency.Token) {
	t.Helper()
	if err := s.Release(context.Background(), k, tok); err != nil {
		t.Fatalf("Release(%q, %d): %v", k, tok, err)
	}
}

func wantStale(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, idempotency.ErrStaleToken) {
		t.Fatalf("%s: err = %v, want ErrStaleToken", what, err)
	}
}

// pollAcquire claims k until it is acquired, checking that every answer
// before that is one of the allowed statuses.
func pollAcquire(t *testing.T, s idempotency.Store, k string, fp uint64, lease time.Duration,
	allowed idempotency.Status) idempotency.Result {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		r := claim(t, s, k, fp, lease)
		switch r.Status {
		case idempotency.Acquired:
			return r
		case allowed:
		default:
			t.Fatalf("Claim(%q) while waiting = %v, want %v or acquired", k, r.Status, allowed)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Claim(%q) still %v after %v", k, r.Status, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testClaimCompleteDuplicate(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	r := mustAcquire(t, s, k, 7, longLease)
	complete(t, s, k, r.Token, retain)

	got := claim(t, s, k, 7, longLease)
	wantStatus(t, "Claim after Complete", got, idempotency.Completed)
	if !got.Until.IsZero() {
		t.Fatalf("Claim after Complete: Until = %v, want zero", got.Until)
	}
	res, err := s.ClaimBatch(context.Background(),
		[]idempotency.Request{{Key: k, Fingerprint: 7, Lease: longLease}})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "ClaimBatch after Complete", res[0], idempotency.Completed)
}

func testReleaseThenReclaim(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	first := mustAcquire(t, s, k, 1, longLease)
	release(t, s, k, first.Token)

	second := mustAcquire(t, s, k, 1, longLease)
	if second.Token <= first.Token {
		t.Fatalf("token after release = %d, want more than %d", second.Token, first.Token)
	}
	wantStale(t, "Complete with the released token",
		s.Complete(context.Background(), k, first.Token, retain))
	wantStale(t, "Release with the released token", s.Release(context.Background(), k, first.Token))
	complete(t, s, k, second.Token, retain)
}

func testInProgressWhileHeld(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	held := mustAcquire(t, s, k, 3, longLease)
	got := claim(t, s, k, 3, longLease)
	wantStatus(t, "second Claim", got, idempotency.InProgress)
	if d := got.Until.Sub(held.Until); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("InProgress Until = %v, want the holder's %v", got.Until, held.Until)
	}
	// The holder is unaffected by the failed claim.
	complete(t, s, k, held.Token, retain)
}

func testLeaseExpiryTakeover(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	old := mustAcquire(t, s, k, 5, shortLease)
	taken := pollAcquire(t, s, k, 5, longLease, idempotency.InProgress)
	if taken.Token <= old.Token {
		t.Fatalf("takeover token = %d, want more than %d", taken.Token, old.Token)
	}
	if now := time.Now(); now.Before(old.Until.Add(-clockSlack)) ||
		now.After(old.Until.Add(2*clockSlack)) {
		t.Fatalf("taken over at %v, want soon after the lease ended at %v", now, old.Until)
	}
	wantStale(t, "Complete with the old token",
		s.Complete(context.Background(), k, old.Token, retain))
	wantStale(t, "Release with the old token", s.Release(context.Background(), k, old.Token))
	wantStatus(t, "Claim after takeover", claim(t, s, k, 5, longLease), idempotency.InProgress)
	complete(t, s, k, taken.Token, retain)
	wantStatus(t, "Claim after Complete", claim(t, s, k, 5, longLease), idempotency.Completed)
}

// testExpiredNotTakenOver allows both choices a store may make for a lease
// that ran out with nobody taking over: accept the token (memory, SQLite,
// PostgreSQL) or reject it (Redis, whose key expired). The store's later
// answers must agree with the choice.
func testExpiredNotTakenOver(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	r := mustAcquire(t, s, k, 9, 200*time.Millisecond)
	// Waiting for wall time to pass, not for the code under test.
	time.Sleep(time.Until(r.Until) + 100*time.Millisecond)

	err := s.Complete(context.Background(), k, r.Token, retain)
	switch {
	case err == nil:
		wantStatus(t, "Claim after a late Complete", claim(t, s, k, 9, longLease), idempotency.Completed)
	case errors.Is(err, idempotency.ErrStaleToken):
		next := mustAcquire(t, s, k, 9, longLease)
		if next.Token <= r.Token {
			t.Fatalf("token after expiry = %d, want more than %d", next.Token, r.Token)
		}
	default:
		t.Fatalf("Complete after the lease ended: %v, want nil or ErrStaleToken", err)
	}
}

func testTokensGrow(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	var last idempotency.Token
	for i := range 5 {
		r := mustAcquire(t, s, k, 1, longLease)
		if r.Token <= last {
			t.Fatalf("acquisition %d: token %d, want more than %d", i, r.Token, last)
		}
		last = r.Token
		release(t, s, k, r.Token)
	}
}

func testOneWinnerOf50(t *testing.T, s idempotency.Store) {
	const workers = 50
	k := key(t, "a")
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]idempotency.Result, workers)
		errs    = make([]error, workers)
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = s.Claim(context.Background(), k, 11, longLease)
		}()
	}
	close(start)
	wg.Wait()

	won := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		switch r.Status {
		case idempotency.Acquired:
			won++
		case idempotency.InProgress:
		default:
			t.Fatalf("worker %d: %v, want acquired or in-progress", i, r.Status)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d workers acquired the key, want exactly 1", won, workers)
	}
}

func testRetentionThenReclaim(t *testing.T, s idempotency.Store) {
	const keep = 400 * time.Millisecond
	k := key(t, "a")
	r := mustAcquire(t, s, k, 2, longLease)
	completedAt := time.Now()
	complete(t, s, k, r.Token, keep)
	wantStatus(t, "Claim within retention", claim(t, s, k, 2, longLease), idempotency.Completed)

	next := pollAcquire(t, s, k, 2, longLease, idempotency.Completed)
	if early := completedAt.Add(keep).Sub(time.Now()); early > 50*time.Millisecond {
		t.Fatalf("reclaimed %v before the retention of %v ended", early, keep)
	}
	if late := time.Since(completedAt.Add(keep)); late > 2*clockSlack {
		t.Fatalf("reclaimed %v after the retention of %v ended", late, keep)
	}
	if next.Token <= r.Token {
		t.Fatalf("token after retention = %d, want more than %d", next.Token, r.Token)
	}
}

func testConflictCompleted(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	r := mustAcquire(t, s, k, 100, longLease)
	complete(t, s, k, r.Token, retain)
	wantStatus(t, "Claim with another fingerprint",
		claim(t, s, k, 101, longLease), idempotency.Conflict)
	wantStatus(t, "Claim with the same fingerprint",
		claim(t, s, k, 100, longLease), idempotency.Completed)
}

func testConflictHeld(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	// The largest fingerprints must survive storage as they are.
	const fp, other = ^uint64(0), ^uint64(0) - 1
	r := mustAcquire(t, s, k, fp, longLease)
	wantStatus(t, "Claim with another fingerprint",
		claim(t, s, k, other, longLease), idempotency.Conflict)
	wantStatus(t, "Claim with the same fingerprint",
		claim(t, s, k, fp, longLease), idempotency.InProgress)
	complete(t, s, k, r.Token, retain)
	wantStatus(t, "Claim after Complete", claim(t, s, k, fp, longLease), idempotency.Completed)
}

func testSettledTokenIsStale(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	k := key(t, "a")
	r := mustAcquire(t, s, k, 1, longLease)
	complete(t, s, k, r.Token, retain)
	wantStale(t, "second Complete", s.Complete(ctx, k, r.Token, retain))
	wantStale(t, "Release after Complete", s.Release(ctx, k, r.Token))
	wantStatus(t, "Claim after a stale Release", claim(t, s, k, 1, longLease), idempotency.Completed)

	k2 := key(t, "b")
	r2 := mustAcquire(t, s, k2, 1, longLease)
	wantStale(t, "Complete with a wrong token", s.Complete(ctx, k2, r2.Token+1, retain))
	wantStale(t, "Release with a wrong token", s.Release(ctx, k2, r2.Token-1))
	wantStale(t, "Complete of a key never claimed", s.Complete(ctx, key(t, "c"), 1, retain))
	wantStale(t, "Release of a key never claimed", s.Release(ctx, key(t, "d"), 1))
	release(t, s, k2, r2.Token)
	wantStale(t, "second Release", s.Release(ctx, k2, r2.Token))
}

// batchScenario prepares five keys: new, held, completed, conflicting with
// a completion, conflicting with a claim; the answers to claiming them all
// with fingerprint 1 are want.
func batchScenario(t *testing.T, s idempotency.Store,
	prefix string) (reqs []idempotency.Request, want []idempotency.Status) {
	t.Helper()
	keys := make([]string, 5)
	for i := range keys {
		keys[i] = key(t, fmt.Sprintf("%s%d", prefix, i))
	}
	mustAcquire(t, s, keys[1], 1, longLease)
	r := mustAcquire(t, s, keys[2], 1, longLease)
	complete(t, s, keys[2], r.Token, retain)
	r = mustAcquire(t, s, keys[3], 2, longLease)
	complete(t, s, keys[3], r.Token, retain)
	mustAcquire(t, s, keys[4], 2, longLease)

	// Claim in an order that is not the keys' sorted order.
	order := []int{3, 0, 4, 2, 1}
	all := []idempotency.Status{
		idempotency.Acquired, idempotency.InProgress, idempotency.Completed,
		idempotency.Conflict, idempotency.Conflict,
	}
	for _, i := range order {
		reqs = append(reqs, idempotency.Request{Key: keys[i], Fingerprint: 1, Lease: longLease})
		want = append(want, all[i])
	}
	return reqs, want
}

func testClaimBatchMatchesClaim(t *testing.T, s idempotency.Store) {
	reqs, want := batchScenario(t, s, "batch")
	before := time.Now()
	got, err := s.ClaimBatch(context.Background(), reqs)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(reqs) {
		t.Fatalf("ClaimBatch returned %d results for %d requests", len(got), len(reqs))
	}

	singles, _ := batchScenario(t, s, "single")
	for i, r := range singles {
		one := claim(t, s, r.Key, r.Fingerprint, r.Lease)
		wantStatus(t, fmt.Sprintf("ClaimBatch result %d", i), got[i], want[i])
		wantStatus(t, fmt.Sprintf("Claim %d", i), one, want[i])
		switch want[i] {
		case idempotency.Acquired:
			checkUntil(t, "batch acquired", got[i].Until, before.Add(longLease), after.Add(longLease))
			complete(t, s, reqs[i].Key, got[i].Token, retain)
			wantStatus(t, "Claim after completing the batch's claim",
				claim(t, s, reqs[i].Key, 1, longLease), idempotency.Completed)
		case idempotency.InProgress:
			if got[i].Until.IsZero() {
				t.Fatalf("batch in-progress result %d has no Until", i)
			}
		}
	}
}

func testClaimBatchDuplicateKeys(t *testing.T, s idempotency.Store) {
	k, other := key(t, "a"), key(t, "b")
	_, err := s.ClaimBatch(context.Background(), []idempotency.Request{
		{Key: other, Fingerprint: 1, Lease: longLease},
		{Key: k, Fingerprint: 1, Lease: longLease},
		{Key: k, Fingerprint: 1, Lease: longLease},
	})
	if !errors.Is(err, idempotency.ErrInvalidKey) {
		t.Fatalf("ClaimBatch with a repeated key: err = %v, want ErrInvalidKey", err)
	}
	// A rejected batch claims nothing.
	mustAcquire(t, s, k, 1, longLease)
	mustAcquire(t, s, other, 1, longLease)
}

func testClaimBatchEmpty(t *testing.T, s idempotency.Store) {
	got, err := s.ClaimBatch(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("ClaimBatch(nil) = %v, %v; want no results and no error", got, err)
	}
}

func testInvalidKeys(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	bad := map[string]string{
		"empty":        "",
		"513 bytes":    strings.Repeat("k", idempotency.MaxKeyBytes+1),
		"invalid utf8": "storetest/\xff\xfe",
	}
	for name, k := range bad {
		if _, err := s.Claim(ctx, k, 1, longLease); !errors.Is(err, idempotency.ErrInvalidKey) {
			t.Errorf("Claim(%s): err = %v, want ErrInvalidKey", name, err)
		}
		valid := key(t, name)
		_, err := s.ClaimBatch(ctx, []idempotency.Request{
			{Key: valid, Fingerprint: 1, Lease: longLease},
			{Key: k, Fingerprint: 1, Lease: longLease},
		})
		if !errors.Is(err, idempotency.ErrInvalidKey) {
			t.Errorf("ClaimBatch(%s): err = %v, want ErrInvalidKey", name, err)
		}
		mustAcquire(t, s, valid, 1, longLease) // the rejected batch claimed nothing
		if err := s.Complete(ctx, k, 1, retain); !errors.Is(err, idempotency.ErrInvalidKey) {
			t.Errorf("Complete(%s): err = %v, want ErrInvalidKey", name, err)
		}
		if err := s.Release(ctx, k, 1); !errors.Is(err, idempotency.ErrInvalidKey) {
			t.Errorf("Release(%s): err = %v, want ErrInvalidKey", name, err)
		}
	}
}

func testLongestKey(t *testing.T, s idempotency.Store) {
	// 512 bytes of two-byte runes, unique per run.
	k := key(t, "")
	k += strings.Repeat("é", (idempotency.MaxKeyBytes-len(k))/2)
	k += strings.Repeat("x", idempotency.MaxKeyBytes-len(k))
	r := mustAcquire(t, s, k, 1, longLease)
	complete(t, s, k, r.Token, retain)
	wantStatus(t, "Claim of the longest key after Complete",
		claim(t, s, k, 1, longLease), idempotency.Completed)
}

// testUnusualKeys claims valid keys that a backend could mangle: NUL,
// glob and SQL metacharacters, separators, non-Latin text. Each must be
// its own key.
func testUnusualKeys(t *testing.T, s idempotency.Store) {
	base := key(t, "")
	suffixes := []string{"\x00", "\x00\x00", "*", "?", "[a]", "%", "_", "'; --", "|", "h|1|2|3",
		" ", "\t\n", "键", "🙂", "\u200b", "\\"}
	tokens := make([]idempotency.Token, len(suffixes))
	for i, sfx := range suffixes {
		tokens[i] = mustAcquire(t, s, base+sfx, uint64(i), longLease).Token
	}
	for i, sfx := range suffixes {
		wantStatus(t, fmt.Sprintf("Claim(%q) again", base+sfx),
			claim(t, s, base+sfx, uint64(i), longLease), idempotency.InProgress)
		complete(t, s, base+sfx, tokens[i], retain)
	}
	for i, sfx := range suffixes {
		wantStatus(t, fmt.Sprintf("Claim(%q) after Complete", base+sfx),
			claim(t, s, base+sfx, uint64(i), longLease), idempotency.Completed)
	}
	wantStatus(t, "Claim of the bare prefix", claim(t, s, base, 0, longLease), idempotency.Acquired)
}

func testNonPositiveLease(t *testing.T, s idempotency.Store) {
	k := key(t, "a")
	for _, lease := range []time.Duration{0, -time.Second} {
		if r, err := s.Claim(context.Background(), k, 1, lease); err == nil {
			t.Fatalf("Claim with lease %v = %v, want an error", lease, r.Status)
		}
	}
	mustAcquire(t, s, k, 1, longLease)
}

func testCancelledContext(t *testing.T, s idempotency.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := key(t, "a")
	if r, err := s.Claim(ctx, k, 1, longLease); err == nil {
		t.Fatalf("Claim with a cancelled context = %v, want an error", r.Status)
	}
	batch := []idempotency.Request{{Key: k, Fingerprint: 1, Lease: longLease}}
	if _, err := s.ClaimBatch(ctx, batch); err == nil {
		t.Fatal("ClaimBatch with a cancelled context: want an error")
	}
	// Neither call took the key.
	r := mustAcquire(t, s, k, 1, longLease)

	if err := s.Complete(ctx, k, r.Token, retain); err == nil {
		t.Fatal("Complete with a cancelled context: want an error")
	}
	if err := s.Release(ctx, k, r.Token); err == nil {
		t.Fatal("Release with a cancelled context: want an error")
	}
	wantStatus(t, "Claim after cancelled settlements",
		claim(t, s, k, 1, longLease), idempotency.InProgress)
	complete(t, s, k, r.Token, retain)
}
