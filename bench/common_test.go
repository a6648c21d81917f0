package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

// The workload every contender gets.
const (
	// bodySize is each message body: 1 KiB.
	bodySize = 1024
	// handlers is how many handlers run at once on the consume side.
	handlers = 16
	// senders is how many goroutines publish one message at a time when a
	// contender's publishing is measured with concurrent senders.
	senders = 16
)

// TestMain runs the tests and benchmarks, stops the local clouds they
// started, and then fails the run if goroutines were left behind.
func TestMain(m *testing.M) {
	code := m.Run()
	stopClouds()
	if code == 0 {
		if err := goleak.Find(leakOptions...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var leakOptions = []goleak.Option{
	// Watermill's default Deduplicator repository cleans its map on a
	// goroutine that has no way to stop.
	goleak.IgnoreTopFunction(
		"github.com/ThreeDotsLabs/watermill/message/router/middleware." +
			"(*mapExpiringKeyRepository).cleanOutLoop"),
	// gocloud.dev's and the cloud SDKs' HTTP and gRPC connections close
	// their idle readers asynchronously.
	goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	// gocloud.dev's OpenCensus metrics start a worker at init.
	goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	// The v2 Pub/Sub client's streaming pull, under gocloud.dev's
	// subscription, keeps a keep-alive goroutine after Shutdown.
	goleak.IgnoreAnyFunction(
		"cloud.google.com/go/pubsub/v2.(*messageIterator).streamKeepAliveHandler"),
}

// template is a 1 KiB JSON order; body writes a number into a copy of it,
// so that bodies differ only in that number, as real events do.
var template = func() []byte {
	b := []byte(`{"type":"OrderPlaced","order":0000000000,"note":"`)
	for len(b) < bodySize-2 {
		b = append(b, 'x')
	}
	return append(b, '"', '}')
}()

// numberAt is where body writes the number: the ten zeros of "order".
var numberAt = len(`{"type":"OrderPlaced","order":`)

// body returns a fresh 1 KiB body holding n.
func body(n int) []byte {
	b := make([]byte, bodySize)
	copy(b, template)
	s := strconv.AppendInt(make([]byte, 0, 10), int64(n), 10)
	copy(b[numberAt+10-len(s):], s)
	return b
}

// bodies returns n distinct bodies, made before a timer starts.
func bodies(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = body(i)
	}
	return out
}

// counter closes done when the n-th message is counted.
type counter struct {
	n    int64
	seen atomic.Int64
	done chan struct{}
}

func newCounter(n int) *counter { return &counter{n: int64(n), done: make(chan struct{})} }

func (c *counter) add() {
	if c.seen.Add(1) == c.n {
		close(c.done)
	}
}

// startTimer resets the benchmark's timer and allocation counts.
func startTimer(b *testing.B) {
	b.ReportAllocs()
	b.ResetTimer()
}

// stopTimer stops the timer and reports the throughput in msgs/s.
func stopTimer(b *testing.B, msgs int) {
	b.StopTimer()
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}

// parallel runs f(i) for i in [0, n) on workers goroutines and returns the
// first error.
func parallel(ctx context.Context, workers, n int,
	f func(ctx context.Context, i int) error) error {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
