package servicebus_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

func TestTooLargeFailsAloneNamingTopicAndLimit(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"}})
	batch := msgs("m", 3)
	batch[1].Body = bytes.Repeat([]byte("x"), servicebus.DefaultMaxMessageBytes+1)

	err := tp.SendBatch(ctxFor(t, 10*time.Second), batch)
	var be *providers.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[1] == nil {
		t.Fatalf("SendBatch: %v, want a BatchError failing only #1", err)
	}
	if !errors.Is(err, providers.ErrTooLarge) || !strings.Contains(err.Error(), topic) ||
		!strings.Contains(err.Error(), "262144") {
		t.Errorf("error %q: want ErrTooLarge naming %s and the limit 262144", err, topic)
	}
	s := open(t, p, topic, "c")
	got := map[string]bool{}
	for _, d := range receiveN(t, s, 2) {
		got[d.ID] = true
	}
	if !got["m-0"] || !got["m-2"] {
		t.Errorf("received %v, want m-0 and m-2", got)
	}

	// A message alone over the limit: the plain error.
	err = tp.SendBatch(ctxFor(t, 10*time.Second), batch[1:2])
	if !errors.Is(err, providers.ErrTooLarge) || errors.As(err, &be) {
		t.Errorf("one message too large: %v, want ErrTooLarge and no BatchError", err)
	}
}

func TestBatchesSplitBySize(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"}})
	// 12 messages of 60 KiB: about 720 KiB, at least three batches.
	batch := msgs("big", 12)
	for _, m := range batch {
		m.Body = append(bytes.Repeat([]byte("y"), 60<<10), m.ID...)
	}
	if err := tp.SendBatch(ctxFor(t, 20*time.Second), batch); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	s := open(t, p, topic, "c")
	for _, d := range receiveN(t, s, 12) {
		if !bytes.HasSuffix(d.Body, []byte(d.ID)) || len(d.Body) != 60<<10+len(d.ID) {
			t.Errorf("%s: body of %d bytes does not match", d.ID, len(d.Body))
		}
	}
}

func TestLostLockIsLeaseLostNeverSuccess(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"},
		Lease: time.Second})
	if err := tp.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "c")
	d := receiveN(t, s, 1)[0]
	if until := time.Until(d.LeaseUntil); until <= 0 || until > 2*time.Second {
		t.Errorf("LeaseUntil in %v, want about the 1 s lock", until)
	}
	// The handler outlives the lock.
	time.Sleep(time.Until(d.LeaseUntil) + 300*time.Millisecond)
	ctx := ctxFor(t, 10*time.Second)
	if err := s.Extend(ctx, d, time.Second); !errors.Is(err, providers.ErrLeaseLost) {
		t.Errorf("Extend after the lock ended: %v, want ErrLeaseLost", err)
	}
	if err := s.Ack(ctx, d); !errors.Is(err, providers.ErrLeaseLost) {
		t.Errorf("Ack after the lock ended: %v, want ErrLeaseLost", err)
	}
	// The message comes back: the late ack did nothing.
	d2 := receiveN(t, s, 1)[0]
	if d2.ID != d.ID || d2.Attempt != 2 {
		t.Errorf("redelivered %s attempt %d, want %s attempt 2", d2.ID, d2.Attempt, d.ID)
	}
	err := s.DeadLetter(ctx, d, providers.DeadLetter{Reason: "x"})
	if !errors.Is(err, providers.ErrLeaseLost) {
		t.Errorf("DeadLetter with the old delivery: %v, want ErrLeaseLost", err)
	}

	// A second settlement of one delivery is never a second success.
	if err := s.Ack(ctx, d2); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	for name, settle := range map[string]func() error{
		"Ack":        func() error { return s.Ack(ctx, d2) },
		"Nack":       func() error { return s.Nack(ctx, d2, 0) },
		"Nack(1s)":   func() error { return s.Nack(ctx, d2, time.Second) },
		"DeadLetter": func() error { return s.DeadLetter(ctx, d2, providers.DeadLetter{}) },
		"Extend":     func() error { return s.Extend(ctx, d2, time.Second) },
	} {
		if err := settle(); !errors.Is(err, providers.ErrLeaseLost) {
			t.Errorf("%s after Ack: %v, want ErrLeaseLost", name, err)
		}
	}
	receiveNone(t, s, 1500*time.Millisecond)
}

