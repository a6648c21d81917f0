package dlq_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const topic = "orders"

// env is a mem:// provider with topic "orders" and consumers "email" and
// "warehouse".
type env struct {
	p      *memory.Provider
	client *herald.Client
	pub    *herald.Publisher
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	p := memory.New()
	c := herald.NewClient(p)
	t.Cleanup(func() { c.Close() })
	err := c.Provision(ctx, providers.Topology{Topic: topic,
		Consumers: []string{"email", "warehouse"}})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := c.Publisher(ctx, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return &env{p: p, client: c, pub: pub}
}

// letter is a dead letter to make.
type letter struct {
	id, typ, reason string
	at              time.Time // zero: now
	raw             []byte    // a body that is not an envelope, sent as is
}

// deadLetter publishes the messages and dead-letters them from the
// consumer's queue with their reasons. The other consumer's queue gets
// its copies, which drain removes.
func (e *env) deadLetter(t testing.TB, consumer string, ls ...letter) {
	t.Helper()
	ctx := context.Background()
	var msgs []*herald.Message
	var raw []*providers.Message
	for _, l := range ls {
		if l.raw != nil {
			raw = append(raw, &providers.Message{ID: l.id, Body: l.raw})
			continue
		}
		msgs = append(msgs, &herald.Message{ID: l.id, Type: l.typ,
			Data: []byte("data of " + l.id), Attributes: map[string]string{"tenant": "t1"}})
	}
	for len(msgs) > 0 {
		n := min(len(msgs), 500)
		if err := e.pub.Publish(ctx, msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
	if len(raw) > 0 {
		tp, err := e.p.OpenTopic(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.SendBatch(ctx, raw); err != nil {
			t.Fatal(err)
		}
		tp.Close()
	}

	byID := map[string]letter{}
	for _, l := range ls {
		byID[l.id] = l
	}
	sub, err := e.p.OpenSubscription(ctx, topic, consumer, providers.SubscriptionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for got := 0; got < len(ls); {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ds, err := sub.ReceiveBatch(rctx, 1000)
		cancel()
		if err != nil {
			t.Fatalf("receive to dead-letter (%d of %d): %v", got, len(ls), err)
		}
		for _, d := range ds {
			l := byID[d.ID]
			reason := providers.DeadLetter{Reason: l.reason, Error: "boom " + l.id, Time: l.at}
			if err := sub.DeadLetter(ctx, d, reason); err != nil {
				t.Fatal(err)
			}
			got++
		}
	}
}

// drain removes and returns what the consumer's queue holds now.
func (e *env) drain(t testing.TB, consumer string) []*providers.Delivery {
	t.Helper()
	ctx := context.Background()
	sub, err := e.p.OpenSubscription(ctx, topic, consumer, providers.SubscriptionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var out []*providers.Delivery
	for {
		st, err := e.p.Stats(topic, consumer)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready == 0 {
			return out
		}
		ds, err := sub.ReceiveBatch(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if err := sub.Ack(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, ds...)
	}
}

func letters(prefix, typ, reason string, n int) []letter {
	out := make([]letter, n)
	for i := range out {
		out[i] = letter{id: fmt.Sprintf("%s-%d", prefix, i), typ: typ, reason: reason}
	}
	return out
}

// count returns the dead-letter queue's count.
func (e *env) count(t testing.TB, consumer string) int {
	t.Helper()
	src := providers.DeadLetterSource(e.p)
	q, err := src.OpenDeadLetters(context.Background(), topic, consumer)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n, err := q.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// recorder counts handler runs per message ID.
type recorder struct {
	mu   sync.Mutex
	runs map[string]int
}

func newRecorder() *recorder { return &recorder{runs: map[string]int{}} }

func (r *recorder) handle(_ context.Context, m *herald.Message) error {
	r.mu.Lock()
	r.runs[m.ID]++
	r.mu.Unlock()
	return nil
}

func (r *recorder) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.runs))
	for k, v := range r.runs {
		out[k] = v
	}
	return out
}

// run starts a herald consumer until the test ends.
func (e *env) run(t testing.TB, consumer string, h herald.Handler) *herald.Consumer {
	t.Helper()
	c, err := e.client.Consumer(topic, consumer, h, &herald.ConsumerOptions{
		Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer %s: %v", consumer, err)
		}
	})
	return c
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
