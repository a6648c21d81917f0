package servicebus

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/seed06bc8277/herald/providers"
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

func TestServeAndClose(t *testing.T) {
	em, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- em.Serve(ln) }()
	deadline := time.Now().Add(5 * time.Second)
	for em.Addr() == "" && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !strings.HasPrefix(em.ConnectionString(), "Endpoint=sb://"+ln.Addr().String()+";") ||
		!strings.HasSuffix(em.ConnectionString(), ";UseDevelopmentEmulator=true") {
		t.Fatalf("connection string %q", em.ConnectionString())
	}
	if err := em.Listen("127.0.0.1:0"); !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("second listener: %v", err)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if err := em.Listen("127.0.0.1:0"); !errors.Is(err, providers.ErrClosed) {
		t.Fatalf("Listen after Close: %v", err)
	}
	_ = em.Close() // idempotent
}
