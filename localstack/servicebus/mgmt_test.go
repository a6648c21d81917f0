package servicebus

import (
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func TestPeek(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	send(t, c, "q", body("a"), body("b"), body("c"))
	r := receiver(t, c, "q", nil)
	ctx := ctxT(t)
	locked := receive(t, r, 1)[0] // peek also shows locked messages
	msgs, err := r.PeekMessages(ctx, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || string(msgs[0].Body) != "a" || string(msgs[2].Body) != "c" {
		t.Fatalf("peeked %d messages", len(msgs))
	}
	from := int64(2)
	msgs, err = r.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "b" {
		t.Fatalf("peek from 2: %v %v", msgs, err)
	}
	if err := r.CompleteMessage(ctx, locked, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := em.Count("q"); n != 2 {
		t.Fatalf("peek changed the queue: %d messages", n)
	}
}

func TestDeferAndReceiveBySequenceNumber(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	send(t, c, "q", body("later"))
	r := receiver(t, c, "q", nil)
	ctx := ctxT(t)
	m := receive(t, r, 1)[0]
	if err := r.DeferMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	if s, _ := em.Stats("q"); s.Deferred != 1 || s.Active != 0 {
		t.Fatalf("stats after defer: %+v", s)
	}
	got, err := r.ReceiveDeferredMessages(ctx, []int64{*m.SequenceNumber}, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("receive deferred: %v %v", got, err)
	}
	d := got[0]
	if string(d.Body) != "later" || d.State != azservicebus.MessageStateDeferred {
		t.Fatalf("deferred message %+v", d)
	}
	if err := r.RenewMessageLock(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.CompleteMessage(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "q", 0)
}

func TestScheduleAndCancel(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	ctx := ctxT(t)
	s, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	at := time.Now().Add(300 * time.Millisecond)
	msgs := []*azservicebus.Message{body("soon"), body("never")}
	seqs, err := s.ScheduleMessages(ctx, msgs, at, nil)
	if err != nil || len(seqs) != 2 {
		t.Fatalf("schedule: %v %v", seqs, err)
	}
	if st, _ := em.Stats("q"); st.Scheduled != 2 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.CancelScheduledMessages(ctx, seqs[1:], nil); err != nil {
		t.Fatal(err)
	}
	r := receiver(t, c, "q", nil)
	m := receive(t, r, 1)[0]
	if string(m.Body) != "soon" || time.Now().Before(at) {
		t.Fatalf("got %q at %v, scheduled for %v", m.Body, time.Now(), at)
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "q", 0)
}

func TestScheduleOnTopic(t *testing.T) {
	em := start(t, Config{})
	_ = em.CreateTopic("t", EntityProperties{})
	_ = em.CreateSubscription("t", "s", EntityProperties{})
	c := client(t, em)
	ctx := ctxT(t)
	s, err := c.NewSender("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.ScheduleMessages(ctx, []*azservicebus.Message{body("x")},
		time.Now().Add(100*time.Millisecond), nil); err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "t/Subscriptions/s", 1)
}

func TestReceiveAndDelete(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	send(t, c, "q", body("a"), body("b"))
	r := receiver(t, c, "q", &azservicebus.ReceiverOptions{
		ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receive(t, r, 2)
	if string(got[0].Body) != "a" || string(got[1].Body) != "b" {
		t.Fatalf("bodies %q %q", got[0].Body, got[1].Body)
	}
	waitCount(t, em, "q", 0)
}

func TestTimeToLive(t *testing.T) {
	em := start(t, Config{})
	_ = em.CreateQueue("drop", EntityProperties{})
	_ = em.CreateQueue("keep", EntityProperties{DeadLetteringOnMessageExpiration: true,
		DefaultMessageTimeToLive: time.Hour})
	c := client(t, em)
	ttl := 100 * time.Millisecond
	send(t, c, "drop", &azservicebus.Message{Body: []byte("x"), TimeToLive: &ttl})
	send(t, c, "keep", &azservicebus.Message{Body: []byte("y"), TimeToLive: &ttl})
	waitCount(t, em, "drop", 0)
	waitCount(t, em, "keep", 0)
	waitCount(t, em, "keep/$DeadLetterQueue", 1)
	r := receiver(t, c, "keep", dlqOptions)
	m := receive(t, r, 1)[0]
	if *m.DeadLetterReason != "TTLExpiredException" {
		t.Fatalf("reason %q", *m.DeadLetterReason)
	}
}

func TestDefaultTTLSetsExpiresAt(t *testing.T) {
	_, c := queueEmulator(t, EntityProperties{DefaultMessageTimeToLive: time.Hour})
	send(t, c, "q", body("x"))
	m := receive(t, receiver(t, c, "q", nil), 1)[0]
	if m.ExpiresAt == nil || m.ExpiresAt.Sub(*m.EnqueuedTime) != time.Hour {
		t.Fatalf("ExpiresAt %v, enqueued %v", m.ExpiresAt, m.EnqueuedTime)
	}
}

func TestMissingEntityIsNotFound(t *testing.T) {
	_, c := queueEmulator(t, EntityProperties{})
	ctx := ctxT(t)
	s, err := c.NewSender("nope", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	err = s.SendMessage(ctx, body("x"), nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
		t.Fatalf("send to a missing queue: %v", err)
	}
	r := receiver(t, c, "nope", nil)
	_, err = r.ReceiveMessages(ctx, 1, nil)
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
		t.Fatalf("receive from a missing queue: %v", err)
	}
}
