package dlqcloud

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
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"

	_ "github.com/seed06bc8277/herald/providers/gcppubsub" // registers gcppubsub://
	"github.com/seed06bc8277/herald/providers/servicebus"
	_ "github.com/seed06bc8277/herald/providers/snssqs" // registers snssqs://
)

// cloud starts one local cloud and returns a client on it; an error from
// start means the cloud did not start.
type cloud struct {
	name  string
	start func(ctx context.Context) (io.Closer, *herald.Client, error)
}

var clouds = []cloud{
	{"aws", func(ctx context.Context) (io.Closer, *herald.Client, error) {
		c, err := localstack.StartAWS(ctx)
		if err != nil {
			return nil, nil, err
		}
		return open(ctx, c, c.URL)
	}},
	{"pubsub", func(ctx context.Context) (io.Closer, *herald.Client, error) {
		c, err := localstack.StartPubSub(ctx)
		if err != nil {
			return nil, nil, err
		}
		return open(ctx, c, c.URL)
	}},
	{"servicebus", func(ctx context.Context) (io.Closer, *herald.Client, error) {
		c, err := localstack.StartServiceBus(ctx)
		if err != nil {
			return nil, nil, err
		}
		// The emulator's entities are made through its Go API (Admin),
		// which a URL cannot carry.
		p, err := servicebus.New(ctx, c.Options())
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, herald.NewClient(p), nil
	}},
}

func open(ctx context.Context, c io.Closer, url string) (io.Closer, *herald.Client, error) {
	client, err := herald.Open(ctx, url)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, client, nil
}

var topics atomic.Int64

// env is a client on a started local cloud with a fresh topic whose
// consumers are "email" and "warehouse".
type env struct {
	client *herald.Client
	topic  string
	// subs stay open for the test: a closed SQS subscription's polls
	// still in flight would hide the next messages for a lease.
	subs map[string]providers.Subscription
}

// sub returns the consumer's subscription, opened once.
func (e *env) sub(tb testing.TB, consumer string) providers.Subscription {
	tb.Helper()
	if s := e.subs[consumer]; s != nil {
		return s
	}
	s, err := e.client.Provider().OpenSubscription(context.Background(), e.topic, consumer,
		providers.SubscriptionOptions{Lease: 30 * time.Second, MaxInFlight: 64})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	e.subs[consumer] = s
	return s
}

func newEnv(tb testing.TB, cl cloud) *env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	closer, c, err := cl.start(ctx)
	if err != nil {
		localstack.Unavailable(tb, cl.name, err)
	}
	tb.Cleanup(func() { closer.Close() })
	tb.Cleanup(func() { c.Close() })
	e := &env{client: c, subs: map[string]providers.Subscription{},
		topic: fmt.Sprintf("dlq-%d-%d", time.Now().Unix()%1e6, topics.Add(1))}
	err = c.Provision(ctx, providers.Topology{Topic: e.topic,
		Consumers: []string{"email", "warehouse"}, Lease: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// deadLetter publishes n messages of the type with IDs prefix-0.. and
// dead-letters email's copies with reason "permanent".
func (e *env) deadLetter(tb testing.TB, prefix, typ string, n int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pub, err := e.client.Publisher(ctx, e.topic, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer pub.Close()
	msgs := make([]*herald.Message, 0, 100)
	for i := range n {
		msgs = append(msgs, &herald.Message{ID: prefix + "-" + strconv.Itoa(i), Type: typ,
			Data: []byte(`{"n":` + strconv.Itoa(i) + `}`)})
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := pub.Publish(ctx, msgs...); err != nil {
				tb.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}

	sub := e.sub(tb, "email")
	var done atomic.Int64
	var first error
	var mu sync.Mutex
	for done.Load() < int64(n) {
		ds, err := sub.ReceiveBatch(ctx, 64)
		if err != nil {
			tb.Fatalf("receive to dead-letter (%d of %d): %v", done.Load(), n, err)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, d := range ds {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				err := sub.DeadLetter(ctx, d, providers.DeadLetter{
					Reason: providers.ReasonPermanent, Error: "template missing",
					Attempts: d.Attempt, Consumer: "email", Time: time.Now()})
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				done.Add(1)
			})
		}
		wg.Wait()
		if first != nil {
			tb.Fatalf("dead-letter: %v", first)
		}
	}
}

// receiveAll receives and acks the consumer's messages until it has want
// distinct IDs and then none come for quiet (or, short of want, none for
// 20 s), and returns how often each ID came.
func (e *env) receiveAll(tb testing.TB, consumer string, want int, quiet time.Duration,
) map[string]int {
	tb.Helper()
	ctx := context.Background()
	sub := e.sub(tb, consumer)
	got := map[string]int{}
	last := time.Now()
	for {
		wait := quiet
		if len(got) < want {
			wait = 20 * time.Second
		}
		if time.Since(last) >= wait {
			return got
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ds, err := sub.ReceiveBatch(rctx, 64)
		cancel()
		if err != nil && rctx.Err() == nil {
			tb.Fatal(err)
		}
		for _, d := range ds {
			m, err := herald.Decode(d)
			if err != nil {
				tb.Fatal(err)
			}
			got[m.ID]++
			if err := sub.Ack(ctx, d); err != nil {
				tb.Fatal(err)
			}
			last = time.Now()
		}
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func benchSize() int {
	if n, err := strconv.Atoi(os.Getenv("HERALD_DLQ_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 10_000
}
