package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

func TestOrderingKeysWithCompetingReceivers(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	const keys, perKey = 4, 40
	var batch []*providers.Message
	for i := range perKey {
		for k := range keys {
			m := msg(fmt.Sprintf("k%d-%03d", k, i))
			m.OrderingKey = fmt.Sprintf("k%d", k)
			batch = append(batch, m)
		}
	}
	unkeyed := msg("free")
	send(t, tp, append(batch, unkeyed)...)

	var (
		mu       sync.Mutex
		inFlight = map[string]string{} // key -> ID leased now
		done     = map[string][]string{}
		total    int
		failure  string
	)
	fail := func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if failure == "" {
			failure = fmt.Sprintf(f, args...)
		}
	}
	var wg sync.WaitGroup
	for w := range 2 {
		s := subscribe(t, p, "a", time.Minute)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				mu.Lock()
				finished := total == keys*perKey+1 || failure != ""
				mu.Unlock()
				if finished {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				ds, _ := s.ReceiveBatch(rctx, 3)
				cancel()
				for _, d := range ds {
					if d.OrderingKey == "" {
						mu.Lock()
						total++
						mu.Unlock()
						s.Ack(ctx, d)
						continue
					}
					mu.Lock()
					if other, busy := inFlight[d.OrderingKey]; busy {
						mu.Unlock()
						fail("%s delivered while %s of its key is leased", d.ID, other)
						return
					}
					inFlight[d.OrderingKey] = d.ID
					mu.Unlock()

					// Nack some: they must come back before the rest
					// of their key. Settle under mu, so that the next
					// delivery of the key is checked after this one left
					// inFlight.
					nack := rng.IntN(4) == 0
					mu.Lock()
					delete(inFlight, d.OrderingKey)
					var err error
					if nack {
						err = s.Nack(ctx, d, 0)
					} else {
						err = s.Ack(ctx, d)
						done[d.OrderingKey] = append(done[d.OrderingKey], d.ID)
						total++
					}
					mu.Unlock()
					if err != nil {
						fail("settle %s: %v", d.ID, err)
					}
				}
			}
		})
	}
	wg.Wait()
	if failure != "" {
		t.Fatal(failure)
	}
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		got := done[key]
		if len(got) != perKey {
			t.Fatalf("%s: %d acked, want %d", key, len(got), perKey)
		}
		for i, id := range got {
			if want := fmt.Sprintf("%s-%03d", key, i); id != want {
				t.Fatalf("%s: #%d acked is %s, want %s (order %v)", key, i, id, want, got)
			}
		}
	}
}

func TestExpiredLeaseGoesBackToTheHeadOfItsKey(t *testing.T) {
	p, tp := setup(t, "a")
	s := subscribe(t, p, "a", 40*time.Millisecond)
	var batch []*providers.Message
	for i := range 3 {
		m := msg(strconv.Itoa(i))
		m.OrderingKey = "k"
		batch = append(batch, m)
	}
	send(t, tp, batch...)
	if ds := receive(t, s, 10); len(ds) != 1 || ds[0].ID != "0" {
		t.Fatalf("first receive: %d deliveries, want only the key's head", len(ds))
	}
	again := receive(t, s, 10) // after the lease ends
	if len(again) != 1 || again[0].ID != "0" || again[0].Attempt != 2 {
		t.Fatalf("after expiry got %v", again)
	}
	if err := s.Ack(context.Background(), again[0]); err != nil {
		t.Fatal(err)
	}
	if next := receive(t, s, 10); len(next) != 1 || next[0].ID != "1" {
		t.Fatalf("after ack got %v", next)
	}
}

