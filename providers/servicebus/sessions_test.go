package servicebus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

// TestOrderedAcrossTwoConsumerProcesses runs two consumers of one ordered
// subscription, each on its own provider and connection (as two processes
// would), and checks that every ordering key is handled in order, never
// by both at once, including a failed message retried in place.
func TestOrderedAcrossTwoConsumerProcesses(t *testing.T) {
	p1, p2 := newProvider(t), newProvider(t)
	c1, c2 := herald.NewClient(p1), herald.NewClient(p2)
	t.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	topic := topicName(t)
	ctx := ctxFor(t, 30*time.Second)
	if err := c1.Provision(ctx, providers.Topology{Topic: topic, Consumers: []string{"c"},
		Ordered: true, Lease: time.Second, MaxAttempts: 3}); err != nil {
		t.Fatal(err)
	}

	// The subscription requires sessions: a plain receiver is refused.
	sb, err := azservicebus.NewClientFromConnectionString(local(t).ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close(ctx)
	plain, err := sb.NewReceiverForSubscription(topic, "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.PeekMessages(ctx, 1, nil); err == nil {
		t.Fatal("a plain receiver attached to the ordered subscription")
	}
	_ = plain.Close(ctx)

	const keys, n = 4, 12
	var mu sync.Mutex
	seen := map[string][]int{}
	by := map[string]int{} // consumer name -> messages handled
	busy := map[string]*atomic.Bool{}
	for k := range keys {
		busy[fmt.Sprint("k", k)] = &atomic.Bool{}
	}
	var overlaps atomic.Int32
	var failed atomic.Bool
	handler := func(name string) herald.Handler {
		return func(ctx context.Context, m *herald.Message) error {
			b := busy[m.OrderingKey]
			if b == nil || !b.CompareAndSwap(false, true) {
				overlaps.Add(1)
				return nil
			}
			defer b.Store(false)
			var seq int
			_, _ = fmt.Sscanf(m.Subject, "%d", &seq)
			time.Sleep(3 * time.Millisecond)
			if m.OrderingKey == "k1" && seq == 5 && failed.CompareAndSwap(false, true) {
				return errors.New("fail once: retried in place")
			}
			mu.Lock()
			seen[m.OrderingKey] = append(seen[m.OrderingKey], seq)
			by[name]++
			mu.Unlock()
			return nil
		}
	}
	opts := &herald.ConsumerOptions{
		Concurrency: 2, MaxAttempts: 3, Lease: time.Second, HandlerTimeout: 3 * time.Second,
		Backoff:      herald.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		DrainTimeout: 5 * time.Second,
	}
	run := func(c *herald.Client, name string) func() {
		cons, err := c.Consumer(topic, "c", handler(name), opts)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cons.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer %s: %v", name, err)
			}
		}
	}
	stop1 := run(c1, "one")
	stop2 := run(c2, "two")
	defer stop2()
	defer stop1()

	pub, err := c1.Publisher(ctx, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range n {
		for k := range keys {
			key := fmt.Sprint("k", k)
			if err := pub.Publish(ctx, &herald.Message{ID: fmt.Sprintf("%s-%d", key, i),
				Type: "Step", OrderingKey: key, Subject: fmt.Sprint(i),
				Data: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(25 * time.Second)
	for {
		mu.Lock()
		total := 0
		for _, s := range seen {
			total += len(s)
		}
		mu.Unlock()
		if total >= keys*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d messages", total, keys*n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if o := overlaps.Load(); o > 0 {
		t.Errorf("%d handler runs overlapped another of the same key", o)
	}
	for k, s := range seen {
		if !slices.IsSorted(s) || len(s) != n {
			t.Errorf("key %s handled as %v, want 0..%d once each", k, s, n-1)
		}
	}
	if !failed.Load() {
		t.Error("the failing message never ran")
	}
	t.Logf("handled per consumer: %v", by)
}

// keyed returns n messages of one ordering key.
func keyed(key string, n int) []*providers.Message {
	out := msgs(key, n)
	for _, m := range out {
		m.OrderingKey = key
	}
	return out
}

// TestSessionHandOff checks that a subscription gives a key back once it
// is idle, so that another consumer process can read it, and that a
// session's lock is renewed while a message is in flight for longer than
// the lock duration.
func TestSessionHandOff(t *testing.T) {
	p1, p2 := newProvider(t), newProvider(t)
	topic := topicName(t)
	tp := setup(t, p1, providers.Topology{Topic: topic, Consumers: []string{"c"},
		Ordered: true, Lease: time.Second})
	ctx := ctxFor(t, 30*time.Second)
	if err := tp.SendBatch(ctx, keyed("k", 1)); err != nil {
		t.Fatal(err)
	}
	s1, s2 := open(t, p1, topic, "c"), open(t, p2, topic, "c")
	d := receiveN(t, s1, 1)[0]
	if d.OrderingKey != "k" {
		t.Fatalf("ordering key %q", d.OrderingKey)
	}
	// Held for 2.5 lock durations: the session lock is renewed meanwhile.
	time.Sleep(2500 * time.Millisecond)
	if err := s1.Ack(ctx, d); err != nil {
		t.Fatalf("ack after 2.5 lock durations: %v", err)
	}
	// s1 keeps k while it may get more; idle for 500 ms, it lets go (its
	// lock would otherwise be renewed), and the other process gets k.
	if ds, err := s1.ReceiveBatch(ctxFor(t, 1500*time.Millisecond), 1); len(ds) > 0 {
		t.Fatalf("s1 got %d unexpected deliveries (%v)", len(ds), err)
	}
	if err := tp.SendBatch(ctx, keyed("k", 1)); err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, s2, 1)
	if got[0].OrderingKey != "k" {
		t.Fatalf("the second process got key %q", got[0].OrderingKey)
	}
	if err := s2.Ack(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
}
