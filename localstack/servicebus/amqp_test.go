package servicebus

import (
	"errors"
	"testing"

	"github.com/Azure/go-amqp"
)

// Protocol tests driven by go-amqp, a general AMQP 1.0 client.

func TestGoAMQPAttachUnknownEntity(t *testing.T) {
	em := start(t, Config{})
	ctx := ctxT(t)
	opts := &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()}
	conn, err := amqp.Dial(ctx, "amqp://"+em.Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sess.NewReceiver(ctx, "missing", nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotFound {
		t.Fatalf("attach to a missing queue: %v", err)
	}
	_, err = sess.NewSender(ctx, "missing", nil)
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotFound {
		t.Fatalf("attach sender to a missing queue: %v", err)
	}
}

func TestGoAMQPDrainAndRelease(t *testing.T) {
	em := start(t, Config{})
	_ = em.CreateQueue("q", EntityProperties{})
	ctx := ctxT(t)
	conn, err := amqp.Dial(ctx, "amqp://"+em.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, amqp.NewMessage([]byte("x")), nil); err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "q", &amqp.ReceiverOptions{
		Credit: -1, SettlementMode: amqp.ReceiverSettleModeSecond.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.ReleaseMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	// A release is not a failed delivery: the count stays.
	m, err = rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header == nil || m.Header.DeliveryCount != 0 {
		t.Fatalf("header after a release: %+v", m.Header)
	}
	if err := rcv.ReleaseMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := rcv.DrainCredit(ctx, nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

// TestSessionWindowIsReplenished sends more transfers than the session's
// incoming window (5000) with settled sends, which only go on while the
// emulator keeps reopening the window.
func TestSessionWindowIsReplenished(t *testing.T) {
	const n = 6000
	em := start(t, Config{})
	_ = em.CreateQueue("q", EntityProperties{})
	ctx := ctxT(t)
	conn, err := amqp.Dial(ctx, "amqp://"+em.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "q", &amqp.SenderOptions{
		SettlementMode: amqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := snd.Send(ctx, amqp.NewMessage([]byte{byte(i)}), nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	waitCount(t, em, "q", n)
}
