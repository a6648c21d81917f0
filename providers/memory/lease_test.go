package memory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

func TestLeaseExpiryRedeliversWithNextAttempt(t *testing.T) {
	p, tp := setup(t, "a")
	s := subscribe(t, p, "a", 50*time.Millisecond)
	send(t, tp, msg("1"))
	before := time.Now()
	first := receive(t, s, 10)
	after := time.Now()
	if len(first) != 1 || first[0].Attempt != 1 {
		t.Fatalf("first receive: %+v", first)
	}
	until := first[0].LeaseUntil
	if until.Before(before.Add(50*time.Millisecond)) || until.After(after.Add(50*time.Millisecond)) {
		t.Fatalf("LeaseUntil is %v after the receive started, want 50ms", until.Sub(before))
	}

	start := time.Now()
	second := receive(t, s, 10)
	if len(second) != 1 || second[0].Attempt != 2 || second[0].ID != "1" ||
		second[0].ProviderID != first[0].ProviderID {
		t.Fatalf("redelivery: %+v", second)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("redelivery took %v", waited)
	}
	err := s.Ack(context.Background(), first[0])
	if !errors.Is(err, providers.ErrLeaseLost) {
		t.Fatalf("ack with the expired handle: %v, want ErrLeaseLost", err)
	}
	if err := s.Ack(context.Background(), second[0]); err != nil {
		t.Fatal(err)
	}
}

func TestStaleHandlesAreFenced(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	s := subscribe(t, p, "a", 30*time.Millisecond)
	dl := providers.DeadLetter{Reason: providers.ReasonPermanent}
	settle := map[string]func(*providers.Delivery) error{
		"ack":         func(d *providers.Delivery) error { return s.Ack(ctx, d) },
		"nack":        func(d *providers.Delivery) error { return s.Nack(ctx, d, 0) },
		"extend":      func(d *providers.Delivery) error { return s.Extend(ctx, d, time.Minute) },
		"dead-letter": func(d *providers.Delivery) error { return s.DeadLetter(ctx, d, dl) },
	}

	// Expired but not yet redelivered: nobody received it again.
	for name, fn := range settle {
		send(t, tp, msg(name))
		d := receive(t, s, 1)[0]
		for time.Now().Before(d.LeaseUntil.Add(5 * time.Millisecond)) {
			time.Sleep(5 * time.Millisecond)
		}
		if err := fn(d); !errors.Is(err, providers.ErrLeaseLost) {
			t.Fatalf("%s after the lease: %v, want ErrLeaseLost", name, err)
		}
		again := receive(t, s, 1)[0]
		if again.ID != name || again.Attempt != 2 {
			t.Fatalf("%s: redelivery %+v", name, again)
		}
		if err := s.Ack(ctx, again); err != nil {
			t.Fatal(err)
		}
	}

	// Settled already: every later settlement is fenced.
	s = subscribe(t, p, "a", time.Minute)
	for name, fn := range settle {
		send(t, tp, msg(name))
		d := receive(t, s, 1)[0]
		if err := s.Nack(ctx, d, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := fn(d); !errors.Is(err, providers.ErrLeaseLost) {
			t.Fatalf("%s after nack: %v, want ErrLeaseLost", name, err)
		}
	}

	// A handle of another queue is invalid.
	if err := s.Ack(ctx, &providers.Delivery{}); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("ack of a foreign delivery: %v", err)
	}
}

func TestNackDelayIsRespected(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	s := subscribe(t, p, "a", time.Minute)
	send(t, tp, msg("1"))
	d := receive(t, s, 1)[0]

	const delay = 300 * time.Millisecond
	start := time.Now()
	if err := s.Nack(ctx, d, delay); err != nil {
		t.Fatal(err)
	}
	st, _ := p.Stats("orders", "a")
	if st.Delayed != 1 || st.Leased != 0 || st.Ready != 0 {
		t.Fatalf("stats after nack: %+v", st)
	}
	again := receive(t, s, 1)[0]
	if waited := time.Since(start); waited < delay {
		t.Fatalf("visible again after %v, before the %v delay", waited, delay)
	}
	if again.Attempt != 2 {
		t.Fatalf("attempt %d, want 2", again.Attempt)
	}

	// Nack without delay: visible at once.
	if err := s.Nack(ctx, again, 0); err != nil {
		t.Fatal(err)
	}
	if third := receive(t, s, 1)[0]; third.Attempt != 3 {
		t.Fatalf("attempt %d, want 3", third.Attempt)
	}
}

func TestExtendKeepsTheLease(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	s := subscribe(t, p, "a", 500*time.Millisecond)
	send(t, tp, msg("1"))
	d := receive(t, s, 1)[0]
	old := d.LeaseUntil
	if err := s.Extend(ctx, d, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !d.LeaseUntil.After(old.Add(30 * time.Second)) {
		t.Fatalf("LeaseUntil %v not moved from %v", d.LeaseUntil, old)
	}
	none(t, s, 700*time.Millisecond)
	if err := s.Ack(ctx, d); err != nil {
		t.Fatalf("ack after the first lease's end, within the extension: %v", err)
	}
}

func TestReceiveBatchEndsWithContext(t *testing.T) {
	p, _ := setup(t, "a")
	s := subscribe(t, p, "a", time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ReceiveBatch(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	none(t, s, 20*time.Millisecond)
}
