package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/idempotency/postgres"
	"github.com/seed06bc8277/herald/idempotency/storetest"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// urls are the local PostgreSQL the tests try, in turn.
var urls = []string{
	"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	"postgres://root@127.0.0.1:5432/test?sslmode=disable",
}

// connect returns a pool on the local PostgreSQL, or ends the test
// through localstack.Unavailable.
func connect(t testing.TB) *pgxpool.Pool {
	t.Helper()
	var errs []error
	for _, u := range urls {
		pool, err := pgxpool.New(context.Background(), u)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = pool.Ping(ctx)
			cancel()
			if err == nil {
				t.Cleanup(pool.Close)
				return pool
			}
			pool.Close()
		}
		errs = append(errs, err)
	}
	localstack.Unavailable(t, "postgres", errors.Join(errs...))
	return nil
}

// migrated returns a store on a table no other test uses, created by
// Migrate and dropped when the test ends.
func migrated(t testing.TB, pool *pgxpool.Pool) (*postgres.Store, string) {
	t.Helper()
	table := "herald_idem_test_" + strings.ToLower(rand.Text()[:12])
	s := postgres.New(pool, postgres.Options{Table: table})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+table); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
	})
	return s, table
}

func TestConformance(t *testing.T) {
	s, _ := migrated(t, connect(t))
	storetest.Run(t, func(*testing.T) idempotency.Store { return s })
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	pool := connect(t)
	s, _ := migrated(t, pool)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Migrate(context.Background()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}

	// A schema-qualified table in a fresh schema.
	schema := "herald_idem_schema_" + strings.ToLower(rand.Text()[:8])
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE") })
	q := postgres.New(pool, postgres.Options{Table: schema + ".idem"})
	if err := q.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := q.Claim(ctx, "k", 1, time.Minute); err != nil || r.Status != idempotency.Acquired {
		t.Fatalf("Claim in %s.idem = %v, %v", schema, r.Status, err)
	}
}

func TestMissingSchema(t *testing.T) {
	pool := connect(t)
	s := postgres.New(pool, postgres.Options{Table: "herald_idem_never_migrated"})
	ctx := context.Background()
	_, err := s.Claim(ctx, "k", 1, time.Minute)
	if !errors.Is(err, postgres.ErrNoSchema) || !errors.Is(err, providers.ErrNotFound) ||
		!strings.Contains(err.Error(), "Migrate") {
		t.Fatalf("Claim without the table: err = %v, want ErrNoSchema naming Migrate", err)
	}
	t.Logf("error: %v", err)
	batch := []idempotency.Request{{Key: "k", Fingerprint: 1, Lease: time.Minute}}
	if _, err := s.ClaimBatch(ctx, batch); !errors.Is(err, postgres.ErrNoSchema) {
		t.Fatalf("ClaimBatch without the table: err = %v, want ErrNoSchema", err)
	}
	if err := s.Complete(ctx, "k", 1, time.Minute); !errors.Is(err, postgres.ErrNoSchema) {
		t.Fatalf("Complete without the table: err = %v, want ErrNoSchema", err)
	}
	if _, err := s.Cleanup(ctx, 10); !errors.Is(err, postgres.ErrNoSchema) {
		t.Fatalf("Cleanup without the table: err = %v, want ErrNoSchema", err)
	}
}

