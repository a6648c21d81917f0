package herald_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// A message is acked only after its handler returned: while the handler
// runs, the delivery stays leased on the provider.
func TestNoAckBeforeTheHandlerFinished(t *testing.T) {
	f := newFixture(t, "c")
	release := make(chan struct{})
	running := make(chan struct{})
	f.run(t, "c", func(ctx context.Context, m *herald.Message) error {
		close(running)
		<-release
		return nil
	}, fastOptions(nil))
	f.publish(t, &herald.Message{ID: "1", Type: "T"})
	<-running
	time.Sleep(100 * time.Millisecond)
	if s := f.stats(t, "c"); s.Acked != 0 || s.Leased != 1 {
		t.Fatalf("while the handler runs: %+v, want 1 leased and 0 acked", s)
	}
	close(release)
	eventually(t, "the ack", func() bool { return f.stats(t, "c").Acked == 1 })
}

// The key is recorded as completed before the ack, so that a redelivery
// racing the ack is recognised as a duplicate.
func TestCompleteComesBeforeAck(t *testing.T) {
	log := &eventLog{}
	f := newWrappedFixture(t, func(p providers.Provider) providers.Provider {
		return &faultyProvider{Provider: p, log: log}
	}, "c")
	store := recordingStore{Store: idempotency.NewMemory(), log: log}
	f.run(t, "c", func(context.Context, *herald.Message) error { return nil }, fastOptions(store))
	f.publish(t, &herald.Message{ID: "42", Type: "T"})
	eventually(t, "the ack", func() bool { return len(log.list()) == 2 })
	if got := log.list(); !slices.Equal(got, []string{"complete c/42", "ack 42"}) {
		t.Fatalf("events %v, want complete then ack", got)
	}
}

// A lost ack makes the provider deliver again; the handler does not run
// again.
func TestLostAckDoesNotRunTheHandlerTwice(t *testing.T) {
	fp := &faultyProvider{}
	fp.dropAcks.Store(1)
	f := newWrappedFixture(t, func(p providers.Provider) providers.Provider {
		fp.Provider = p
		return fp
	}, "c")
	var runs atomic.Int32
	c, _ := f.run(t, "c", func(context.Context, *herald.Message) error {
		runs.Add(1)
		return nil
	}, fastOptions(nil))
	f.publish(t, &herald.Message{ID: "1", Type: "T"})
	eventually(t, "the redelivery to be skipped", func() bool { return c.Stats().Duplicates == 1 })
	eventually(t, "the queue to empty", func() bool { return f.stats(t, "c").Acked == 1 })
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times after a lost ack, want 1", n)
	}
}

// A store that is down: the handler never runs and nothing is acked;
// once it is back, the message is handled once.
func TestStoreDownNeitherRunsHandlerNorAcks(t *testing.T) {
	f := newFixture(t, "c")
	store := &flakyStore{Store: idempotency.NewMemory()}
	store.down.Store(true)
	var runs atomic.Int32
	f.run(t, "c", func(context.Context, *herald.Message) error {
		runs.Add(1)
		return nil
	}, fastOptions(store))
	f.publish(t, &herald.Message{ID: "1", Type: "T"})
	eventually(t, "claims to fail a few times", func() bool { return store.calls.Load() >= 3 })
	if n, s := runs.Load(), f.stats(t, "c"); n != 0 || s.Acked != 0 {
		t.Fatalf("with the store down: %d runs, %d acks; want none", n, s.Acked)
	}
	store.down.Store(false)
	eventually(t, "the message to be handled", func() bool { return f.stats(t, "c").Acked == 1 })
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	if s := f.stats(t, "c"); s.Dead != 0 {
		t.Fatalf("a store outage dead-lettered %d messages", s.Dead)
	}
}

// A panicking handler is a failed attempt; the consumer goes on.
func TestPanicIsAFailedAttempt(t *testing.T) {
	f := newFixture(t, "c")
	var runs atomic.Int32
	c, stop := f.run(t, "c", func(ctx context.Context, m *herald.Message) error {
		if runs.Add(1) == 1 {
			panic("nil order")
		}
		return nil
	}, fastOptions(nil))
	f.publish(t, &herald.Message{ID: "1", Type: "T"})
	eventually(t, "the retry to succeed", func() bool { return c.Stats().Handled == 1 })
	if s := c.Stats(); s.Failed != 1 || s.Retried != 1 {
		t.Fatalf("stats %+v, want one failure retried", s)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after a panic: %v", err)
	}
}

