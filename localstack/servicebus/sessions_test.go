package servicebus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// sessionTopic starts an emulator with topic "t" and a session-enabled
// subscription "s".
func sessionTopic(t *testing.T, p EntityProperties) (*Emulator, *azservicebus.Client) {
	t.Helper()
	em := start(t, Config{})
	p.RequiresSession = true
	if err := em.CreateTopic("t", EntityProperties{}); err != nil {
		t.Fatal(err)
	}
	if err := em.CreateSubscription("t", "s", p); err != nil {
		t.Fatal(err)
	}
	return em, client(t, em)
}

// sendSession sends bodies to the topic, each "<session>:<n>".
func sendSession(t *testing.T, c *azservicebus.Client, entity string, bodies ...string) {
	t.Helper()
	ctx := ctxT(t)
	s, err := c.NewSender(entity, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for _, b := range bodies {
		id := b[:1]
		if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte(b), SessionID: &id},
			nil); err != nil {
			t.Fatal(err)
		}
	}
}

// receiveAll receives from r until it has n messages.
func receiveAll(t *testing.T, r *azservicebus.SessionReceiver,
	n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	ctx := ctxT(t)
	var got []*azservicebus.ReceivedMessage
	for len(got) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(got), nil)
		if err != nil {
			t.Fatalf("receive after %d messages: %v", len(got), err)
		}
		got = append(got, msgs...)
	}
	return got
}

func bodies(msgs []*azservicebus.ReceivedMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	return out
}

