package servicebus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func send(t testing.TB, c *azservicebus.Client, entity string, msgs ...*azservicebus.Message) {
	t.Helper()
	ctx := ctxT(t)
	s, err := c.NewSender(entity, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for _, m := range msgs {
		if err := s.SendMessage(ctx, m, nil); err != nil {
			t.Fatalf("send to %s: %v", entity, err)
		}
	}
}

func body(s string) *azservicebus.Message { return &azservicebus.Message{Body: []byte(s)} }

// receive gets exactly n messages from r within the test deadline.
func receive(t testing.TB, r *azservicebus.Receiver, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	ctx := ctxT(t)
	var out []*azservicebus.ReceivedMessage
	for len(out) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(out), nil)
		if err != nil {
			t.Fatalf("receive: %v (have %d of %d)", err, len(out), n)
		}
		out = append(out, msgs...)
	}
	return out
}

// waitCount polls until path holds want messages.
func waitCount(t testing.TB, em *Emulator, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := em.Count(path)
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages, want %d", path, n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dlqOptions receive from the dead-letter subqueue.
var dlqOptions = &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}

func receiver(t testing.TB, c *azservicebus.Client, queue string,
	o *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func TestAbandonMergesPropertiesAndCounts(t *testing.T) {
	_, c := queueEmulator(t, EntityProperties{})
	send(t, c, "q", body("a"))
	r := receiver(t, c, "q", nil)
	ctx := ctxT(t)
	m := receive(t, r, 1)[0]
	err := r.AbandonMessage(ctx, m, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"why": "busy"}})
	if err != nil {
		t.Fatal(err)
	}
	m = receive(t, r, 1)[0]
	if m.DeliveryCount != 2 || m.ApplicationProperties["why"] != "busy" {
		t.Fatalf("after abandon: count %d props %v", m.DeliveryCount, m.ApplicationProperties)
	}
}

func TestDeadLetterAndReceiveFromDLQ(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	send(t, c, "q", body("poison"))
	r := receiver(t, c, "q", nil)
	ctx := ctxT(t)
	m := receive(t, r, 1)[0]
	reason, desc := "bad", "cannot parse"
	err := r.DeadLetterMessage(ctx, m, &azservicebus.DeadLetterOptions{
		Reason: &reason, ErrorDescription: &desc,
		PropertiesToModify: map[string]any{"extra": int64(1)}})
	if err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "q", 0)
	waitCount(t, em, "q/$DeadLetterQueue", 1)
	dlq := receiver(t, c, "q", dlqOptions)
	d := receive(t, dlq, 1)[0]
	if d.DeadLetterReason == nil || *d.DeadLetterReason != reason ||
		d.DeadLetterErrorDescription == nil || *d.DeadLetterErrorDescription != desc ||
		d.DeadLetterSource != nil || d.DeliveryCount != 1 ||
		string(d.Body) != "poison" || d.ApplicationProperties["extra"] != int64(1) {
		t.Fatalf("dead letter: %+v", d)
	}
	if err := dlq.CompleteMessage(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "q/$DeadLetterQueue", 0)
}

func TestMaxDeliveryCountDeadLetters(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{MaxDeliveryCount: 3})
	send(t, c, "q", body("x"))
	r := receiver(t, c, "q", nil)
	ctx := ctxT(t)
	for i := 1; i <= 3; i++ {
		m := receive(t, r, 1)[0]
		if int(m.DeliveryCount) != i {
			t.Fatalf("delivery %d has count %d", i, m.DeliveryCount)
		}
		if err := r.AbandonMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(t, em, "q", 0)
	dlq := receiver(t, c, "q", dlqOptions)
	d := receive(t, dlq, 1)[0]
	if d.DeadLetterReason == nil || *d.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Fatalf("reason %v", d.DeadLetterReason)
	}
}

func TestLockExpiryRedeliversAndSettleFails(t *testing.T) {
	_, c := queueEmulator(t, EntityProperties{LockDuration: 300 * time.Millisecond})
	send(t, c, "q", body("x"))
	r := receiver(t, c, "q", nil)
	ctx := ctxT(t)
	first := receive(t, r, 1)[0]
	second := receive(t, r, 1)[0] // arrives once the first lock expired
	if second.DeliveryCount != 2 || *second.SequenceNumber != *first.SequenceNumber {
		t.Fatalf("redelivery: count %d", second.DeliveryCount)
	}
	err := r.CompleteMessage(ctx, first, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("complete with an expired lock: %v", err)
	}
	if err := r.CompleteMessage(ctx, second, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRenewLock(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{LockDuration: 400 * time.Millisecond})
	send(t, c, "q", body("x"))
	r := receiver(t, c, "q", nil)
	ctx := ctxT(t)
	m := receive(t, r, 1)[0]
	before := *m.LockedUntil
	for range 4 {
		time.Sleep(200 * time.Millisecond)
		if err := r.RenewMessageLock(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if !m.LockedUntil.After(before) {
		t.Fatalf("LockedUntil not extended: %v then %v", before, *m.LockedUntil)
	}
	if s, _ := em.Stats("q"); s.Locked != 1 {
		t.Fatalf("stats %+v: lock lost despite renewals", s)
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
}

func TestBatchSend(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	ctx := ctxT(t)
	s, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	b, err := s.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := b.AddMessage(&azservicebus.Message{Body: []byte{byte(i)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SendMessageBatch(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "q", 50)
	r := receiver(t, c, "q", nil)
	for i, m := range receive(t, r, 50) {
		if m.Body[0] != byte(i) {
			t.Fatalf("message %d has body %v: order lost", i, m.Body)
		}
	}
}
