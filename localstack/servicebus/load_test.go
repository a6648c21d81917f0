package servicebus

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
)

func TestLargeMessages(t *testing.T) {
	_, c := queueEmulator(t, EntityProperties{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16) // 256 KiB
	send(t, c, "q", &azservicebus.Message{Body: big})
	r := receiver(t, c, "q", nil)
	m := receive(t, r, 1)[0]
	if !bytes.Equal(m.Body, big) {
		t.Fatalf("body of %d bytes came back as %d bytes", len(big), len(m.Body))
	}
	if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMessageTooLarge(t *testing.T) {
	em := start(t, Config{MaxMessageSize: 64 << 10})
	_ = em.CreateQueue("q", EntityProperties{})
	c := client(t, em)
	s, err := c.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctxT(t))
	err = s.SendMessage(ctxT(t), &azservicebus.Message{Body: make([]byte, 100<<10)}, nil)
	if !errors.Is(err, azservicebus.ErrMessageTooLarge) {
		t.Fatalf("send of 100 KiB with a 64 KiB limit: %v", err)
	}
	if n, _ := em.Count("q"); n != 0 {
		t.Fatalf("queue holds %d messages", n)
	}
}

// TestConcurrentClients runs many connections, each with its own sender
// and receiver on a shared queue, and checks that every message arrives
// exactly once.
func TestConcurrentClients(t *testing.T) {
	const clients, perClient = 16, 50
	em, _ := queueEmulator(t, EntityProperties{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	errs := make(chan error, 2*clients)
	for i := range clients {
		c := client(t, em)
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := c.NewSender("q", nil)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close(ctxT(t))
			for j := range perClient {
				id := fmt.Sprintf("%d-%d", i, j)
				if err := s.SendMessage(ctxT(t), &azservicebus.Message{MessageID: &id}, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			r, err := c.NewReceiverForQueue("q", nil)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close(ctxT(t))
			for n := 0; n < perClient; {
				msgs, err := r.ReceiveMessages(ctxT(t), perClient-n, nil)
				if err != nil {
					errs <- err
					return
				}
				for _, m := range msgs {
					if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					seen[m.MessageID]++
					mu.Unlock()
				}
				n += len(msgs)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != clients*perClient {
		t.Fatalf("%d distinct messages, want %d", len(seen), clients*perClient)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s received %d times", id, n)
		}
	}
	waitCount(t, em, "q", 0)
}

// TestNoMessageLostWhenAReceiverDies drops a connection that holds
// peek-locked messages mid-stream: every message comes back to another
// receiver once its lock expires, none is lost or duplicated.
func TestNoMessageLostWhenAReceiverDies(t *testing.T) {
	em, c := queueEmulator(t, EntityProperties{LockDuration: 300 * time.Millisecond})
	for i := range 5 {
		send(t, c, "q", body(fmt.Sprint(i)))
	}
	ctx := ctxT(t)
	nc, err := net.Dial("tcp", em.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.NewConn(ctx, nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "q", &amqp.ReceiverOptions{
		Credit: 5, SettlementMode: amqp.ReceiverSettleModeSecond.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := rcv.Receive(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	_ = nc.Close() // abrupt: no detach, end or close
	_ = conn.Close()

	r := receiver(t, c, "q", nil)
	got := map[string]int{}
	for _, m := range receive(t, r, 5) {
		got[string(m.Body)]++
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 5 {
		t.Fatalf("got %v, want each of 5 messages once", got)
	}
	waitCount(t, em, "q", 0)
}
