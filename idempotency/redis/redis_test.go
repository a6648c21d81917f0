package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/idempotency/redis"
	"github.com/seed06bc8277/herald/idempotency/storetest"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
)

// addr is the local Redis the tests use.
const addr = "127.0.0.1:6379"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client connects to the local Redis, or ends the test through
// localstack.Unavailable.
func client(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		localstack.Unavailable(t, "redis", err)
	}
	return c
}

// prefix returns a key prefix no other test uses, and deletes the keys
// under it when the test ends.
func prefix(t testing.TB, c goredis.UniversalClient) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	p := "herald:test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { deleteUnder(t, c, p) })
	return p
}

func deleteUnder(t testing.TB, c goredis.UniversalClient, p string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("scan %s*: %v", p, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Unlink(ctx, keys[:n]...).Err(); err != nil {
			t.Logf("unlink under %s: %v", p, err)
			return
		}
		keys = keys[n:]
	}
}

func TestConformance(t *testing.T) {
	c := client(t)
	s := redis.New(c, redis.Options{Prefix: prefix(t, c)})
	storetest.Run(t, func(*testing.T) idempotency.Store { return s })
}

// TestConformanceRing runs the suite through a two-shard Ring, whose
// batches take the pipeline of per-key scripts.
func TestConformanceRing(t *testing.T) {
	client(t) // skip early when Redis is down
	ring := goredis.NewRing(&goredis.RingOptions{
		Addrs: map[string]string{"shard1": addr, "shard2": addr},
	})
	t.Cleanup(func() { _ = ring.Close() })
	s := redis.New(ring, redis.Options{Prefix: prefix(t, client(t))})
	storetest.Run(t, func(*testing.T) idempotency.Store { return s })
}

func TestDefaultPrefixAndFormat(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	s := redis.New(c, redis.Options{})
	k := "storetest-prefix/" + rand.Text()
	t.Cleanup(func() { c.Del(ctx, redis.DefaultPrefix+k) })

	r, err := s.Claim(ctx, k, 42, 10*time.Second)
	if err != nil || r.Status != idempotency.Acquired {
		t.Fatalf("Claim = %v, %v", r.Status, err)
	}
	// The record lives under the default prefix and expires with the lease.
	ttl, err := c.PTTL(ctx, redis.DefaultPrefix+k).Result()
	if err != nil || ttl <= 9*time.Second || ttl > 10*time.Second {
		t.Fatalf("PTTL of %s%s = %v, %v; want about 10s", redis.DefaultPrefix, k, ttl, err)
	}
	if err := s.Complete(ctx, k, r.Token, time.Hour); err != nil {
		t.Fatal(err)
	}
	ttl, err = c.PTTL(ctx, redis.DefaultPrefix+k).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("PTTL after Complete = %v, %v; want about 1h", ttl, err)
	}
}

// TestScriptCacheFlushed checks the fallback from EVALSHA to EVAL, for
// single calls and for the Ring's pipelines.
func TestScriptCacheFlushed(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	ring := goredis.NewRing(&goredis.RingOptions{
		Addrs: map[string]string{"shard1": addr, "shard2": addr},
	})
	t.Cleanup(func() { _ = ring.Close() })
	p := prefix(t, c)
	for name, s := range map[string]*redis.Store{
		"client": redis.New(c, redis.Options{Prefix: p + "c:"}),
		"ring":   redis.New(ring, redis.Options{Prefix: p + "r:"}),
	} {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := s.ClaimBatch(ctx, []idempotency.Request{
			{Key: "a", Fingerprint: 1, Lease: time.Minute},
			{Key: "b", Fingerprint: 1, Lease: time.Minute},
			{Key: "c", Fingerprint: 1, Lease: time.Minute},
		})
		if err != nil {
			t.Fatalf("%s: ClaimBatch after SCRIPT FLUSH: %v", name, err)
		}
		for i, r := range res {
			if r.Status != idempotency.Acquired {
				t.Fatalf("%s: result %d = %v, want acquired", name, i, r.Status)
			}
		}
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, "a", res[0].Token, time.Minute); err != nil {
			t.Fatalf("%s: Complete after SCRIPT FLUSH: %v", name, err)
		}
	}
}

func TestMalformedRecord(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	p := prefix(t, c)
	if err := c.Set(ctx, p+"junk", "not a record", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	s := redis.New(c, redis.Options{Prefix: p})
	r, err := s.Claim(ctx, "junk", 1, time.Minute)
	if err == nil {
		t.Fatalf("Claim over a foreign value = %v, want an error", r.Status)
	}
	if v, _ := c.Get(ctx, p+"junk").Result(); v != "not a record" {
		t.Fatalf("foreign value overwritten with %q", v)
	}
}

func TestUnreachable(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	s := redis.New(c, redis.Options{})
	ctx := context.Background()

	start := time.Now()
	r, err := s.Claim(ctx, "k", 1, time.Minute)
	if !errors.Is(err, providers.ErrUnavailable) || r.Status == idempotency.Acquired {
		t.Fatalf("Claim on an unreachable server = %v, %v; want ErrUnavailable", r.Status, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Claim on an unreachable server took %v, want under 5s", d)
	} else {
		t.Logf("Claim on an unreachable server failed in %v: %v", d, err)
	}

	// The other operations, through a client that does not retry (the
	// default retries 3 times, which is most of the time above).
	once := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { _ = once.Close() })
	s = redis.New(once, redis.Options{})
	batch := []idempotency.Request{{Key: "k", Fingerprint: 1, Lease: time.Minute}}
	if _, err := s.ClaimBatch(ctx, batch); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("ClaimBatch on an unreachable server: err = %v, want ErrUnavailable", err)
	}
	if err := s.Complete(ctx, "k", 1, time.Minute); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("Complete on an unreachable server: err = %v, want ErrUnavailable", err)
	}
	if err := s.Release(ctx, "k", 1); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("Release on an unreachable server: err = %v, want ErrUnavailable", err)
	}

	_ = once.Close()
	if _, err := s.Claim(ctx, "k", 1, time.Minute); !errors.Is(err, providers.ErrClosed) {
		t.Fatalf("Claim on a closed client: err = %v, want ErrClosed", err)
	}
}

func BenchmarkRedis(b *testing.B) {
	c := client(b)
	s := redis.New(c, redis.Options{Prefix: prefix(b, c)})
	storetest.Bench(b, func(*testing.B) idempotency.Store { return s })
}

func BenchmarkRedisRing(b *testing.B) {
	c := client(b)
	ring := goredis.NewRing(&goredis.RingOptions{
		Addrs: map[string]string{"shard1": addr, "shard2": addr},
	})
	b.Cleanup(func() { _ = ring.Close() })
	s := redis.New(ring, redis.Options{Prefix: prefix(b, c)})
	storetest.Bench(b, func(*testing.B) idempotency.Store { return s })
}