func TestExtendRenewsTheLock(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"},
		Lease: time.Second})
	if err := tp.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "c")
	d := receiveN(t, s, 1)[0]
	ctx := ctxFor(t, 10*time.Second)
	for range 4 { // 2 s in all, twice the lock
		time.Sleep(500 * time.Millisecond)
		before := d.LeaseUntil
		if err := s.Extend(ctx, d, time.Second); err != nil {
			t.Fatalf("Extend: %v", err)
		}
		if !d.LeaseUntil.After(before) {
			t.Fatalf("LeaseUntil %v not after %v", d.LeaseUntil, before)
		}
	}
	if err := s.Ack(ctx, d); err != nil {
		t.Fatalf("Ack after extending past the first lock: %v", err)
	}
}

func TestNackWithDelayComesBackLaterToThisConsumerOnly(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a", "b"}})
	m := msgs("m", 1)
	m[0].Attributes["color"] = "red"
	m[0].OrderingKey = "k1"
	if err := tp.SendBatch(ctxFor(t, 10*time.Second), m); err != nil {
		t.Fatal(err)
	}
	a, b := open(t, p, topic, "a"), open(t, p, topic, "b")
	if err := b.Ack(ctxFor(t, 5*time.Second), receiveN(t, b, 1)[0]); err != nil {
		t.Fatal(err)
	}

	d := receiveN(t, a, 1)[0]
	if d.OrderingKey != "k1" {
		t.Errorf("ordering key %q, want k1", d.OrderingKey)
	}
	const delay = 1500 * time.Millisecond
	start := time.Now()
	if err := a.Nack(ctxFor(t, 5*time.Second), d, delay); err != nil {
		t.Fatalf("Nack: %v", err)
	}
	d2 := receiveN(t, a, 1)[0]
	if waited := time.Since(start); waited < delay-100*time.Millisecond {
		t.Errorf("came back after %v, want about %v", waited, delay)
	}
	if d2.ID != "m-0" || d2.Attempt != 2 || d2.Attributes["color"] != "red" ||
		d2.OrderingKey != "k1" || string(d2.Body) != "m-0" {
		t.Errorf("delayed copy %+v attempt %d, want m-0 attempt 2 with its attributes",
			d2.Message, d2.Attempt)
	}
	if _, has := d2.Attributes[servicebus.AttrAttempts]; has {
		t.Errorf("delivery shows %s", servicebus.AttrAttempts)
	}
	// A second delayed nack carries the count on.
	if err := a.Nack(ctxFor(t, 5*time.Second), d2, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d3 := receiveN(t, a, 1)[0]; d3.Attempt != 3 {
		t.Errorf("attempt %d after two delayed nacks, want 3", d3.Attempt)
	}
	receiveNone(t, b, time.Second) // b never sees the copies
}

func TestNackAtOnceIsAbandon(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"}})
	if err := tp.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "c")
	d := receiveN(t, s, 1)[0]
	if err := s.Nack(ctxFor(t, 5*time.Second), d, 0); err != nil {
		t.Fatal(err)
	}
	d2 := receiveN(t, s, 1)[0]
	if d2.ProviderID != d.ProviderID || d2.Attempt != 2 {
		t.Errorf("got %s attempt %d, want the same message (%s) at attempt 2",
			d2.ProviderID, d2.Attempt, d.ProviderID)
	}
}

func TestDeadLetterIsNativeWithHeraldAttributes(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"}})
	if err := tp.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "c")
	d := receiveN(t, s, 1)[0]
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	dl := providers.DeadLetter{Reason: providers.ReasonPermanent, Error: "order has no lines",
		Attempts: 1, Consumer: "c", Time: at}
	if err := s.DeadLetter(ctxFor(t, 5*time.Second), d, dl); err != nil {
		t.Fatal(err)
	}

	// Read natively: Service Bus's own reason and description are set.
	c, err := azservicebus.NewClientFromConnectionString(local(t).ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	r, err := c.NewReceiverForSubscription(topic, "c",
		&azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	peeked, err := r.PeekMessages(ctxFor(t, 10*time.Second), 1, nil)
	if err != nil || len(peeked) != 1 {
		t.Fatalf("peek dead letter: %d, %v", len(peeked), err)
	}
	letter := peeked[0]
	if letter.DeadLetterReason == nil || *letter.DeadLetterReason != providers.ReasonPermanent ||
		letter.DeadLetterErrorDescription == nil ||
		*letter.DeadLetterErrorDescription != "order has no lines" {
		t.Errorf("native reason %v description %v", letter.DeadLetterReason,
			letter.DeadLetterErrorDescription)
	}

	// Read through herald: the same reason, in herald's attributes.
	q, err := p.OpenDeadLetters(ctxFor(t, 10*time.Second), topic, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got := receiveN(t, q, 1)[0]
	parsed, ok := providers.ParseDeadLetter(got.Attributes)
	if !ok || parsed.Reason != dl.Reason || parsed.Error != dl.Error || parsed.Attempts != 1 ||
		parsed.Consumer != "c" || !parsed.Time.Equal(at) || got.ID != "m-0" {
		t.Errorf("dead letter %+v (ok %v) id %s, want %+v of m-0", parsed, ok, got.ID, dl)
	}
	if n, err := q.Count(ctxFor(t, 5*time.Second)); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

func TestUnknownEntitiesAreNotFoundByName(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"}})
	ctx := ctxFor(t, 20*time.Second)
	opts := providers.SubscriptionOptions{}

	_, err := p.OpenTopic(ctx, topic+"-nope")
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), topic+"-nope") {
		t.Errorf("OpenTopic of a missing topic: %v", err)
	}
	_, err = p.OpenSubscription(ctx, topic, "nobody", opts)
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("OpenSubscription of a missing subscription: %v", err)
	}
	_, err = p.OpenSubscription(ctx, topic+"-nope", "c", opts)
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), topic+"-nope") {
		t.Errorf("OpenSubscription of a missing topic: %v", err)
	}
	_, err = p.OpenDeadLetters(ctx, topic, "nobody")
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("OpenDeadLetters of a missing subscription: %v", err)
	}
}

