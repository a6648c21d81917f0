// Package providertest is the conformance suite that every herald provider
// must pass. It drives a provider through herald's public API (Publisher,
// Consumer) the way applications do, so a provider is done when this
// suite passes, not when it compiles.
//
// A provider's test calls Run with a function that connects to its local
// cloud:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, providertest.Config{
//			NewProvider: func(t *testing.T) providers.Provider { ... },
//			Lease:       time.Second,
//		})
//	}
//
// Every test provisions its own topic with fresh names through the
// provider's Provisioner, so tests never see each other's messages.
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// Config says how to reach the provider under test.
type Config struct {
	// NewProvider returns a provider connected to the local cloud. It is
	// called once per test; the suite closes what it returns.
	NewProvider func(t *testing.T) providers.Provider
	// Lease is the lease the suite provisions and consumes with. Short
	// leases keep the suite fast. Default 1 s.
	Lease time.Duration
	// Timeout bounds each wait for an outcome. Default 30 s.
	Timeout time.Duration
}

// Run runs every conformance test as a subtest of t.
func Run(t *testing.T, cfg Config) {
	if cfg.NewProvider == nil {
		t.Fatal("providertest: Config.NewProvider is required")
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"SendReceive", testSendReceive},
		{"EnvelopeRoundTrip", testEnvelopeRoundTrip},
		{"FanOutThreeConsumers", testFanOut},
		{"FailedHandlerIsRedelivered", testFailedRedelivered},
		{"AbandonedDeliveryReturnsAfterLease", testAbandonedReturns},
		{"CancelledHandlerIsRedelivered", testCancelledRedelivered},
		{"SlowHandlerIsNotRedeliveredWhileRunning", testSlowHandler},
		{"SameIDTwiceRunsOncePerConsumer", testSameIDTwice},
		{"MalformedIsDeadLettered", testMalformed},
		{"MaxAttemptsDeadLetters", testMaxAttempts},
		{"PermanentErrorDeadLettersAtOnce", testPermanent},
		{"OrderingKeyInOrder", testOrdering},
		{"ShutdownDrainsAndLosesNothing", testShutdownDrains},
		{"UnknownTopicOrConsumer", testUnknown},
		{"RedriveReachesOnlyTheFailedConsumer", testRedrive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newEnv(t, cfg))
		})
	}
}

// env is one test's provider, client and fresh topic name.
type env struct {
	cfg    Config
	p      providers.Provider
	client *herald.Client
	topic  string
}

func newEnv(t *testing.T, cfg Config) *env {
	p := cfg.NewProvider(t)
	c := herald.NewClient(p)
	t.Cleanup(func() { _ = c.Close() })
	var b [4]byte
	_, _ = rand.Read(b[:])
	short := strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
	if len(short) > 10 {
		short = short[:10]
	}
	return &env{cfg: cfg, p: p, client: c, topic: "ht" + hex.EncodeToString(b[:]) + "-" + short}
}

// provision creates the test's topic and consumers.
func (e *env) provision(t *testing.T, ordered bool, consumers ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	err := e.client.Provision(ctx, providers.Topology{
		Topic: e.topic, Consumers: consumers, Ordered: ordered, Lease: e.cfg.Lease, MaxAttempts: 3,
	})
	if err != nil {
		t.Fatalf("provision %s %v: %v", e.topic, consumers, err)
	}
}

