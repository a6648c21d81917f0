package gcppubsub_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/gcppubsub"
)

func TestFanOutEachConsumerGetsEveryMessageOnce(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a", "b"}})
	if err := top.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 25)); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	for _, c := range []string{"a", "b"} {
		s := open(t, p, topic, c, 30*time.Second)
		ds := receiveN(t, s, 25)
		seen := map[string]bool{}
		for _, d := range ds {
			if d.Attempt != 1 {
				t.Errorf("%s: %s attempt %d, want 1 (attempts are per consumer)", c, d.ID, d.Attempt)
			}
			if string(d.Body) != d.ID || d.Attributes["ce-id"] != d.ID || d.ProviderID == "" {
				t.Errorf("%s: delivery %+v does not carry what was sent", c, d.Message)
			}
			seen[d.ID] = true
			if err := s.Ack(ctxFor(t, 10*time.Second), d); err != nil {
				t.Fatalf("Ack: %v", err)
			}
		}
		if len(seen) != 25 {
			t.Errorf("%s: %d distinct messages, want 25", c, len(seen))
		}
		receiveNone(t, s, 1500*time.Millisecond)
	}
}

func TestNackRedeliversAsNextAttempt(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a", "b"}})
	if err := top.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	// Consumer b's deliveries must not count as a's attempts.
	b := open(t, p, topic, "b", 30*time.Second)
	for range 2 {
		d := receiveN(t, b, 1)[0]
		if err := b.Nack(ctxFor(t, 5*time.Second), d, 0); err != nil {
			t.Fatal(err)
		}
	}

	a := open(t, p, topic, "a", 30*time.Second)
	for want := 1; want <= 3; want++ {
		d := receiveN(t, a, 1)[0]
		if d.Attempt != want {
			t.Fatalf("attempt %d, want %d", d.Attempt, want)
		}
		if want < 3 {
			if err := a.Nack(ctxFor(t, 5*time.Second), d, 0); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := a.Ack(ctxFor(t, 5*time.Second), d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNackDelayKeepsTheMessageAway(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	if err := top.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "a", 30*time.Second)
	d := receiveN(t, s, 1)[0]
	start := time.Now()
	if err := s.Nack(ctxFor(t, 5*time.Second), d, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	receiveNone(t, s, 1500*time.Millisecond)
	d = receiveN(t, s, 1)[0]
	if waited := time.Since(start); waited < 2*time.Second || d.Attempt != 2 {
		t.Fatalf("redelivered after %v as attempt %d, want >= 2s and attempt 2", waited, d.Attempt)
	}
}

func TestLeaseEndsAndLateSettlementIsLeaseLost(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	if err := top.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	// The subscription's ack deadline is 30 s; the consumer's 1 s lease
	// must still hold.
	s := open(t, p, topic, "a", time.Second)
	d := receiveN(t, s, 1)[0]
	if left := time.Until(d.LeaseUntil); left > time.Second || left < 0 {
		t.Fatalf("lease ends in %v, want at most 1s", left)
	}
	again := receiveN(t, s, 1)[0]
	if again.Attempt != 2 || time.Now().Before(d.LeaseUntil) {
		t.Fatalf("redelivered as attempt %d before the first lease ended", again.Attempt)
	}
	for name, settle := range map[string]func() error{
		"Ack":    func() error { return s.Ack(context.Background(), d) },
		"Nack":   func() error { return s.Nack(context.Background(), d, 0) },
		"Extend": func() error { return s.Extend(context.Background(), d, time.Second) },
		"DeadLetter": func() error {
			return s.DeadLetter(context.Background(), d, providers.DeadLetter{Reason: "x"})
		},
	} {
		if err := settle(); !errors.Is(err, providers.ErrLeaseLost) {
			t.Errorf("%s after the lease: %v, want ErrLeaseLost", name, err)
		}
	}
	if err := s.Ack(ctxFor(t, 5*time.Second), again); err != nil {
		t.Fatal(err)
	}
	receiveNone(t, s, 1500*time.Millisecond)
}

func TestExtendKeepsTheLease(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	if err := top.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "a", time.Second)
	d := receiveN(t, s, 1)[0]
	if err := s.Extend(ctxFor(t, 5*time.Second), d, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(d.LeaseUntil); left < 2*time.Second {
		t.Fatalf("LeaseUntil %v from now after Extend(3s)", left)
	}
	receiveNone(t, s, 2*time.Second)
	if err := s.Ack(ctxFor(t, 5*time.Second), d); err != nil {
		t.Fatalf("Ack within the extended lease: %v", err)
	}
}

func TestConcurrentAcksAllLand(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	if err := top.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 300)); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "a", 30*time.Second)
	ds := receiveN(t, s, 300)
	var wg sync.WaitGroup
	errs := make(chan error, len(ds))
	for _, d := range ds {
		wg.Go(func() { errs <- s.Ack(ctxFor(t, 10*time.Second), d) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	receiveNone(t, s, 1500*time.Millisecond)
}

func TestDeadLetterThenRedriveReachesOnlyThatConsumer(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a", "b"}})
	if err := top.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	b := open(t, p, topic, "b", 30*time.Second)
	if err := b.Ack(ctxFor(t, 5*time.Second), receiveN(t, b, 1)[0]); err != nil {
		t.Fatal(err)
	}

	a := open(t, p, topic, "a", 30*time.Second)
	d := receiveN(t, a, 1)[0]
	// An error text longer than Pub/Sub's 1024-byte attribute value.
	reason := providers.DeadLetter{Reason: providers.ReasonPermanent,
		Error: strings.Repeat("é", 900), Attempts: 1, Consumer: "a", Time: time.Now()}
	if err := a.DeadLetter(ctxFor(t, 10*time.Second), d, reason); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	receiveNone(t, a, 1500*time.Millisecond)

	q, err := p.OpenDeadLetters(ctxFor(t, 5*time.Second), topic, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, err := q.Count(ctxFor(t, 5*time.Second)); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
	letter := receiveN(t, q, 1)[0]
	for k, v := range letter.Attributes {
		if len(v) > gcppubsub.MaxAttributeValueBytes {
			t.Errorf("letter attribute %s is %d bytes, over Pub/Sub's limit", k, len(v))
		}
	}
	got, ok := providers.ParseDeadLetter(letter.Attributes)
	if !ok || got.Reason != providers.ReasonPermanent || got.Consumer != "a" ||
		string(letter.Body) != "m-0" || letter.ID != "m-0" || letter.Attributes["n"] != "0" {
		t.Fatalf("letter %+v, reason %+v", letter.Message, got)
	}
	err = q.Redrive(ctxFor(t, 10*time.Second), []*providers.Message{&letter.Message})
	if err != nil {
		t.Fatalf("Redrive: %v", err)
	}
	if err := q.Ack(ctxFor(t, 5*time.Second), letter); err != nil {
		t.Fatal(err)
	}

	back := receiveN(t, a, 1)[0]
	if back.ID != "m-0" || back.Attempt != 1 {
		t.Fatalf("redriven %q attempt %d, want m-0 attempt 1", back.ID, back.Attempt)
	}
	if _, ok := providers.ParseDeadLetter(back.Attributes); ok {
		t.Errorf("redriven message still carries dead-letter attributes: %v", back.Attributes)
	}
	receiveNone(t, b, 1500*time.Millisecond)
}

func TestOrderingKeys(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}, Ordered: true})
	batch := msgs("m", 10)
	for i, m := range batch {
		m.OrderingKey = []string{"k1", "k2"}[i%2]
	}
	if err := top.SendBatch(ctxFor(t, 10*time.Second), batch); err != nil {
		t.Fatal(err)
	}
	s := open(t, p, topic, "a", 30*time.Second)
	got := map[string][]string{}
	for n := 0; n < 10; {
		for _, d := range receiveN(t, s, 1) {
			got[d.OrderingKey] = append(got[d.OrderingKey], d.ID)
			if err := s.Ack(ctxFor(t, 5*time.Second), d); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	want := map[string][]string{
		"k1": {"m-0", "m-2", "m-4", "m-6", "m-8"},
		"k2": {"m-1", "m-3", "m-5", "m-7", "m-9"},
	}
	for k := range want {
		if !slices.Equal(got[k], want[k]) {
			t.Errorf("key %s: %v, want %v", k, got[k], want[k])
		}
	}

	plain := setup(t, p, providers.Topology{Consumers: []string{"a"}})
	err := plain.SendBatch(ctxFor(t, 5*time.Second),
		[]*providers.Message{{ID: "x", Body: []byte("x"), OrderingKey: "k"}})
	if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), "ordering") {
		t.Fatalf("ordering key on an unordered topic: %v, want ErrInvalid", err)
	}
}

func TestBadMessagesFailAloneNamingTheLimit(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	many := map[string]string{}
	for i := range 101 {
		many[strings.Repeat("k", 1+i%5)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	batch := []*providers.Message{
		{ID: "ok-1", Body: []byte("fine")},
		{ID: "many", Body: []byte("x"), Attributes: many},
		{ID: "longkey", Body: []byte("x"), Attributes: map[string]string{strings.Repeat("k", 257): "v"}},
		{ID: "longvalue", Body: []byte("x"),
			Attributes: map[string]string{"k": strings.Repeat("v", 1025)}},
		{ID: "goog", Body: []byte("x"), Attributes: map[string]string{"googclient": "v"}},
		{ID: "huge", Body: make([]byte, gcppubsub.MaxMessageBytes+1)},
		{ID: "empty"},
		{ID: "ok-2", Body: []byte("fine")},
	}
	err := top.SendBatch(ctxFor(t, 20*time.Second), batch)
	var be *providers.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SendBatch: %v, want a *BatchError", err)
	}
	want := map[int]struct {
		sentinel error
		text     string
	}{
		1: {providers.ErrInvalid, "101 attributes"},
		2: {providers.ErrInvalid, "257 bytes"},
		3: {providers.ErrInvalid, "1025-byte value"},
		4: {providers.ErrInvalid, `"googclient"`},
		5: {providers.ErrTooLarge, "10000001 bytes"},
		6: {providers.ErrInvalid, "body or at least one attribute"},
	}
	for i, w := range want {
		e := be.Failed[i]
		if !errors.Is(e, w.sentinel) || !strings.Contains(e.Error(), w.text) ||
			!strings.Contains(e.Error(), topic) {
			t.Errorf("#%d (%s): %v, want %v naming %q and the topic", i, batch[i].ID, e, w.sentinel, w.text)
		}
	}
	if len(be.Failed) != len(want) {
		t.Errorf("failed %v, want only the bad ones", be.Failed)
	}
	s := open(t, p, topic, "a", 30*time.Second)
	var ids []string
	for _, d := range receiveN(t, s, 2) {
		ids = append(ids, string(d.Body))
	}
	if len(ids) != 2 || ids[0] != "fine" || ids[1] != "fine" {
		t.Fatalf("received %v, want the two good messages", ids)
	}
}

func TestMissingResourcesAreNotFoundByName(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	ctx := ctxFor(t, 10*time.Second)
	topic := topicName(t)
	if _, err := p.OpenTopic(ctx, topic); !errors.Is(err, providers.ErrNotFound) ||
		!strings.Contains(err.Error(), "topics/"+topic) {
		t.Errorf("OpenTopic of a missing topic: %v", err)
	}
	setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	_, err := p.OpenSubscription(ctx, topic, "nobody", providers.SubscriptionOptions{})
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), topic+"-nobody") {
		t.Errorf("OpenSubscription of a missing consumer: %v", err)
	}
	_, err = p.OpenDeadLetters(ctx, topic, "nobody")
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), topic+"-nobody") {
		t.Errorf("OpenDeadLetters of a missing consumer: %v", err)
	}
	if _, err := p.OpenTopic(ctx, "9bad"); !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("OpenTopic(9bad): %v, want ErrInvalid", err)
	}
}

