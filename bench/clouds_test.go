package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/localstack"
)

// Each local cloud is started once per test binary, on first use, and
// stopped by TestMain; every benchmark works on its own fresh topic.
var (
	cloudsMu sync.Mutex
	stoppers []func() error
	names    atomic.Int64
)

// cloud starts a local cloud once: a failure is remembered, so that every
// benchmark of that cloud skips (or fails under HERALD_REQUIRE_ALL=1) with
// the same reason.
type cloud[T any] struct {
	once sync.Once
	val  T
	err  error
}

func (c *cloud[T]) get(tb testing.TB, name string, start func(context.Context) (T, error),
	stop func(T) error) T {
	tb.Helper()
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c.val, c.err = start(ctx)
		if c.err == nil {
			v := c.val
			cloudsMu.Lock()
			stoppers = append(stoppers, func() error { return stop(v) })
			cloudsMu.Unlock()
		}
	})
	if c.err != nil {
		localstack.Unavailable(tb, name, c.err)
	}
	return c.val
}

// stopClouds stops every cloud started, newest first.
func stopClouds() {
	cloudsMu.Lock()
	defer cloudsMu.Unlock()
	for i := len(stoppers) - 1; i >= 0; i-- {
		_ = stoppers[i]()
	}
	stoppers = nil
}

// freshName returns a topic name no other benchmark of this process uses.
func freshName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, names.Add(1))
}