func TestBadTableName(t *testing.T) {
	pool := connect(t)
	bad := []string{"x; DROP TABLE y", "a.b.c", "1abc", `we"ird`, strings.Repeat("t", 51)}
	for _, name := range bad {
		s := postgres.New(pool, postgres.Options{Table: name})
		if err := s.Migrate(context.Background()); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("Migrate with table %q: err = %v, want ErrInvalid", name, err)
		}
		_, err := s.Claim(context.Background(), "k", 1, time.Minute)
		if !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("Claim with table %q: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	pool, err := pgxpool.New(context.Background(),
		"postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := postgres.New(pool, postgres.Options{})
	start := time.Now()
	r, err := s.Claim(context.Background(), "k", 1, time.Minute)
	if !errors.Is(err, providers.ErrUnavailable) || r.Status == idempotency.Acquired {
		t.Fatalf("Claim on an unreachable server = %v, %v; want ErrUnavailable", r.Status, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Claim on an unreachable server took %v, want under 5s", d)
	} else {
		t.Logf("Claim on an unreachable server failed in %v: %v", d, err)
	}
	if err := s.Release(context.Background(), "k", 1); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("Release on an unreachable server: err = %v, want ErrUnavailable", err)
	}
}

// TestCleanupConcurrent runs 4 cleaners at once over 2000 expired rows
// and 50 live ones: together they delete each expired row exactly once
// and no live row.
func TestCleanupConcurrent(t *testing.T) {
	const expired, live, limit = 2000, 50, 100
	ctx := context.Background()
	pool := connect(t)
	s, table := migrated(t, pool)
	if _, err := s.Cleanup(ctx, 0); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("Cleanup(0): err = %v, want ErrInvalid", err)
	}

	// Expired rows written directly, to make many quickly; live rows
	// through the store.
	if _, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (key, fingerprint, token, state, until)
		SELECT convert_to('old/' || i, 'UTF8'), 1, i, 3, now() - interval '1 second'
		FROM generate_series(1, %d) AS i`, table, expired)); err != nil {
		t.Fatal(err)
	}
	for i := range live {
		r, err := s.Claim(ctx, fmt.Sprintf("live/%d", i), 1, time.Minute)
		if err != nil || r.Status != idempotency.Acquired {
			t.Fatalf("Claim = %v, %v", r.Status, err)
		}
	}

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		total   int64
		rounds  [4]int
		cleaned error
	)
	for c := range 4 {
		wg.Go(func() {
			for {
				n, err := s.Cleanup(ctx, limit)
				mu.Lock()
				total += n
				rounds[c]++
				if err != nil {
					cleaned = err
				}
				mu.Unlock()
				if err != nil || n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if cleaned != nil {
		t.Fatal(cleaned)
	}
	if total != expired {
		t.Fatalf("cleaners deleted %d rows, want %d", total, expired)
	}
	var left int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != live {
		t.Fatalf("%d rows left, want the %d live ones", left, live)
	}
	t.Logf("cleaner rounds: %v", rounds)
	for i := range live {
		r, err := s.Claim(ctx, fmt.Sprintf("live/%d", i), 1, time.Minute)
		if err != nil || r.Status != idempotency.InProgress {
			t.Fatalf("Claim of a live key after Cleanup = %v, %v; want in-progress", r.Status, err)
		}
	}
}

// TestBatchesDoNotDeadlock runs overlapping batches in opposite orders
// from 8 goroutines: the store locks keys in one order, so none deadlocks,
// and each key is acquired exactly once.
func TestBatchesDoNotDeadlock(t *testing.T) {
	ctx := context.Background()
	s, _ := migrated(t, connect(t))
	const keys, workers, rounds = 20, 8, 10
	acquired := make([]int, keys)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				reqs := make([]idempotency.Request, keys)
				for i := range reqs {
					k := i
					if (w+r)%2 == 1 {
						k = keys - 1 - i
					}
					reqs[i] = idempotency.Request{Key: fmt.Sprintf("k/%02d", k),
						Fingerprint: 1, Lease: time.Minute}
				}
				res, err := s.ClaimBatch(ctx, reqs)
				if err != nil {
					errs[w] = err
					return
				}
				mu.Lock()
				for i, x := range res {
					if x.Status == idempotency.Acquired {
						var k int
						fmt.Sscanf(reqs[i].Key, "k/%d", &k)
						acquired[k]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for k, n := range acquired {
		if n != 1 {
			t.Fatalf("key %d acquired %d times, want 1", k, n)
		}
	}
}

func BenchmarkPostgres(b *testing.B) {
	s, _ := migrated(b, connect(b))
	storetest.Bench(b, func(*testing.B) idempotency.Store { return s })
}

// TestClaimWaitsForConcurrentInsert makes a claim wait on a row that
// another transaction inserts and commits meanwhile, so the row is not in
// the claim's snapshot: the store must claim that key again and answer
// in-progress, not fail or acquire it.
func TestClaimWaitsForConcurrentInsert(t *testing.T) {
	ctx := context.Background()
	pool := connect(t)
	s, table := migrated(t, pool)

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (key, fingerprint, token, state, until)
		VALUES ('\x6b'::bytea, 1, 5, 1, now() + interval '1 minute')`, table)); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		r   idempotency.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		r, err := s.Claim(ctx, "k", 1, time.Minute)
		done <- answer{r, err}
	}()

	// Wait until the claim is blocked on the uncommitted row.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%'||$1||'%'`, table).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the claim never waited for the inserting transaction")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil || a.r.Status != idempotency.InProgress {
		t.Fatalf("Claim racing an insert = %v, %v; want in-progress", a.r.Status, a.err)
	}
}
