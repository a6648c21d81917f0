package servicebus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// BenchmarkSendReceive measures end-to-end throughput through azservicebus:
// senders send batches of 64 messages of 128 bytes, receivers receive in
// peek-lock and complete every message (in up to 16 concurrent streams
// per receiver, as a consumer with concurrency does). One op is one message.
func BenchmarkSendReceive(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("%dx%d", n, n), func(b *testing.B) { benchSendReceive(b, n) })
	}
}

func benchSendReceive(b *testing.B, workers int) {
	em, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	_ = em.CreateQueue("bench", EntityProperties{})
	if err := em.Listen("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer em.Close()
	ctx := context.Background()
	payload := make([]byte, 128)

	var clients []*azservicebus.Client
	for range workers {
		c, err := azservicebus.NewClientFromConnectionString(em.ConnectionString(), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		clients = append(clients, c)
	}
	b.ReportAllocs()
	b.ResetTimer()

	var toSend, received, redelivered atomic.Int64
	toSend.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for _, c := range clients {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s, err := c.NewSender("bench", nil)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close(ctx)
			for {
				n := min(toSend.Add(-64)+64, 64)
				if n <= 0 {
					return
				}
				batch, err := s.NewMessageBatch(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				for range n {
					if err := batch.AddMessage(&azservicebus.Message{Body: payload}, nil); err != nil {
						errs <- err
						return
					}
				}
				if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			r, err := c.NewReceiverForQueue("bench", nil)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close(ctx)
			for received.Load() < int64(b.N) {
				rctx, cancel := context.WithTimeout(ctx, 200e6)
				msgs, err := r.ReceiveMessages(rctx, 256, nil)
				cancel()
				if err != nil && rctx.Err() == nil {
					errs <- err
					return
				}
				for _, m := range msgs {
					if m.DeliveryCount > 1 {
						redelivered.Add(1) // released by the SDK between calls
					}
				}
				// Complete concurrently, as a consumer with concurrency does.
				var settle sync.WaitGroup
				var failed atomic.Pointer[error]
				for part := range slices.Chunk(msgs, 16) {
					settle.Go(func() {
						for _, m := range part {
							if err := r.CompleteMessage(ctx, m, nil); err != nil {
								failed.Store(&err)
								return
							}
						}
					})
				}
				settle.Wait()
				if err := failed.Load(); err != nil {
					errs <- *err
					return
				}
				received.Add(int64(len(msgs)))
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case err := <-errs:
		b.Fatal(err) // a worker failed: the others would wait forever
	case <-time.After(2 * time.Minute):
		st, _ := em.Stats("bench")
		dl, _ := em.Stats("bench/$DeadLetterQueue")
		b.Fatalf("stuck after %d of %d messages: queue %+v, dead letters %+v",
			received.Load(), b.N, st, dl)
	}
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(redelivered.Load())/float64(b.N), "redelivered/op")
}
