package herald_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
)

// fixture is one test's mem:// provider, client and topic.
type fixture struct {
	mem    *memory.Provider
	p      providers.Provider // what the client uses: mem, or a wrapper of it
	client *herald.Client
	topic  string
}

func newFixture(t *testing.T, consumers ...string) *fixture {
	return newWrappedFixture(t, nil, consumers...)
}

// newWrappedFixture lets a test put a fault-injecting wrapper around mem.
func newWrappedFixture(t *testing.T, wrap func(providers.Provider) providers.Provider,
	consumers ...string) *fixture {
	t.Helper()
	mem := memory.New()
	var p providers.Provider = mem
	if wrap != nil {
		p = wrap(mem)
	}
	c := herald.NewClient(p)
	t.Cleanup(func() { _ = c.Close() })
	f := &fixture{mem: mem, p: p, client: c, topic: "orders"}
	err := mem.Provision(context.Background(), providers.Topology{Topic: f.topic, Consumers: consumers})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fastOptions retry quickly and lease briefly, for tests.
func fastOptions(store idempotency.Store) *herald.ConsumerOptions {
	return &herald.ConsumerOptions{
		Concurrency:  4,
		MaxAttempts:  3,
		Backoff:      herald.Backoff{Base: 20 * time.Millisecond, Max: 50 * time.Millisecond},
		Lease:        300 * time.Millisecond,
		Store:        store,
		DrainTimeout: 2 * time.Second,
		Logger:       quietLogger(),
	}
}

func (f *fixture) publish(t *testing.T, msgs ...*herald.Message) {
	t.Helper()
	pub, err := f.client.Publisher(context.Background(), f.topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// run starts a consumer and returns a stop function that waits for Run.
func (f *fixture) run(t *testing.T, name string, h herald.Handler, o *herald.ConsumerOptions) (
	*herald.Consumer, func() error) {
	t.Helper()
	c, err := f.client.Consumer(f.topic, name, h, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return c, stop
}

func (f *fixture) stats(t *testing.T, consumer string) memory.Stats {
	t.Helper()
	s, err := f.mem.Stats(f.topic, consumer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flakyStore fails every call while down is set.
type flakyStore struct {
	idempotency.Store
	down  atomic.Bool
	calls atomic.Int32
}

var errStoreDown = errors.New("store: connection refused")

func (s *flakyStore) Claim(ctx context.Context, key string, fp uint64, lease time.Duration) (
	idempotency.Result, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return idempotency.Result{}, errStoreDown
	}
	return s.Store.Claim(ctx, key, fp, lease)
}

func (s *flakyStore) ClaimBatch(ctx context.Context, reqs []idempotency.Request) (
	[]idempotency.Result, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.Store.ClaimBatch(ctx, reqs)
}

// eventLog records the order of store completions and provider acks.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// recordingStore logs completions.
type recordingStore struct {
	idempotency.Store
	log *eventLog
}

func (s recordingStore) Complete(ctx context.Context, key string, tok idempotency.Token,
	retain time.Duration) error {
	s.log.add("complete " + key)
	return s.Store.Complete(ctx, key, tok, retain)
}

// faultyProvider wraps a provider's subscriptions.
type faultyProvider struct {
	providers.Provider
	log      *eventLog
	dropAcks atomic.Int32 // acks to lose (reported as success, never done)
}

func (p *faultyProvider) OpenSubscription(ctx context.Context, topic, consumer string,
	o providers.SubscriptionOptions) (providers.Subscription, error) {
	s, err := p.Provider.OpenSubscription(ctx, topic, consumer, o)
	if err != nil {
		return nil, err
	}
	return &faultySub{Subscription: s, p: p}, nil
}

type faultySub struct {
	providers.Subscription
	p *faultyProvider
}

func (s *faultySub) Ack(ctx context.Context, d *providers.Delivery) error {
	if s.p.dropAcks.Add(-1) >= 0 {
		return nil // lost on the way: the message will come back
	}
	if s.p.log != nil {
		s.p.log.add("ack " + d.Attributes["ce-id"])
	}
	return s.Subscription.Ack(ctx, d)
}
