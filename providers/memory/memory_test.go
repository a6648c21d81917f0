package memory

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/providers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// setup provisions topic "orders" with the consumers on a new provider.
func setup(t testing.TB, consumers ...string) (*Provider, providers.Topic) {
	t.Helper()
	p := New()
	t.Cleanup(func() { p.Close() })
	ctx := context.Background()
	err := p.Provision(ctx, providers.Topology{Topic: "orders", Consumers: consumers})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := p.OpenTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	return p, tp
}

func subscribe(t testing.TB, p *Provider, consumer string, lease time.Duration,
) providers.Subscription {
	t.Helper()
	s, err := p.OpenSubscription(context.Background(), "orders", consumer,
		providers.SubscriptionOptions{Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func send(t testing.TB, tp providers.Topic, msgs ...*providers.Message) {
	t.Helper()
	if err := tp.SendBatch(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

func msg(id string) *providers.Message {
	return &providers.Message{ID: id, Body: []byte("body of " + id),
		Attributes: map[string]string{"a": id}}
}

// receiver is what Subscription and DeadLetterQueue share.
type receiver interface {
	ReceiveBatch(ctx context.Context, max int) ([]*providers.Delivery, error)
}

// receive waits up to 5 s for at least one delivery.
func receive(t testing.TB, s receiver, max int) []*providers.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := s.ReceiveBatch(ctx, max)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return ds
}

// none checks that nothing is delivered within d.
func none(t testing.TB, s receiver, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ds, err := s.ReceiveBatch(ctx, 10)
	if len(ds) > 0 {
		t.Fatalf("got %d unexpected deliveries, first %q", len(ds), ds[0].ID)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive with nothing ready: err = %v, want DeadlineExceeded", err)
	}
}

func TestFanOutDeliversEachMessageOncePerConsumer(t *testing.T) {
	p, tp := setup(t, "a", "b", "c")
	const n = 50
	var batch []*providers.Message
	for i := range n {
		batch = append(batch, msg(fmt.Sprint(i)))
	}
	send(t, tp, batch...)

	for _, c := range []string{"a", "b", "c"} {
		s := subscribe(t, p, c, time.Minute)
		seen := map[string]int{}
		for len(seen) < n {
			for _, d := range receive(t, s, 7) {
				seen[d.ID]++
				if d.Attempt != 1 || string(d.Body) != "body of "+d.ID ||
					d.Attributes["a"] != d.ID || d.ProviderID == "" {
					t.Fatalf("%s: bad delivery %+v", c, d)
				}
				if err := s.Ack(context.Background(), d); err != nil {
					t.Fatal(err)
				}
			}
		}
		for id, k := range seen {
			if k != 1 {
				t.Fatalf("%s: message %s delivered %d times", c, id, k)
			}
		}
		none(t, s, 50*time.Millisecond)
		st, err := p.Stats("orders", c)
		if err != nil {
			t.Fatal(err)
		}
		if st != (Stats{Delivered: n, Acked: n}) {
			t.Fatalf("%s: stats %+v", c, st)
		}
	}
}

func TestSendCopiesTheBody(t *testing.T) {
	p, tp := setup(t, "a")
	m := msg("1")
	send(t, tp, m)
	copy(m.Body, "XXXX")
	d := receive(t, subscribe(t, p, "a", time.Minute), 1)[0]
	if string(d.Body) != "body of 1" {
		t.Fatalf("body = %q: the sender's buffer leaked into the queue", d.Body)
	}
}

func TestLeaseExpiryRedeliversWithNextAttempt(t *testing.T) {
	p, tp := setup(t, "a")
	s := subscribe(t, p, "a", 50*time.Millisecond)
	send(t, tp, msg("1"))
	first := receive(t, s, 10)
	if len(first) != 1 || first[0].Attempt != 1 {
		t.Fatalf("first receive: %+v", first)
	}
	if d := time.Until(first[0].LeaseUntil); d <= 0 || d > 50*time.Millisecond {
		t.Fatalf("LeaseUntil is %v from now, want within 50ms", d)
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
	s := subscribe(t, p, "a", 50*time.Millisecond)
	send(t, tp, msg("1"))
	d := receive(t, s, 1)[0]
	old := d.LeaseUntil
	if err := s.Extend(ctx, d, time.Minute); err != nil {
		t.Fatal(err)
	}
	if !d.LeaseUntil.After(old.Add(30 * time.Second)) {
		t.Fatalf("LeaseUntil %v not moved from %v", d.LeaseUntil, old)
	}
	none(t, s, 200*time.Millisecond)
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

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	p, _ := setup(t, "a")
	check := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err = %v, want ErrNotFound naming %s", what, err, want)
		}
	}
	_, err := p.OpenTopic(ctx, "payments")
	check("open topic", err, `topic "payments" not found`)
	_, err = p.OpenSubscription(ctx, "payments", "a", providers.SubscriptionOptions{})
	check("open subscription, topic", err, `topic "payments" not found`)
	_, err = p.OpenSubscription(ctx, "orders", "b", providers.SubscriptionOptions{})
	check("open subscription, consumer", err, `consumer "b" of topic "orders" not found`)
	_, err = p.OpenDeadLetters(ctx, "orders", "b")
	check("open dead letters", err, `consumer "b" of topic "orders" not found`)
	_, err = p.Stats("orders", "b")
	check("stats", err, `consumer "b"`)
}

func TestProvisionIsIdempotentAndAddsConsumers(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	send(t, tp, msg("before"))
	topo := providers.Topology{Topic: "orders", Consumers: []string{"a", "b"}}
	for range 2 {
		if err := p.Provision(ctx, topo); err != nil {
			t.Fatal(err)
		}
	}
	send(t, tp, msg("after"))
	a, _ := p.Stats("orders", "a")
	b, _ := p.Stats("orders", "b")
	if a.Ready != 2 || b.Ready != 1 {
		t.Fatalf("ready: a %d (want 2), b %d (want 1)", a.Ready, b.Ready)
	}
	if d := receive(t, subscribe(t, p, "b", time.Minute), 10); len(d) != 1 || d[0].ID != "after" {
		t.Fatalf("b got %v", d)
	}
	if err := p.Provision(ctx, providers.Topology{}); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("empty topology: %v", err)
	}
}

func TestTooLargeFailsAlone(t *testing.T) {
	p, tp := setup(t, "a")
	big := &providers.Message{ID: "big", Body: make([]byte, MaxMessageBytes)}
	big.Attributes = map[string]string{"k": "v"}
	err := tp.SendBatch(context.Background(), []*providers.Message{msg("1"), big, nil})
	var be *providers.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 || !errors.Is(be.Failed[1], providers.ErrTooLarge) ||
		!errors.Is(be.Failed[2], providers.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	ds := receive(t, subscribe(t, p, "a", time.Minute), 10)
	if len(ds) != 1 || ds[0].ID != "1" {
		t.Fatalf("got %v", ds)
	}
	if p.Limits().MaxMessageBytes != 1<<20 || p.Limits().MaxAttributes != 0 {
		t.Fatalf("limits %+v", p.Limits())
	}
}

func TestCloseUnblocksReceivers(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	s1 := subscribe(t, p, "a", time.Minute)
	s2 := subscribe(t, p, "a", time.Minute)
	dlq, err := p.OpenDeadLetters(ctx, "orders", "a")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	recv := func(r receiver) {
		_, err := r.ReceiveBatch(ctx, 1)
		errs <- err
	}
	go recv(s1)
	go recv(s1)
	go recv(s2)
	go recv(dlq)

	// Closing one subscription stops its receivers only.
	time.Sleep(20 * time.Millisecond) // let them block; the test holds without it
	s1.Close()
	for range 2 {
		if err := waitErr(t, errs); !errors.Is(err, providers.ErrClosed) {
			t.Fatalf("after subscription close: %v", err)
		}
	}
	p.Close()
	for range 2 {
		if err := waitErr(t, errs); !errors.Is(err, providers.ErrClosed) {
			t.Fatalf("after provider close: %v", err)
		}
	}
	if err := tp.SendBatch(ctx, []*providers.Message{msg("1")}); !errors.Is(err, providers.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := s2.ReceiveBatch(ctx, 1); !errors.Is(err, providers.ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
	if _, err := p.OpenTopic(ctx, "orders"); !errors.Is(err, providers.ErrClosed) {
		t.Fatalf("open after close: %v", err)
	}
}

func waitErr(t *testing.T, errs chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("receiver still blocked 5s after close")
		return nil
	}
}

func TestNamedInstancesAreShared(t *testing.T) {
	ctx := context.Background()
	open, err := providers.Lookup("mem")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("mem://shared-test")
	p1, err := open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := open(ctx, u)
	priv, _ := open(ctx, &url.URL{Scheme: "mem"})
	defer priv.Close()

	topo := providers.Topology{Topic: "orders", Consumers: []string{"a"}}
	if err := p1.(providers.Provisioner).Provision(ctx, topo); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.OpenTopic(ctx, "orders"); err != nil {
		t.Fatalf("second client of the name: %v", err)
	}
	if _, err := priv.OpenTopic(ctx, "orders"); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("private instance sees the shared topic: %v", err)
	}

	// The instance lives while one client does.
	p1.Close()
	if _, err := p2.OpenTopic(ctx, "orders"); err != nil {
		t.Fatalf("after the first client closed: %v", err)
	}
	p2.Close()
	p3, _ := open(ctx, u)
	defer p3.Close()
	if _, err := p3.OpenTopic(ctx, "orders"); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("a new instance after the last close: %v", err)
	}

	bad, _ := url.Parse("mem://x?lease=1s")
	if _, err := open(ctx, bad); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("unknown query: %v", err)
	}
}

func TestProviderIDsCountUpAcrossDigits(t *testing.T) {
	p, tp := setup(t, "a")
	p.in.seq.Store(95)
	var batch []*providers.Message
	for i := range 10 {
		batch = append(batch, msg(fmt.Sprint(i)))
	}
	send(t, tp, batch...)
	send(t, tp, msg("next"))
	s := subscribe(t, p, "a", time.Minute)
	var got []string
	for len(got) < 11 {
		for _, d := range receive(t, s, 20) {
			got = append(got, d.ID+"="+d.ProviderID)
		}
	}
	want := "[0=96 1=97 2=98 3=99 4=100 5=101 6=102 7=103 8=104 9=105 next=106]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
}
