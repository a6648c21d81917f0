package snssqs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/seed06bc8277/herald/providers"
)

func publish(t testing.TB, p *Provider, topic string, msgs ...*providers.Message) {
	t.Helper()
	if err := openTopic(t, p, topic).SendBatch(context.Background(), msgs); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
}

func TestNackRedeliversAsNextAttempt(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, false, "c")
	publish(t, p, top.Topic, &providers.Message{Body: []byte("again")})
	s := openSub(t, p, top.Topic, "c", 30*time.Second)
	ctx := context.Background()

	d := receiveN(t, s, 1)[0]
	if err := s.Nack(ctx, d, 0); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	d2 := receiveN(t, s, 1)[0]
	if d2.Attempt != 2 || string(d2.Body) != "again" {
		t.Fatalf("after Nack(0): attempt %d body %q, want 2 and the same body", d2.Attempt, d2.Body)
	}
	// A nack settles: the old delivery can no longer be acked.
	if err := s.Ack(ctx, d); !errors.Is(err, providers.ErrLeaseLost) {
		t.Errorf("Ack after Nack: %v, want ErrLeaseLost", err)
	}

	// A delay keeps it away that long.
	start := time.Now()
	if err := s.Nack(ctx, d2, 2*time.Second); err != nil {
		t.Fatalf("Nack(2s): %v", err)
	}
	d3 := receiveN(t, s, 1)[0]
	if waited := time.Since(start); waited < 1900*time.Millisecond || d3.Attempt != 3 {
		t.Errorf("after Nack(2s): back after %v with attempt %d, want >= 2s and 3", waited, d3.Attempt)
	}
	if err := s.Ack(ctx, d3); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

func TestSettlingAfterTheLeaseIsLeaseLost(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, false, "c")
	publish(t, p, top.Topic, &providers.Message{Body: []byte("slow")})
	s := openSub(t, p, top.Topic, "c", time.Second)
	ctx := context.Background()

	d := receiveN(t, s, 1)[0]
	if left := time.Until(d.LeaseUntil); left > time.Second || left < 500*time.Millisecond {
		t.Fatalf("LeaseUntil is %v away, want about the 1 s lease", left)
	}
	for time.Now().Before(d.LeaseUntil) {
		time.Sleep(50 * time.Millisecond)
	}
	for name, settle := range map[string]func() error{
		"Ack":        func() error { return s.Ack(ctx, d) },
		"Nack":       func() error { return s.Nack(ctx, d, 0) },
		"Extend":     func() error { return s.Extend(ctx, d, time.Minute) },
		"DeadLetter": func() error { return s.DeadLetter(ctx, d, providers.DeadLetter{Reason: "x"}) },
	} {
		if err := settle(); !errors.Is(err, providers.ErrLeaseLost) {
			t.Errorf("%s after the lease: %v, want ErrLeaseLost", name, err)
		}
	}
	// The refused ack removed nothing: the message comes back.
	d2 := receiveN(t, s, 1)[0]
	if d2.Attempt != 2 {
		t.Errorf("redelivery attempt = %d, want 2", d2.Attempt)
	}
	if err := s.Ack(ctx, d2); err != nil {
		t.Fatal(err)
	}
}

func TestExtendKeepsTheMessage(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, false, "c")
	publish(t, p, top.Topic, &providers.Message{Body: []byte("long")})
	s := openSub(t, p, top.Topic, "c", time.Second)
	ctx := context.Background()

	d := receiveN(t, s, 1)[0]
	before := d.LeaseUntil
	if err := s.Extend(ctx, d, 4*time.Second); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	if d.LeaseUntil.Sub(before) < 2*time.Second {
		t.Fatalf("LeaseUntil moved from %v to %v, want about 3 s later", before, d.LeaseUntil)
	}
	// Past the first lease the message stays hidden, and the ack works.
	expectNone(t, s, 2500*time.Millisecond)
	if err := s.Ack(ctx, d); err != nil {
		t.Fatalf("Ack within the extended lease: %v", err)
	}
	expectNone(t, s, 3*time.Second)
}

