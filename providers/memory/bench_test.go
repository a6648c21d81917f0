package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// BenchmarkSendReceiveAck measures the provider side of one message's
// life: send in batches of 100, receive in batches of 100, ack each. One
// op is one message of 1 KiB with 3 attributes, received by every
// consumer. Besides ns/op (wall time, which a busy machine inflates) it
// reports cpu-ns/op: the process's CPU time per message, garbage
// collection included.
func BenchmarkSendReceiveAck(b *testing.B) {
	for _, consumers := range []int{1, 3} {
		b.Run(fmt.Sprintf("consumers=%d", consumers), func(b *testing.B) {
			benchSendReceiveAck(b, consumers)
		})
	}
}

func benchSendReceiveAck(b *testing.B, consumers int) {
	ctx := context.Background()
	names := make([]string, consumers)
	for i := range names {
		names[i] = fmt.Sprint("c", i)
	}
	p, tp := setup(b, names...)
	subs := make([]providers.Subscription, consumers)
	for i, c := range names {
		subs[i] = subscribe(b, p, c, time.Minute)
	}
	const batch = 100
	msgs := make([]*providers.Message, batch)
	for i := range msgs {
		msgs[i] = &providers.Message{ID: fmt.Sprint(i), Body: make([]byte, 1024),
			Attributes: map[string]string{"type": "order.created", "source": "bench",
				"specversion": "1.0"}}
	}

	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	cpu := cpuTime()
	for sent := 0; sent < b.N; sent += batch {
		n := min(batch, b.N-sent)
		if err := tp.SendBatch(ctx, msgs[:n]); err != nil {
			b.Fatal(err)
		}
		for _, s := range subs {
			for got := 0; got < n; {
				ds, err := s.ReceiveBatch(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				for _, d := range ds {
					if err := s.Ack(ctx, d); err != nil {
						b.Fatal(err)
					}
				}
				got += len(ds)
			}
		}
	}

	if used := cpuTime() - cpu; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
