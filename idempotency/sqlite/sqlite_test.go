package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/idempotency/sqlite"
	"github.com/seed06bc8277/herald/idempotency/storetest"
	"github.com/seed06bc8277/herald/providers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	// One file shared by every test, as the consumers of a host share it.
	s := open(t, filepath.Join(t.TempDir(), "idem.db"))
	storetest.Run(t, func(*testing.T) idempotency.Store { return s })
}

func TestConformanceTwoHandles(t *testing.T) {
	// Two handles on one file stand for two processes: odd tests claim
	// through one, even tests through the other, and the 50-way race
	// spreads over both.
	path := filepath.Join(t.TempDir(), "idem.db")
	a, b := open(t, path), open(t, path)
	var (
		mu sync.Mutex
		n  int
	)
	storetest.Run(t, func(*testing.T) idempotency.Store {
		mu.Lock()
		defer mu.Unlock()
		n++
		return &alternating{stores: [2]idempotency.Store{a, b}, next: n % 2}
	})
}

// alternating sends each call to the next of two stores in turn.
type alternating struct {
	mu     sync.Mutex
	stores [2]idempotency.Store
	next   int
}

func (s *alternating) pick() idempotency.Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.stores[s.next%2]
}

func (s *alternating) Claim(ctx context.Context, k string, fp uint64,
	l time.Duration) (idempotency.Result, error) {
	return s.pick().Claim(ctx, k, fp, l)
}

func (s *alternating) ClaimBatch(ctx context.Context,
	r []idempotency.Request) ([]idempotency.Result, error) {
	return s.pick().ClaimBatch(ctx, r)
}

func (s *alternating) Complete(ctx context.Context, k string, tok idempotency.Token,
	d time.Duration) error {
	return s.pick().Complete(ctx, k, tok, d)
}

func (s *alternating) Release(ctx context.Context, k string, tok idempotency.Token) error {
	return s.pick().Release(ctx, k, tok)
}

func TestDurableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "idem.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Claim(ctx, "c/1", 5, time.Minute)
	if err != nil || r.Status != idempotency.Acquired {
		t.Fatalf("Claim = %v, %v", r.Status, err)
	}
	if err := s.Complete(ctx, "c/1", r.Token, time.Hour); err != nil {
		t.Fatal(err)
	}
	held, err := s.Claim(ctx, "c/2", 5, time.Minute)
	if err != nil || held.Status != idempotency.Acquired {
		t.Fatalf("Claim = %v, %v", held.Status, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "c/3", 5, time.Minute); !errors.Is(err, providers.ErrClosed) {
		t.Fatalf("Claim after Close: err = %v, want ErrClosed", err)
	}

	s = open(t, path)
	got, err := s.Claim(ctx, "c/1", 5, time.Minute)
	if err != nil || got.Status != idempotency.Completed {
		t.Fatalf("Claim of a completed key after reopening = %v, %v; want completed", got.Status, err)
	}
	got, err = s.Claim(ctx, "c/2", 5, time.Minute)
	if err != nil || got.Status != idempotency.InProgress || !got.Until.Equal(held.Until) {
		t.Fatalf("Claim of a held key after reopening = %+v, %v; want in-progress until %v",
			got, err, held.Until)
	}
	if err := s.Complete(ctx, "c/2", held.Token, time.Hour); err != nil {
		t.Fatalf("Complete with the token from before reopening: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "idem.db"))
	if _, err := s.Cleanup(ctx, 0); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("Cleanup(0): err = %v, want ErrInvalid", err)
	}

	// Five short completions, one long one, one live claim.
	for _, k := range []string{"a", "b", "c", "d", "e", "long"} {
		r, err := s.Claim(ctx, k, 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		retain := time.Millisecond
		if k == "long" {
			retain = time.Hour
		}
		if err := s.Complete(ctx, k, r.Token, retain); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Claim(ctx, "held", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // let the 1 ms retentions pass

	if n, err := s.Cleanup(ctx, 3); err != nil || n != 3 {
		t.Fatalf("Cleanup(3) = %d, %v; want 3", n, err)
	}
	if n, err := s.Cleanup(ctx, 100); err != nil || n != 2 {
		t.Fatalf("second Cleanup = %d, %v; want the other 2", n, err)
	}
	if n, err := s.Cleanup(ctx, 100); err != nil || n != 0 {
		t.Fatalf("third Cleanup = %d, %v; want 0", n, err)
	}
	for k, want := range map[string]idempotency.Status{
		"long": idempotency.Completed, "held": idempotency.InProgress, "a": idempotency.Acquired,
	} {
		if got, err := s.Claim(ctx, k, 1, time.Minute); err != nil || got.Status != want {
			t.Fatalf("Claim(%q) after Cleanup = %v, %v; want %v", k, got.Status, err, want)
		}
	}
}

func TestOpenBadPath(t *testing.T) {
	dir := t.TempDir()
	if _, err := sqlite.Open(filepath.Join(dir, "missing", "dir", "idem.db")); err == nil {
		t.Fatal("Open in a missing directory: want an error")
	}
	if _, err := sqlite.Open(""); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("Open(\"\"): err = %v, want ErrInvalid", err)
	}
}

func BenchmarkSQLite(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "idem.db"))
	storetest.Bench(b, func(*testing.B) idempotency.Store { return s })
}