func TestDeadLetterAndRedrive(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprint("ordered=", ordered), func(t *testing.T) {
			p := newProvider(t)
			top := provision(t, p, ordered, "c")
			attrs := tenAttrs() // the reason must still fit
			m := &providers.Message{ID: "dl-1", Body: []byte{0xff, 'x'}, Attributes: attrs}
			if ordered {
				m.OrderingKey = "key-1"
			}
			publish(t, p, top.Topic, m)
			s := openSub(t, p, top.Topic, "c", 30*time.Second)
			ctx := context.Background()

			d := receiveN(t, s, 1)[0]
			dl := providers.DeadLetter{Reason: providers.ReasonMaxAttempts, Error: "boom",
				Attempts: d.Attempt, Consumer: "c", Time: time.Now()}
			if err := s.DeadLetter(ctx, d, dl); err != nil {
				t.Fatalf("DeadLetter: %v", err)
			}
			expectNone(t, s, 1500*time.Millisecond) // the original is gone

			q, err := p.OpenDeadLetters(ctx, top.Topic, "c")
			if err != nil {
				t.Fatalf("OpenDeadLetters: %v", err)
			}
			defer q.Close()
			if n, err := q.Count(ctx); err != nil || n != 1 {
				t.Errorf("Count = %d, %v; want 1", n, err)
			}
			letters, err := q.ReceiveBatch(ctx, 10)
			if err != nil || len(letters) != 1 {
				t.Fatalf("dead letters: %d, %v; want 1", len(letters), err)
			}
			l := letters[0]
			got, ok := providers.ParseDeadLetter(l.Attributes)
			if !ok || got.Reason != dl.Reason || got.Error != "boom" || got.Consumer != "c" {
				t.Errorf("dead letter reason = %+v (%v), want %+v", got, ok, dl)
			}
			if string(l.Body) != string(m.Body) {
				t.Errorf("dead letter body %q, want %q", l.Body, m.Body)
			}
			for k, v := range attrs {
				if l.Attributes[k] != v {
					t.Errorf("dead letter lost attribute %s=%s: %v", k, v, l.Attributes)
				}
			}

			// Redrive: back to the consumer as a new message, attempt 1.
			back := &providers.Message{ID: m.ID, Body: l.Body, OrderingKey: m.OrderingKey,
				Attributes: providers.StripDeadLetter(l.Attributes)}
			if err := q.Redrive(ctx, []*providers.Message{back}); err != nil {
				t.Fatalf("Redrive: %v", err)
			}
			if err := q.Ack(ctx, l); err != nil {
				t.Fatalf("Ack of the letter: %v", err)
			}
			d2 := receiveN(t, s, 1)[0]
			if d2.Attempt != 1 || string(d2.Body) != string(m.Body) || len(d2.Attributes) != len(attrs) {
				t.Errorf("redriven: attempt %d body %q attributes %v", d2.Attempt, d2.Body, d2.Attributes)
			}
			if ordered && d2.OrderingKey != "key-1" {
				t.Errorf("redriven ordering key %q, want key-1", d2.OrderingKey)
			}
			if none, err := q.ReceiveBatch(ctx, 10); err != nil || len(none) != 0 {
				t.Errorf("dead-letter queue after ack: %d letters, %v", len(none), err)
			}
		})
	}
}

// countingTransport counts requests by their SQS or SNS action.
type countingTransport struct {
	mu     sync.Mutex
	counts map[string]int
	next   http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.counts[r.Header.Get("X-Amz-Target")]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *countingTransport) count(action string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[action]
}

func TestConcurrentAcksAreBatched(t *testing.T) {
	newProvider(t) // skips without the local cloud
	ct := &countingTransport{counts: map[string]int{},
		next: http.DefaultTransport.(*http.Transport).Clone()}
	cfg := aws.Config{
		HTTPClient:  &http.Client{Transport: ct},
		Credentials: aws.NewCredentialsCache(staticCreds{}),
	}
	p, err := New(context.Background(),
		Options{Region: cloud.Region, Endpoint: cloud.Endpoint, Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer ct.next.(*http.Transport).CloseIdleConnections()

	top := provision(t, p, false, "c")
	var msgs []*providers.Message
	for i := range 50 {
		msgs = append(msgs, &providers.Message{Body: []byte(fmt.Sprint(i))})
	}
	publish(t, p, top.Topic, msgs...)
	s := openSub(t, p, top.Topic, "c", 30*time.Second)
	ds := receiveN(t, s, len(msgs))

	var wg sync.WaitGroup
	var failed atomic.Int32
	for _, d := range ds {
		wg.Go(func() {
			if err := s.Ack(context.Background(), d); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d acks failed", failed.Load())
	}
	t.Logf("DeleteMessageBatch requests for 50 acks: %d", ct.count("AmazonSQS.DeleteMessageBatch"))
	// 50 acks at once leave in batches: 5 requests at best, never 50.
	if n := ct.count("AmazonSQS.DeleteMessageBatch"); n > 15 || n < 5 {
		t.Errorf("50 concurrent acks took %d DeleteMessageBatch requests, want 5 to 15", n)
	}
	if n := ct.count("AmazonSQS.DeleteMessage"); n != 0 {
		t.Errorf("%d single DeleteMessage requests, want none", n)
	}
	expectNone(t, s, 1500*time.Millisecond)
}

type staticCreds struct{}

func (staticCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test", Source: "test"}, nil
}