// The same ID with a different payload is a conflict: dead-lettered, never
// silently skipped and never run.
func TestIDReusedForAnotherPayloadIsAConflict(t *testing.T) {
	f := newFixture(t, "c")
	var mu sync.Mutex
	var seen []string
	c, _ := f.run(t, "c", func(ctx context.Context, m *herald.Message) error {
		mu.Lock()
		seen = append(seen, string(m.Data))
		mu.Unlock()
		return nil
	}, fastOptions(nil))
	f.publish(t, &herald.Message{ID: "order-1", Type: "OrderPlaced", Data: []byte("total=10")})
	eventually(t, "the first", func() bool { return c.Stats().Handled == 1 })
	f.publish(t, &herald.Message{ID: "order-1", Type: "OrderPlaced", Data: []byte("total=99")})
	eventually(t, "the conflict", func() bool { return c.Stats().Conflicts == 1 })
	eventually(t, "the dead letter", func() bool { return f.stats(t, "c").Dead == 1 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"total=10"}) {
		t.Fatalf("handler saw %q, want only the first payload", seen)
	}
}

// Two deliveries of one ID in one batch run the handler once.
func TestSameIDTwiceInOneBatch(t *testing.T) {
	f := newFixture(t, "c")
	f.publish(t, &herald.Message{ID: "x", Type: "T", Data: []byte("1")},
		&herald.Message{ID: "x", Type: "T", Data: []byte("1")})
	var runs atomic.Int32
	c, _ := f.run(t, "c", func(ctx context.Context, m *herald.Message) error {
		runs.Add(1)
		return nil
	}, fastOptions(nil))
	eventually(t, "both settled", func() bool { return f.stats(t, "c").Acked == 2 })
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times for one ID delivered twice, want 1", n)
	}
	if d := c.Stats().Duplicates; d != 1 {
		t.Fatalf("Duplicates = %d, want 1", d)
	}
}

// A batch larger than the loop scans by hand finds a repeated ID through
// its map: the handler still runs once per ID.
func TestSameIDTwiceInALargeBatch(t *testing.T) {
	f := newFixture(t, "c")
	var msgs []*herald.Message
	for i := range 20 {
		msgs = append(msgs, &herald.Message{ID: fmt.Sprintf("m-%d", i), Type: "T", Data: []byte("1")})
	}
	msgs = append(msgs, &herald.Message{ID: "m-3", Type: "T", Data: []byte("1")},
		&herald.Message{ID: "m-17", Type: "T", Data: []byte("1")})
	f.publish(t, msgs...)
	var mu sync.Mutex
	runs := map[string]int{}
	opts := fastOptions(nil)
	opts.Concurrency = 32 // the whole batch in one receive
	c, _ := f.run(t, "c", func(ctx context.Context, m *herald.Message) error {
		mu.Lock()
		defer mu.Unlock()
		runs[m.ID]++
		return nil
	}, opts)
	eventually(t, "all settled", func() bool { return f.stats(t, "c").Acked == 22 })
	mu.Lock()
	defer mu.Unlock()
	for id, n := range runs {
		if n != 1 {
			t.Errorf("handler ran %d times for %s", n, id)
		}
	}
	if len(runs) != 20 {
		t.Errorf("handler ran for %d IDs, want 20", len(runs))
	}
	if d := c.Stats().Duplicates; d != 2 {
		t.Fatalf("Duplicates = %d, want 2", d)
	}
}

