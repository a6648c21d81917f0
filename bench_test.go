package herald_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
)

// payload is the benchmarks' 1 KiB message body.
var payload = make([]byte, 1024)

func benchClient(b *testing.B) *herald.Client {
	b.Helper()
	mem := memory.New()
	if err := mem.Provision(context.Background(), providers.Topology{
		Topic: "bench", Consumers: []string{"c"},
	}); err != nil {
		b.Fatal(err)
	}
	c := herald.NewClient(mem)
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// publishN publishes n 1 KiB messages in calls of 1,000.
func publishN(b *testing.B, pub *herald.Publisher, n int) {
	b.Helper()
	batch := make([]*herald.Message, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, &herald.Message{Type: "OrderPlaced", Data: payload})
		if len(batch) == cap(batch) || i == n-1 {
			if err := pub.Publish(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkPublish measures Publish on mem:// per message: ID, validation,
// envelope encoding and the provider's send, in calls of 1,000.
func BenchmarkPublish(b *testing.B) {
	pub, err := benchClient(b).Publisher(context.Background(), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	publishN(b, pub, b.N)
}

// BenchmarkConsume measures the consumer loop end to end on mem:// with a
// no-op handler and 16-way concurrency: the messages are published first,
// then timed from Run until the last is acked.
func BenchmarkConsume(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func() idempotency.Store
	}{
		{"MemoryStore", func() idempotency.Store { return idempotency.NewMemory() }},
		{"NoStore", func() idempotency.Store { return idempotency.None{} }},
	} {
		b.Run(tc.name, func(b *testing.B) { benchConsume(b, tc.store()) })
	}
}

func benchConsume(b *testing.B, store idempotency.Store) {
	client := benchClient(b)
	pub, err := client.Publisher(context.Background(), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	publishN(b, pub, b.N)

	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	c, err := client.Consumer("bench", "c", func(ctx context.Context, m *herald.Message) error {
		if handled.Add(1) == n {
			close(done)
		}
		return nil
	}, &herald.ConsumerOptions{Concurrency: 16, Store: store, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() { runErr <- c.Run(ctx) }()
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	cancel()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	if s := c.Stats(); s.Handled != n {
		b.Fatal(fmt.Sprintf("handled %d of %d", s.Handled, n))
	}
}
