package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/dlq"
	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

func testSendReceive(t *testing.T, e *env) {
	e.provision(t, false, "c")
	rec := newRecorder()
	e.start(t, "c", rec.handler(), e.options(nil))
	pub := e.publisher(t)
	e.publish(t, pub, messages(10, "m")...)
	e.eventually(t, "10 messages handled", func() bool { return rec.distinct() == 10 })
	for i := range 10 {
		if n := rec.count(fmt.Sprintf("m-%d", i)); n != 1 {
			t.Errorf("m-%d handled %d times, want 1", i, n)
		}
	}
}

func testEnvelopeRoundTrip(t *testing.T, e *env) {
	e.provision(t, false, "c")
	rec := newRecorder()
	e.start(t, "c", rec.handler(), e.options(nil))
	pub := e.publisher(t)
	at := time.Date(2026, 12, 3, 10, 4, 5, 123456789, time.UTC)
	want := []*herald.Message{
		{ID: "binary", Type: "Blob", Source: "/tests", Time: at, Subject: "s-1",
			ContentType: "application/octet-stream", Data: []byte{0xff, 0xfe, 0x00, 0x80, 'x'},
			Attributes: map[string]string{"lang": "日本語 ✓", "emoji": "🚀"}},
		{ID: "empty", Type: "Empty", Source: "/tests", Time: at, Data: []byte{}},
		{ID: "many-attrs", Type: "Attrs", Source: "/tests", Time: at, Data: []byte("{}"),
			ContentType: "application/json", Attributes: manyAttrs(12)},
	}
	e.publish(t, pub, want...)
	e.eventually(t, "3 messages handled", func() bool { return rec.distinct() == 3 })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, w := range want {
		var got *herald.Message
		for _, m := range rec.msgs {
			if m.ID == w.ID {
				got = m
			}
		}
		switch {
		case got.Type != w.Type || got.Source != w.Source || got.Subject != w.Subject ||
			got.ContentType != w.ContentType:
			t.Errorf("%s: got type %q source %q subject %q content type %q, want %q %q %q %q",
				w.ID, got.Type, got.Source, got.Subject, got.ContentType,
				w.Type, w.Source, w.Subject, w.ContentType)
		case !got.Time.Equal(w.Time):
			t.Errorf("%s: time %v, want %v", w.ID, got.Time, w.Time)
		case !bytes.Equal(got.Data, w.Data):
			t.Errorf("%s: data %x, want %x", w.ID, got.Data, w.Data)
		case !maps.Equal(got.Attributes, w.Attributes) && !(len(got.Attributes) == 0 && len(w.Attributes) == 0):
			t.Errorf("%s: attributes %v, want %v", w.ID, got.Attributes, w.Attributes)
		case got.Attempt != 1:
			t.Errorf("%s: attempt %d, want 1", w.ID, got.Attempt)
		}
	}
}

func manyAttrs(n int) map[string]string {
	out := make(map[string]string, n)
	for i := range n {
		out[fmt.Sprintf("attr-%02d", i)] = fmt.Sprintf("välue %d", i)
	}
	return out
}

func testFanOut(t *testing.T, e *env) {
	names := []string{"email", "warehouse", "analytics"}
	e.provision(t, false, names...)
	recs := map[string]*recorder{}
	for _, n := range names {
		recs[n] = newRecorder()
		e.start(t, n, recs[n].handler(), e.options(nil))
	}
	e.publish(t, e.publisher(t), messages(20, "order")...)
	for _, n := range names {
		e.eventually(t, n+" handled 20", func() bool { return recs[n].distinct() == 20 })
	}
	settle(e.cfg.Lease)
	for _, n := range names {
		if got := recs[n].total(); got != 20 {
			t.Errorf("%s ran its handler %d times for 20 messages", n, got)
		}
	}
}

func testFailedRedelivered(t *testing.T, e *env) {
	e.provision(t, false, "c")
	var mu sync.Mutex
	var attempts []int
	e.start(t, "c", func(ctx context.Context, m *herald.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, m.Attempt)
		if len(attempts) == 1 {
			return errors.New("transient")
		}
		return nil
	}, e.options(nil))
	e.publish(t, e.publisher(t), messages(1, "f")...)
	e.eventually(t, "a second attempt", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) >= 2
	})
	settle(e.cfg.Lease)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(attempts, []int{1, 2}) {
		t.Errorf("attempts seen %v, want [1 2]", attempts)
	}
}

