package servicebus

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func TestSendReceiveComplete(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{})
	ctx := ctxT(t)
	s, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	id := "m-1"
	err = s.SendMessage(ctx, &azservicebus.Message{
		MessageID: &id, Body: []byte("hello"),
		ApplicationProperties: map[string]any{"k": "v", "n": int64(7)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	if string(m.Body) != "hello" || m.MessageID != id || m.ApplicationProperties["k"] != "v" ||
		m.DeliveryCount != 1 || m.SequenceNumber == nil || *m.SequenceNumber != 1 ||
		m.EnqueuedTime == nil || m.LockedUntil == nil {
		t.Fatalf("unexpected message %+v", m)
	}
	if n, _ := em.Count("q"); n != 1 {
		t.Fatalf("count before complete = %d, want 1", n)
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := em.Count("q"); n != 0 {
		t.Fatalf("count after complete = %d, want 0", n)
	}
}
