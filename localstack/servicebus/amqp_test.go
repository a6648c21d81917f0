package servicebus

import (
	"bytes"
	"errors"
	"testing"
	"time"

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

// TestLockTokenInTagAndAnnotation checks that the delivery tag carries the
// lock token in .NET Guid byte order and x-opt-lock-token the same token
// as an AMQP uuid, with the annotations Service Bus adds.
func TestLockTokenInTagAndAnnotation(t *testing.T) {
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
		SettlementMode: amqp.ReceiverSettleModeSecond.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := m.DeliveryAnnotations["x-opt-lock-token"].(amqp.UUID)
	tag := m.DeliveryTag
	if !ok || len(tag) != 16 || tag[0] != tok[3] || tag[3] != tok[0] || tag[1] != tok[2] ||
		tag[4] != tok[5] || tag[6] != tok[7] || !bytes.Equal(tag[8:], tok[8:]) {
		t.Fatalf("tag % x, lock token %v", m.DeliveryTag, m.DeliveryAnnotations["x-opt-lock-token"])
	}
	if _, ok := m.Annotations["x-opt-locked-until"].(time.Time); !ok {
		t.Errorf("x-opt-locked-until: %T", m.Annotations["x-opt-locked-until"])
	}
	if _, ok := m.Annotations["x-opt-enqueued-time"].(time.Time); !ok {
		t.Errorf("x-opt-enqueued-time: %T", m.Annotations["x-opt-enqueued-time"])
	}
	if seq, ok := m.Annotations["x-opt-sequence-number"].(int64); !ok || seq != 1 {
		t.Errorf("x-opt-sequence-number: %v", m.Annotations["x-opt-sequence-number"])
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "q", 0)
}
