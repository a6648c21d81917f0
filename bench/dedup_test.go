package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency"
)

// The deduplication workload: 1,000 orders whose bodies differ only in the
// order number, then 100 of them published again (same ID, same body), as
// a producer that retries a publish does.
const (
	distinctOrders = 1000
	repeatedOrders = 100
)

// orderNumber reads back the number body wrote.
func orderNumber(b []byte) int {
	n, err := strconv.Atoi(string(b[numberAt : numberAt+10]))
	if err != nil {
		panic(err)
	}
	return n
}

// tally counts handler runs per order number.
type tally struct {
	mu   sync.Mutex
	runs map[int]int
}

func (t *tally) add(n int) {
	t.mu.Lock()
	t.runs[n]++
	t.mu.Unlock()
}

// TestDeduplication shows that herald, which deduplicates by message ID,
// handles each of 1,000 distinct orders exactly once and skips the 100
// repeats, and reports how many distinct orders Watermill's default
// Deduplicator (an Adler-32 of the body) drops as duplicates. Only
// herald's behaviour can fail the test.
func TestDeduplication(t *testing.T) {
	t.Run("Herald", testHeraldDedup)
	t.Run("WatermillDefaultDeduplicator", testWatermillDedup)
}

func testHeraldDedup(t *testing.T) {
	ctx := context.Background()
	client := heraldMem(t)
	pub, err := client.Publisher(ctx, "bench", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	for i := range distinctOrders + repeatedOrders {
		n := i % distinctOrders
		m := &herald.Message{ID: fmt.Sprintf("order-%d/placed", n), Type: "OrderPlaced", Data: body(n)}
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	runs := &tally{runs: map[int]int{}}
	cons, err := client.Consumer("bench", "c", func(_ context.Context, m *herald.Message) error {
		runs.add(orderNumber(m.Data))
		return nil
	}, &herald.ConsumerOptions{Concurrency: handlers, Store: idempotency.NewMemory(),
		Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- cons.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := cons.Stats()
		if s.Handled+s.Duplicates >= distinctOrders+repeatedOrders || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}

	s := cons.Stats()
	t.Logf("herald: %d distinct orders handled, %d repeats skipped (%+v)",
		len(runs.runs), s.Duplicates, s)
	for n := range distinctOrders {
		if runs.runs[n] != 1 {
			t.Errorf("order %d handled %d times, want once", n, runs.runs[n])
		}
	}
	if s.Duplicates != repeatedOrders {
		t.Errorf("herald skipped %d repeats, want %d", s.Duplicates, repeatedOrders)
	}
}

func testWatermillDedup(t *testing.T) {
	gc := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	defer func() { _ = gc.Close() }()
	for i := range distinctOrders + repeatedOrders {
		m := message.NewMessage(watermill.NewUUID(), body(i%distinctOrders))
		if err := gc.Publish("bench", m); err != nil {
			t.Fatal(err)
		}
	}

	runs := &tally{runs: map[int]int{}}
	c := newCounter(distinctOrders + repeatedOrders)
	router := newWatermillRouter(t, gc, c, true, func(m *message.Message) error {
		runs.add(orderNumber(m.Payload))
		return nil
	})
	stop := runRouter(context.Background(), t, router)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Errorf("Watermill finished %d of %d messages in 30 s", c.seen.Load(), c.n)
	}
	stop()

	dropped, total := 0, 0
	for n := range distinctOrders {
		if runs.runs[n] == 0 {
			dropped++
		}
		total += runs.runs[n]
	}
	t.Logf("Watermill default Deduplicator: %d of %d distinct orders handled, "+
		"%d distinct orders dropped as duplicates, %d handler runs for %d messages",
		len(runs.runs), distinctOrders, dropped, total, distinctOrders+repeatedOrders)
}