// options are the consumer options the suite uses: the provider's lease,
// quick retries, three attempts.
func (e *env) options(store idempotency.Store) *herald.ConsumerOptions {
	return &herald.ConsumerOptions{
		Concurrency:    8,
		MaxAttempts:    3,
		Backoff:        herald.Backoff{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		Lease:          e.cfg.Lease,
		HandlerTimeout: 3 * e.cfg.Lease,
		Store:          store,
		DrainTimeout:   5 * time.Second,
		Logger:         testLogger(),
	}
}

// testLogger discards the consumers' logs unless HERALD_TEST_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (e *env) publisher(t *testing.T) *herald.Publisher {
	t.Helper()
	p, err := e.client.Publisher(context.Background(), e.topic, nil)
	if err != nil {
		t.Fatalf("publisher for %s: %v", e.topic, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (e *env) publish(t *testing.T, pub *herald.Publisher, msgs ...*herald.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	if err := pub.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// running is a consumer started by start.
type running struct {
	c      *herald.Consumer
	cancel context.CancelFunc
	done   chan error
}

// start runs a consumer until the test ends (or stop is called).
func (e *env) start(t *testing.T, name string, h herald.Handler, o *herald.ConsumerOptions) *running {
	t.Helper()
	c, err := e.client.Consumer(e.topic, name, h, o)
	if err != nil {
		t.Fatalf("consumer %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the consumer down and checks that Run ended cleanly.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("consumer %s: Run: %v", r.c.Name(), err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("consumer %s: Run did not return 30 s after its context ended", r.c.Name())
	}
}

// eventually polls cond until it holds or the timeout passes.
func (e *env) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e.cfg.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", e.cfg.Timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits d, during which nothing more may happen (used to check
// that something does NOT happen, such as a redelivery).
func settle(d time.Duration) { time.Sleep(d) }

// recorder counts handler runs per message ID and keeps the messages.
type recorder struct {
	mu    sync.Mutex
	runs  map[string]int
	msgs  []*herald.Message
	order []string
}

func newRecorder() *recorder { return &recorder{runs: map[string]int{}} }

func (r *recorder) record(m *herald.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[m.ID]++
	r.msgs = append(r.msgs, m)
	r.order = append(r.order, m.ID)
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[id]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

// handler records every message and succeeds.
func (r *recorder) handler() herald.Handler {
	return func(ctx context.Context, m *herald.Message) error {
		r.record(m)
		return nil
	}
}

func messages(n int, prefix string) []*herald.Message {
	out := make([]*herald.Message, n)
	for i := range out {
		out[i] = &herald.Message{
			ID:   fmt.Sprintf("%s-%d", prefix, i),
			Type: "OrderPlaced",
			Data: []byte(fmt.Sprintf(`{"order":%d}`, i)),
		}
	}
	return out
}

// letter is a dead letter as the suite reads it.
type letter struct {
	msg *herald.Message
	dl  providers.DeadLetter
}

// deadLetters waits until the consumer's dead-letter queue holds want
// letters, reads them and gives them back.
func (e *env) deadLetters(t *testing.T, consumer string, want int) []letter {
	t.Helper()
	src, ok := e.p.(providers.DeadLetterSource)
	if !ok {
		t.Fatalf("provider %T does not implement providers.DeadLetterSource", e.p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	q, err := src.OpenDeadLetters(ctx, e.topic, consumer)
	if err != nil {
		t.Fatalf("open dead letters of %s: %v", consumer, err)
	}
	defer q.Close()
	var got []*providers.Delivery
	for len(got) < want {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		ds, err := q.ReceiveBatch(rctx, want-len(got))
		rcancel()
		if ctx.Err() != nil {
			t.Fatalf("timed out with %d of %d dead letters of %s", len(got), want, consumer)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("receive dead letters of %s: %v", consumer, err)
		}
		got = append(got, ds...)
	}
	out := make([]letter, 0, len(got))
	for _, d := range got {
		dl, ok := providers.ParseDeadLetter(d.Attributes)
		if !ok {
			t.Errorf("dead letter %s has no reason attributes: %v", d.ProviderID, d.Attributes)
		}
		m, _ := herald.Decode(d) // nil for a malformed letter
		out = append(out, letter{msg: m, dl: dl})
		if err := q.Release(ctx, d); err != nil {
			t.Errorf("release dead letter: %v", err)
		}
	}
	return out
}
