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
	if !errors.As(err, &be) || len(be.Failed) != 2 ||
		!errors.Is(be.Failed[1], providers.ErrTooLarge) ||
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
	err = tp.SendBatch(ctx, []*providers.Message{msg("1")})
	if !errors.Is(err, providers.ErrClosed) {
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