func TestProvisionIsIdempotentAndChecksNames(t *testing.T) {
	p := newProvider(t)
	top := providers.Topology{Topic: topicName(t), Consumers: []string{"a", "b"}}
	for range 2 {
		if err := p.Provision(ctxFor(t, 10*time.Second), top); err != nil {
			t.Fatalf("Provision: %v", err)
		}
	}
	long := providers.Topology{Topic: top.Topic, Consumers: []string{strings.Repeat("c", 51)}}
	if err := p.Provision(ctxFor(t, 10*time.Second), long); !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("a 51-character consumer: %v, want ErrInvalid", err)
	}
}

func TestDelayedNackAfterLostLockLeavesNoCopy(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"},
		Lease: time.Second})
	if err := tp.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "c")
	d := receiveN(t, s, 1)[0]
	time.Sleep(time.Until(d.LeaseUntil) + 300*time.Millisecond)
	err := s.Nack(ctxFor(t, 5*time.Second), d, 200*time.Millisecond)
	if !errors.Is(err, providers.ErrLeaseLost) {
		t.Fatalf("delayed Nack after the lock ended: %v, want ErrLeaseLost", err)
	}
	// The original comes back (attempt 2); the scheduled copy was cancelled.
	d2 := receiveN(t, s, 1)[0]
	if d2.ProviderID != d.ProviderID || d2.Attempt != 2 {
		t.Errorf("got %s attempt %d, want the original %s at attempt 2",
			d2.ProviderID, d2.Attempt, d.ProviderID)
	}
	if err := s.Ack(ctxFor(t, 5*time.Second), d2); err != nil {
		t.Fatal(err)
	}
	receiveNone(t, s, time.Second)
}

// TestServiceLimitBelowOptionsIsTooLarge: with MaxMessageBytes above what
// the entity takes (the emulator's 1 MiB), the service's refusal is
// ErrTooLarge too.
func TestServiceLimitBelowOptionsIsTooLarge(t *testing.T) {
	o := local(t).Options()
	o.MaxMessageBytes = 4 << 20
	p, err := servicebus.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"}})
	m := msgs("m", 1)
	m[0].Body = bytes.Repeat([]byte("x"), 3<<19) // 1.5 MiB
	err = tp.SendBatch(ctxFor(t, 10*time.Second), m)
	if !errors.Is(err, providers.ErrTooLarge) || !strings.Contains(err.Error(), topic) {
		t.Errorf("1.5 MiB to a 1 MiB entity: %v, want ErrTooLarge naming %s", err, topic)
	}
}

func TestClosedProviderIsErrClosed(t *testing.T) {
	p := newProvider(t)
	topic := topicName(t)
	tp := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"c"}})
	s := open(t, p, topic, "c")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReceiveBatch(ctxFor(t, 10*time.Second), 1); !errors.Is(err, providers.ErrClosed) {
		t.Errorf("ReceiveBatch after Close: %v, want ErrClosed", err)
	}
	err := tp.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1))
	if !errors.Is(err, providers.ErrClosed) {
		t.Errorf("SendBatch after Close: %v, want ErrClosed", err)
	}
	if _, err := p.OpenTopic(ctxFor(t, 10*time.Second), topic); !errors.Is(err, providers.ErrClosed) {
		t.Errorf("OpenTopic after Close: %v, want ErrClosed", err)
	}
}