func TestProvisionIsIdempotentAndRefusesAnOrderingChange(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	ctx := ctxFor(t, 20*time.Second)
	topo := providers.Topology{Topic: topicName(t), Consumers: []string{"a", "b"}}
	for range 2 {
		if err := p.Provision(ctx, topo); err != nil {
			t.Fatalf("Provision: %v", err)
		}
	}
	topo.Ordered = true
	err := p.Provision(ctx, topo)
	if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), topo.Topic+"-a") {
		t.Fatalf("Provision with ordering over an unordered subscription: %v", err)
	}
	topo.MaxAttempts = 96
	if err := p.Provision(ctx, topo); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("MaxAttempts 96: %v, want ErrInvalid", err)
	}
}

func TestEmulatorNotListeningIsAClearError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = gcppubsub.New(context.Background(), gcppubsub.Options{Project: "p", Endpoint: addr})
	if !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("New on a closed port: %v, want ErrUnavailable naming %s", err, addr)
	}
}

func TestURL(t *testing.T) {
	ps := emulator(t)
	open, err := providers.Lookup(gcppubsub.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(ps.URL)
	p, err := open(context.Background(), u)
	if err != nil {
		t.Fatalf("open %s: %v", ps.URL, err)
	}
	defer p.Close()
	if got := p.(*gcppubsub.Provider).Project(); got != ps.Project {
		t.Errorf("project %q, want %q", got, ps.Project)
	}
	for _, bad := range []string{"gcppubsub://?endpoint=" + ps.Host,
		"gcppubsub://p?endpoint=" + ps.Host + "&colour=red"} {
		u, _ := url.Parse(bad)
		if _, err := open(context.Background(), u); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("open %s: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestClosedSubscriptionAndTopic(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	s := open(t, p, topic, "a", time.Second)
	_ = s.Close()
	_ = top.Close()
	if _, err := s.ReceiveBatch(context.Background(), 1); !errors.Is(err, providers.ErrClosed) {
		t.Errorf("ReceiveBatch after Close: %v", err)
	}
	err := top.SendBatch(context.Background(), msgs("m", 1))
	if !errors.Is(err, providers.ErrClosed) {
		t.Errorf("SendBatch after Close: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s2 := open(t, p, topic, "a", time.Second)
	if _, err := s2.ReceiveBatch(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("ReceiveBatch with a cancelled context: %v", err)
	}
}

func TestFailedOrderedPublishIsResumed(t *testing.T) {
	p := newProvider(t, gcppubsub.Options{})
	ps := emulator(t)
	topic := topicName(t)
	top := setup(t, p, providers.Topology{Topic: topic, Consumers: []string{"a"}, Ordered: true})
	batch := func(id string) []*providers.Message {
		return []*providers.Message{{ID: id, Body: []byte(id), OrderingKey: "k"}}
	}
	if err := top.SendBatch(ctxFor(t, 10*time.Second), batch("first")); err != nil {
		t.Fatal(err)
	}

	// Make the next publish fail: delete the topic under the sender.
	admin, err := pubsub.NewClient(context.Background(), ps.Project,
		option.WithEndpoint(ps.Host), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	path := "projects/" + ps.Project + "/topics/" + topic
	ctx := ctxFor(t, 10*time.Second)
	err = admin.TopicAdminClient.DeleteTopic(ctx, &pb.DeleteTopicRequest{Topic: path})
	if err != nil {
		t.Fatal(err)
	}
	err = top.SendBatch(ctx, batch("lost"))
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Fatalf("publish to a deleted topic: %v, want ErrNotFound naming it", err)
	}
	if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pb.Topic{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := top.SendBatch(ctx, batch("again")); err != nil {
		t.Fatalf("publish with the key after a failure: %v (key not resumed?)", err)
	}
}