func TestSessionNamedInOrder(t *testing.T) {
	_, c := sessionTopic(t, EntityProperties{})
	sendSession(t, c, "t", "a1", "b1", "a2", "b2", "a3")
	ctx := ctxT(t)
	r, err := c.AcceptSessionForSubscription(ctx, "t", "s", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if r.SessionID() != "a" || time.Until(r.LockedUntil()) < 30*time.Second {
		t.Fatalf("session %q locked until %v", r.SessionID(), r.LockedUntil())
	}
	got := receiveAll(t, r, 3)
	if fmt.Sprint(bodies(got)) != "[a1 a2 a3]" {
		t.Fatalf("session a got %v", bodies(got))
	}
	for _, m := range got {
		if m.SessionID == nil || *m.SessionID != "a" {
			t.Fatalf("message %s has session %v", m.Body, m.SessionID)
		}
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A second receiver of a locked session is refused.
	_, err = c.AcceptSessionForSubscription(ctx, "t", "s", "a", nil)
	if err == nil {
		t.Fatal("a second receiver locked session a")
	}
}

func TestSessionNextAvailable(t *testing.T) {
	_, c := sessionTopic(t, EntityProperties{})
	sendSession(t, c, "t", "a1", "b1", "a2", "b2")
	ctx := ctxT(t)
	r1, err := c.AcceptNextSessionForSubscription(ctx, "t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close(ctx)
	r2, err := c.AcceptNextSessionForSubscription(ctx, "t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	if r1.SessionID() == r2.SessionID() {
		t.Fatalf("both receivers locked session %q", r1.SessionID())
	}
	for _, r := range []*azservicebus.SessionReceiver{r1, r2} {
		id := r.SessionID()
		if got := fmt.Sprint(bodies(receiveAll(t, r, 2))); got != "["+id+"1 "+id+"2]" {
			t.Fatalf("session %s got %v", id, got)
		}
	}
	// Nothing left to lock: the SDK reports CodeTimeout after its deadline.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.AcceptNextSessionForSubscription(short, "t", "s", nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeTimeout {
		t.Fatalf("accept with no free session: %v", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("gave up after %v, before the client's timeout", d)
	}
}

func TestSessionNextAvailableWaits(t *testing.T) {
	_, c := sessionTopic(t, EntityProperties{})
	ctx := ctxT(t)
	done := make(chan error, 1)
	var r *azservicebus.SessionReceiver
	go func() {
		var err error
		r, err = c.AcceptNextSessionForSubscription(ctx, "t", "s", nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the receiver start waiting; not required
	sendSession(t, c, "t", "z1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if r.SessionID() != "z" {
		t.Fatalf("locked %q, want z", r.SessionID())
	}
}

func TestSessionReleasedOnClose(t *testing.T) {
	_, c := sessionTopic(t, EntityProperties{})
	sendSession(t, c, "t", "a1", "a2")
	ctx := ctxT(t)
	r1, err := c.AcceptSessionForSubscription(ctx, "t", "s", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := receiveAll(t, r1, 1)
	if err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The unsettled message of the closed receiver comes back first.
	r2, err := c.AcceptNextSessionForSubscription(ctx, "t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	got := receiveAll(t, r2, 2)
	if fmt.Sprint(bodies(got)) != "[a1 a2]" || string(first[0].Body) != "a1" {
		t.Fatalf("after close got %v (first %s)", bodies(got), first[0].Body)
	}
	if err := r1.CompleteMessage(ctx, first[0], nil); err == nil {
		t.Fatal("completed a message through a closed session receiver")
	}
}

func TestSessionLockRenewAndExpiry(t *testing.T) {
	em, c := sessionTopic(t, EntityProperties{LockDuration: time.Second})
	sendSession(t, c, "t", "a1")
	ctx := ctxT(t)
	r, err := c.AcceptSessionForSubscription(ctx, "t", "s", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	m := receiveAll(t, r, 1)[0]
	// Renewed for 2.5 lock durations, the session and its message stay held.
	end := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(end) {
		time.Sleep(300 * time.Millisecond)
		before := r.LockedUntil()
		if err := r.RenewSessionLock(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if !r.LockedUntil().After(before) {
			t.Fatalf("renewal did not extend the lock: %v then %v", before, r.LockedUntil())
		}
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatalf("complete after renewals: %v", err)
	}

	// Without renewal the lock expires: another receiver takes the session
	// and gets the message again with a higher delivery count.
	sendSession(t, c, "t", "a2")
	m = receiveAll(t, r, 1)[0]
	r2, err := c.AcceptNextSessionForSubscription(ctx, "t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	again := receiveAll(t, r2, 1)[0]
	if string(again.Body) != "a2" || again.DeliveryCount != m.DeliveryCount+1 {
		t.Fatalf("after expiry got %s delivery %d", again.Body, again.DeliveryCount)
	}
	if n, _ := em.Count("t/Subscriptions/s"); n != 1 {
		t.Fatalf("count = %d, want 1", n)
	}
}

func TestSessionState(t *testing.T) {
	_, c := sessionTopic(t, EntityProperties{})
	ctx := ctxT(t)
	r, err := c.AcceptSessionForSubscription(ctx, "t", "s", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.GetSessionState(ctx, nil)
	if err != nil || st != nil {
		t.Fatalf("initial state %q, %v", st, err)
	}
	if err := r.SetSessionState(ctx, []byte("step-2"), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r, err = c.AcceptSessionForSubscription(ctx, "t", "s", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	st, err = r.GetSessionState(ctx, nil)
	if err != nil || string(st) != "step-2" {
		t.Fatalf("state after reaccept %q, %v", st, err)
	}
}

func TestSessionRules(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{RequiresSession: true})
	ctx := ctxT(t)
	s, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err == nil {
		t.Fatal("a session queue accepted a message without a session id")
	}
	r, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if _, err := r.ReceiveMessages(ctx, 1, nil); err == nil {
		t.Fatal("a plain receiver attached to a session queue")
	}
	if err := em.CreateQueue("plain", EntityProperties{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcceptSessionForQueue(ctx, "plain", "a", nil); err == nil {
		t.Fatal("a session receiver attached to a queue without sessions")
	}

	// A subscription dead-letters copies without a session id.
	em2, c2 := sessionTopic(t, EntityProperties{})
	ts, err := c2.NewSender("t", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close(ctx)
	if err := ts.SendMessage(ctx, &azservicebus.Message{Body: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := em2.Count("t/Subscriptions/s/$DeadLetterQueue"); n != 1 {
		t.Fatalf("dead-lettered %d messages without session, want 1", n)
	}
}