// testAbandonedReturns: a receiver that takes a message and dies without
// settling it (a crashed process) loses nothing: the message comes back
// after the lease.
func testAbandonedReturns(t *testing.T, e *env) {
	e.provision(t, false, "c")
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	e.publish(t, e.publisher(t), messages(1, "crash")...)
	sub, err := e.p.OpenSubscription(ctx, e.topic, "c", providers.SubscriptionOptions{Lease: e.cfg.Lease, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []*providers.Delivery
	for len(got) == 0 && ctx.Err() == nil {
		got, err = sub.ReceiveBatch(ctx, 1)
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
	}
	_ = sub.Close() // the crash: nothing settled

	rec := newRecorder()
	e.start(t, "c", rec.handler(), e.options(nil))
	e.eventually(t, "the abandoned message to be handled", func() bool { return rec.distinct() == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if a := rec.msgs[0].Attempt; a < 2 {
		t.Errorf("redelivered message has attempt %d, want >= 2", a)
	}
}

// testCancelledRedelivered: a consumer shut down while its handler runs
// does not ack; another replica handles the message, once.
func testCancelledRedelivered(t *testing.T, e *env) {
	e.provision(t, false, "c")
	store := idempotency.NewMemory()
	started := make(chan struct{})
	var once sync.Once
	o := e.options(store)
	o.DrainTimeout = 200 * time.Millisecond
	first := e.start(t, "c", func(ctx context.Context, m *herald.Message) error {
		once.Do(func() { close(started) })
		<-ctx.Done() // the handler is cut off mid-way
		return ctx.Err()
	}, o)
	e.publish(t, e.publisher(t), messages(1, "cut")...)
	select {
	case <-started:
	case <-time.After(e.cfg.Timeout):
		t.Fatal("handler never started")
	}
	first.stop(t)

	rec := newRecorder()
	e.start(t, "c", rec.handler(), e.options(store))
	e.eventually(t, "the cut-off message to be handled by the second replica", func() bool {
		return rec.distinct() == 1
	})
	settle(e.cfg.Lease)
	if n := rec.total(); n != 1 {
		t.Errorf("second replica ran the handler %d times, want 1", n)
	}
}

func testSlowHandler(t *testing.T, e *env) {
	e.provision(t, false, "c")
	var runs atomic.Int32
	var done atomic.Bool
	hold := 5 * e.cfg.Lease / 2
	o := e.options(nil)
	o.HandlerTimeout = 4 * hold
	e.start(t, "c", func(ctx context.Context, m *herald.Message) error {
		runs.Add(1)
		select {
		case <-time.After(hold):
		case <-ctx.Done():
			return ctx.Err()
		}
		done.Store(true)
		return nil
	}, o)
	e.publish(t, e.publisher(t), messages(1, "slow")...)
	e.eventually(t, "the slow handler to finish", done.Load)
	settle(2 * e.cfg.Lease)
	if n := runs.Load(); n != 1 {
		t.Errorf("a handler running %v (lease %v) ran %d times, want 1", hold, e.cfg.Lease, n)
	}
}

func testSameIDTwice(t *testing.T, e *env) {
	e.provision(t, false, "a", "b")
	recA, recB := newRecorder(), newRecorder()
	ca := e.start(t, "a", recA.handler(), e.options(nil))
	e.start(t, "b", recB.handler(), e.options(nil))
	pub := e.publisher(t)
	e.publish(t, pub, &herald.Message{ID: "dup", Type: "OrderPlaced", Data: []byte("1")})
	e.publish(t, pub, &herald.Message{ID: "dup", Type: "OrderPlaced", Data: []byte("1")})
	e.publish(t, pub, &herald.Message{ID: "other", Type: "OrderPlaced", Data: []byte("2")})
	for _, r := range []*recorder{recA, recB} {
		e.eventually(t, "both IDs handled", func() bool { return r.distinct() == 2 })
	}
	e.eventually(t, "the duplicate to be skipped", func() bool { return ca.c.Stats().Duplicates >= 1 })
	for name, r := range map[string]*recorder{"a": recA, "b": recB} {
		if n := r.count("dup"); n != 1 {
			t.Errorf("consumer %s ran the handler %d times for an ID published twice", name, n)
		}
	}
}

func testMalformed(t *testing.T, e *env) {
	e.provision(t, false, "c")
	rec := newRecorder()
	c := e.start(t, "c", rec.handler(), e.options(nil))
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	raw, err := e.p.OpenTopic(ctx, e.topic)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	err = raw.SendBatch(ctx, []*providers.Message{{ID: "legacy-1", Body: []byte("not an envelope")}})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(t, e.publisher(t), messages(1, "good")...)

	letters := e.deadLetters(t, "c", 1)
	if r := letters[0].dl.Reason; r != providers.ReasonMalformed {
		t.Errorf("dead letter reason %q, want %q", r, providers.ReasonMalformed)
	}
	e.eventually(t, "the good message to be handled", func() bool { return rec.distinct() == 1 })
	if n := rec.total(); n != 1 {
		t.Errorf("handler ran %d times; the malformed message must never reach it", n)
	}
	if s := c.c.Stats(); s.Malformed != 1 {
		t.Errorf("Stats().Malformed = %d, want 1", s.Malformed)
	}
}

func testMaxAttempts(t *testing.T, e *env) {
	e.provision(t, false, "c")
	var runs atomic.Int32
	e.start(t, "c", func(ctx context.Context, m *herald.Message) error {
		n := runs.Add(1)
		return fmt.Errorf("warehouse down (run %d)", n)
	}, e.options(nil))
	e.publish(t, e.publisher(t), messages(1, "poison")...)
	l := e.deadLetters(t, "c", 1)[0]
	if l.dl.Reason != providers.ReasonMaxAttempts || l.dl.Attempts != 3 || l.dl.Consumer != "c" {
		t.Errorf("dead letter %+v, want reason %q after 3 attempts by c", l.dl, providers.ReasonMaxAttempts)
	}
	if !strings.Contains(l.dl.Error, "warehouse down (run 3)") {
		t.Errorf("dead letter error %q, want the last error", l.dl.Error)
	}
	if l.msg == nil || l.msg.ID != "poison-0" || string(l.msg.Data) != `{"order":0}` {
		t.Errorf("dead letter message %+v, want poison-0 with its payload", l.msg)
	}
	settle(e.cfg.Lease)
	if n := runs.Load(); n != 3 {
		t.Errorf("handler ran %d times, want 3 (MaxAttempts)", n)
	}
}

func testPermanent(t *testing.T, e *env) {
	e.provision(t, false, "c")
	var runs atomic.Int32
	e.start(t, "c", func(ctx context.Context, m *herald.Message) error {
		runs.Add(1)
		return herald.Permanent(errors.New("order has no lines"))
	}, e.options(nil))
	e.publish(t, e.publisher(t), messages(1, "bad")...)
	l := e.deadLetters(t, "c", 1)[0]
	if l.dl.Reason != providers.ReasonPermanent || l.dl.Attempts != 1 {
		t.Errorf("dead letter %+v, want reason %q on attempt 1", l.dl, providers.ReasonPermanent)
	}
	if !strings.Contains(l.dl.Error, "order has no lines") {
		t.Errorf("dead letter error %q, want the handler's error", l.dl.Error)
	}
	settle(e.cfg.Lease)
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times for a permanent error, want 1", n)
	}
}

func testOrdering(t *testing.T, e *env) {
	e.provision(t, true, "c")
	var mu sync.Mutex
	seen := map[string][]int{}
	busy := map[string]*atomic.Bool{"k1": {}, "k2": {}}
	var overlaps atomic.Int32
	e.start(t, "c", func(ctx context.Context, m *herald.Message) error {
		b := busy[m.OrderingKey]
		if b == nil || !b.CompareAndSwap(false, true) {
			overlaps.Add(1) // two messages of one key at once
			return nil
		}
		defer b.Store(false)
		var seq int
		_, _ = fmt.Sscanf(m.Subject, "%d", &seq)
		mu.Lock()
		seen[m.OrderingKey] = append(seen[m.OrderingKey], seq)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		return nil
	}, e.options(nil))
	pub := e.publisher(t)
	const n = 15
	for i := range n {
		for _, k := range []string{"k1", "k2"} {
			e.publish(t, pub, &herald.Message{
				ID: fmt.Sprintf("%s-%d", k, i), Type: "Step", OrderingKey: k,
				Subject: fmt.Sprint(i), Data: []byte(fmt.Sprint(i)),
			})
		}
	}
	e.eventually(t, "both keys handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen["k1"]) >= n && len(seen["k2"]) >= n
	})
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d handler runs overlapped another of the same ordering key", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"k1", "k2"} {
		if !slices.IsSorted(seen[k]) || len(seen[k]) != n {
			t.Errorf("key %s handled in order %v, want 0..%d once each", k, seen[k], n-1)
		}
	}
}

func testShutdownDrains(t *testing.T, e *env) {
	e.provision(t, false, "c")
	store := idempotency.NewMemory()
	rec := newRecorder()
	var started atomic.Int32
	slow := func(ctx context.Context, m *herald.Message) error {
		started.Add(1)
		time.Sleep(30 * time.Millisecond) // ignores ctx: must be let finish
		rec.record(m)
		return nil
	}
	first := e.start(t, "c", slow, e.options(store))
	const n = 40
	e.publish(t, e.publisher(t), messages(n, "d")...)
	e.eventually(t, "handlers to start", func() bool { return started.Load() >= 4 })
	first.stop(t) // drains: running handlers finish, the rest goes back

	second := e.start(t, "c", rec.handler(), e.options(store))
	e.eventually(t, "every message handled", func() bool { return rec.distinct() == n })
	settle(e.cfg.Lease)
	second.stop(t)
	for i := range n {
		if c := rec.count(fmt.Sprintf("d-%d", i)); c != 1 {
			t.Errorf("d-%d handled %d times across the shutdown, want 1", i, c)
		}
	}
}

func testUnknown(t *testing.T, e *env) {
	e.provision(t, false, "c")
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	_, err := e.client.Publisher(ctx, e.topic+"-missing", nil)
	if !errors.Is(err, herald.ErrNotFound) || !strings.Contains(err.Error(), e.topic+"-missing") {
		t.Errorf("publisher for a missing topic: %v, want ErrNotFound naming it", err)
	}
	c, err := e.client.Consumer(e.topic, "nobody", func(context.Context, *herald.Message) error { return nil }, e.options(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(ctx)
	if !errors.Is(err, herald.ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("Run of a missing consumer: %v, want ErrNotFound naming it", err)
	}
}

// testRedrive: a poison message dead-lettered by one consumer, once fixed
// and redriven, is handled exactly once by that consumer, while the
// topic's other consumer sees nothing new.
func testRedrive(t *testing.T, e *env) {
	e.provision(t, false, "email", "warehouse")
	var broken atomic.Bool
	broken.Store(true)
	email, warehouse := newRecorder(), newRecorder()
	e.start(t, "email", func(ctx context.Context, m *herald.Message) error {
		if broken.Load() {
			return herald.Permanent(errors.New("template missing"))
		}
		email.record(m)
		return nil
	}, e.options(nil))
	e.start(t, "warehouse", warehouse.handler(), e.options(nil))
	e.publish(t, e.publisher(t), messages(1, "p")...)
	e.deadLetters(t, "email", 1)
	e.eventually(t, "warehouse to handle it", func() bool { return warehouse.distinct() == 1 })

	broken.Store(false)
	moved := redriveAll(t, e, "email")
	if moved != 1 {
		t.Fatalf("redrive moved %d letters, want 1", moved)
	}
	e.eventually(t, "email to handle the redriven message", func() bool { return email.distinct() == 1 })
	settle(2 * e.cfg.Lease)
	email.mu.Lock()
	if len(email.msgs) != 1 || email.msgs[0].Attempt != 1 || email.msgs[0].ID != "p-0" {
		t.Errorf("email handled %d redriven messages (first %+v), want p-0 once at attempt 1",
			len(email.msgs), email.msgs)
	}
	email.mu.Unlock()
	if n := warehouse.total(); n != 1 {
		t.Errorf("warehouse ran %d times; the redrive must reach only email", n)
	}
	src := e.p.(providers.DeadLetterSource)
	q, err := src.OpenDeadLetters(context.Background(), e.topic, "email")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	e.eventually(t, "the dead-letter queue to be empty", func() bool {
		n, err := q.Count(context.Background())
		return err == nil && n == 0
	})
}

// redriveAll moves every letter of the consumer back with package dlq.
func redriveAll(t *testing.T, e *env, consumer string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	r, err := dlq.Redrive(ctx, e.p, e.topic, consumer, dlq.RedriveOptions{})
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	if r.Failed != 0 {
		t.Fatalf("redrive failed for %d letters: %+v", r.Failed, r.Failures)
	}
	return r.Moved
}