func TestDeadLetterAndRedriveToOneConsumer(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a", "b")
	sa := subscribe(t, p, "a", time.Minute)
	sb := subscribe(t, p, "b", time.Minute)
	send(t, tp, msg("1"))
	db := receive(t, sb, 1)[0]
	if err := sb.Ack(ctx, db); err != nil {
		t.Fatal(err)
	}

	// a gives up on the message.
	d := receive(t, sa, 1)[0]
	reason := providers.DeadLetter{Reason: providers.ReasonPermanent, Error: "boom"}
	if err := sa.DeadLetter(ctx, d, reason); err != nil {
		t.Fatal(err)
	}
	if err := sa.Ack(ctx, d); !errors.Is(err, providers.ErrLeaseLost) {
		t.Fatalf("ack after dead-letter: %v", err)
	}
	st, _ := p.Stats("orders", "a")
	if st.Dead != 1 || st.Ready+st.Leased+st.Delayed != 0 {
		t.Fatalf("stats after dead-letter: %+v", st)
	}

	q, err := p.OpenDeadLetters(ctx, "orders", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, _ := q.Count(ctx); n != 1 {
		t.Fatalf("count %d, want 1", n)
	}
	letter := receive(t, q, 10)
	if len(letter) != 1 {
		t.Fatalf("%d letters", len(letter))
	}
	dl, ok := providers.ParseDeadLetter(letter[0].Attributes)
	if !ok || dl.Reason != providers.ReasonPermanent || dl.Error != "boom" ||
		dl.Consumer != "a" || dl.Attempts != 1 || letter[0].Attributes["a"] != "1" ||
		string(letter[0].Body) != "body of 1" || letter[0].ID != "1" {
		t.Fatalf("letter %+v, reason %+v", letter[0], dl)
	}

	// Release gives it back without counting.
	if err := q.Release(ctx, letter[0]); err != nil {
		t.Fatal(err)
	}
	letter = receive(t, q, 10)
	if letter[0].Attempt != 1 {
		t.Fatalf("attempt after release %d, want 1", letter[0].Attempt)
	}

	// Redrive reaches a only, as a new message.
	if err := q.Redrive(ctx, []*providers.Message{&letter[0].Message}); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(ctx, letter[0]); err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Count(ctx); n != 0 {
		t.Fatalf("count after ack %d, want 0", n)
	}
	back := receive(t, sa, 10)
	if len(back) != 1 || back[0].ID != "1" || back[0].Attempt != 1 {
		t.Fatalf("redriven: %v", back)
	}
	for k := range back[0].Attributes {
		if strings.HasPrefix(k, "herald-") {
			t.Fatalf("redriven message keeps attribute %s", k)
		}
	}
	none(t, sb, 50*time.Millisecond)
}

// TestConcurrentUse races senders, competing receivers, nacks, expiries
// and dead letters; every message must end acked or dead exactly once.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	const senders, perSender = 4, 300
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			for i := 0; i < perSender; i += 10 {
				var batch []*providers.Message
				for j := i; j < i+10; j++ {
					m := msg(fmt.Sprintf("%d-%d", w, j))
					if j%3 == 0 {
						m.OrderingKey = strconv.Itoa(j % 7)
					}
					batch = append(batch, m)
				}
				if err := tp.SendBatch(ctx, batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}

	var mu sync.Mutex
	acked := map[string]int{}
	dead := 0
	finished := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)+dead >= senders*perSender
	}
	for w := range 4 {
		s := subscribe(t, p, "a", 20*time.Millisecond)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			deadline := time.Now().Add(30 * time.Second)
			for !finished() && time.Now().Before(deadline) {
				rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				ds, _ := s.ReceiveBatch(rctx, 1+rng.IntN(16))
				cancel()
				for _, d := range ds {
					var err error
					r := rng.IntN(20)
					switch {
					case r == 0: // abandon: the lease expires
					case r == 1:
						err = s.Nack(ctx, d, time.Duration(rng.IntN(5))*time.Millisecond)
					case r == 2:
						err = s.DeadLetter(ctx, d, providers.DeadLetter{Reason: "x"})
						if err == nil {
							mu.Lock()
							dead++
							mu.Unlock()
						}
					default:
						if r == 3 {
							err = s.Extend(ctx, d, time.Second)
						}
						if err == nil {
							err = s.Ack(ctx, d)
						}
						if err == nil {
							mu.Lock()
							acked[d.ID]++
							mu.Unlock()
						}
					}
					if err != nil && !errors.Is(err, providers.ErrLeaseLost) {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	for id, n := range acked {
		if n != 1 {
			t.Fatalf("%s acked %d times", id, n)
		}
	}
	st, _ := p.Stats("orders", "a")
	if len(acked)+dead != senders*perSender || st.Dead != dead ||
		st.Ready+st.Leased+st.Delayed != 0 {
		t.Fatalf("acked %d + dead %d of %d; stats %+v", len(acked), dead,
			senders*perSender, st)
	}
}

// TestHotKeyKeepsOrder streams one key that never drains: the group's
// backlog is consumed and refilled at once, in send order.
func TestHotKeyKeepsOrder(t *testing.T) {
	ctx := context.Background()
	p, tp := setup(t, "a")
	s := subscribe(t, p, "a", time.Minute)
	keyed := func(i int) *providers.Message {
		m := msg(strconv.Itoa(i))
		m.OrderingKey = "hot"
		return m
	}
	const backlog, total = 150, 1000
	for i := range backlog {
		send(t, tp, keyed(i))
	}
	for want := range total {
		ds := receive(t, s, 10)
		if len(ds) != 1 || ds[0].ID != strconv.Itoa(want) {
			t.Fatalf("want only %d, got %d deliveries, first %s", want, len(ds), ds[0].ID)
		}
		if err := s.Ack(ctx, ds[0]); err != nil {
			t.Fatal(err)
		}
		if next := want + backlog; next < total {
			send(t, tp, keyed(next))
		}
	}
	if st, _ := p.Stats("orders", "a"); st.Ready != 0 || st.Acked != total {
		t.Fatalf("stats %+v", st)
	}
}