// Messages of one ordering key run one at a time in order, also when the
// provider hands over several at once and one fails: the ones behind it
// wait for its retry.
func TestOrderHoldsAcrossARetry(t *testing.T) {
	bp := newBatchProvider()
	client := herald.NewClient(bp)
	var mu sync.Mutex
	var order []string
	failed := false
	var busy atomic.Bool
	var overlaps atomic.Int32
	c, err := client.Consumer("t", "c", func(ctx context.Context, m *herald.Message) error {
		if !busy.CompareAndSwap(false, true) {
			overlaps.Add(1)
		}
		defer busy.Store(false)
		time.Sleep(time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if m.ID == "k-2" && !failed {
			failed = true
			return errors.New("transient")
		}
		order = append(order, m.ID)
		return nil
	}, &herald.ConsumerOptions{Concurrency: 8, Logger: quietLogger(), Lease: time.Second,
		Backoff: herald.Backoff{Base: 30 * time.Millisecond, Max: 30 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := client.Publisher(context.Background(), "t", nil)
	var msgs []*herald.Message
	for i := range 6 {
		msgs = append(msgs, &herald.Message{ID: fmt.Sprintf("k-%d", i), Type: "T", OrderingKey: "k"})
	}
	if err := pub.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	eventually(t, "all six", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 6
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"k-0", "k-1", "k-2", "k-3", "k-4", "k-5"}
	if !slices.Equal(order, want) {
		t.Fatalf("handled %v, want %v", order, want)
	}
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d handler runs of one key overlapped", n)
	}
}

// Shutdown past the drain timeout cancels the handler's context and gives
// the message back unacked; the handler's success afterwards still
// completes the key, so the redelivery is skipped.
func TestDrainTimeoutGivesBackAndCompletesLate(t *testing.T) {
	f := newFixture(t, "c")
	store := idempotency.NewMemory()
	running := make(chan struct{})
	o := fastOptions(store)
	o.DrainTimeout = 50 * time.Millisecond
	_, stop := f.run(t, "c", func(ctx context.Context, m *herald.Message) error {
		close(running)
		<-ctx.Done()
		return nil // finished its effect despite the cancel
	}, o)
	f.publish(t, &herald.Message{ID: "1", Type: "T"})
	<-running
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := f.stats(t, "c"); s.Acked != 0 {
		t.Fatalf("after the drain timeout %d acked, want the message given back", s.Acked)
	}
	var runs atomic.Int32
	c2, _ := f.run(t, "c", func(context.Context, *herald.Message) error {
		runs.Add(1)
		return nil
	}, fastOptions(store))
	eventually(t, "the redelivery to be skipped", func() bool { return c2.Stats().Duplicates == 1 })
	if n := runs.Load(); n != 0 {
		t.Fatalf("the handler ran again %d times", n)
	}
}

func TestConsumerBadInput(t *testing.T) {
	f := newFixture(t, "c")
	ok := func(context.Context, *herald.Message) error { return nil }
	if _, err := f.client.Consumer(f.topic, "c", nil, nil); !errors.Is(err, herald.ErrInvalid) ||
		!strings.Contains(err.Error(), "nil handler") {
		t.Errorf("nil handler: %v", err)
	}
	if _, err := f.client.Consumer(f.topic, "bad name!", ok, nil); !errors.Is(err, herald.ErrInvalid) {
		t.Errorf("bad consumer name: %v", err)
	}
	c, err := f.client.Consumer(f.topic, "c", ok, fastOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	if err := c.Run(ctx); !errors.Is(err, herald.ErrInvalid) || !strings.Contains(err.Error(), "already") {
		t.Errorf("second Run: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("first Run: %v", err)
	}
}

// A run that outlives HandlerTimeout has its context cancelled with
// ErrHandlerTimeout and counts as a failed attempt; the worker's next run
// gets a live context.
func TestHandlerTimeoutCancelsTheRun(t *testing.T) {
	f := newFixture(t, "c")
	o := fastOptions(nil)
	o.Concurrency = 1
	o.HandlerTimeout = 100 * time.Millisecond
	causes := make(chan error, 2)
	c, _ := f.run(t, "c", func(ctx context.Context, m *herald.Message) error {
		if m.Attempt == 1 {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		}
		causes <- ctx.Err()
		return nil
	}, o)
	f.publish(t, &herald.Message{ID: "1", Type: "T"})
	if err := <-causes; !errors.Is(err, herald.ErrHandlerTimeout) {
		t.Fatalf("cause %v, want ErrHandlerTimeout", err)
	}
	if err := <-causes; err != nil {
		t.Fatalf("the retry ran with a dead context: %v", err)
	}
	eventually(t, "the retry to be acked", func() bool { return c.Stats().Handled == 1 })
}
