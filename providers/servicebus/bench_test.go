package servicebus_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

// benchBody and benchAttrs look like a small herald event in binary mode.
var (
	benchBody  = make([]byte, 256)
	benchAttrs = map[string]string{
		"ce-specversion": "1.0", "ce-id": "0190a4b2-7c1e-7d2a-9f00-1234567890ab",
		"ce-type": "OrderPlaced", "ce-source": "/checkout",
		"ce-time": "2026-12-03T10:04:05.123456789Z", "tenant": "acme",
	}
)

const benchBatch = 100

func benchMsgs(n int) []*providers.Message {
	out := make([]*providers.Message, n)
	for i := range out {
		out[i] = &providers.Message{ID: fmt.Sprint(i), Body: benchBody, Attributes: benchAttrs}
	}
	return out
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPublishRawClient is azservicebus alone: batches of 100 built
// with NewMessageBatch and sent one after another.
func BenchmarkPublishRawClient(b *testing.B) {
	p := newProvider(b)
	topic := topicName(b)
	setup(b, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	c, err := azservicebus.NewClientFromConnectionString(local(b).ConnectionString, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	s, err := c.NewSender(topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	props := make(map[string]any, len(benchAttrs))
	for k, v := range benchAttrs {
		props[k] = v
	}
	ctx := context.Background()
	if _, err := s.NewMessageBatch(ctx, nil); err != nil { // attaches the link
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += benchBatch {
		batch, err := s.NewMessageBatch(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		for range min(benchBatch, b.N-sent) {
			err := batch.AddMessage(&azservicebus.Message{Body: benchBody,
				ApplicationProperties: props}, nil)
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b)
}

// BenchmarkPublish is herald's Topic.SendBatch in batches of 100.
func BenchmarkPublish(b *testing.B) {
	p := newProvider(b)
	topic := topicName(b)
	tp := setup(b, p, providers.Topology{Topic: topic, Consumers: []string{"a"}})
	ctx := context.Background()
	msgs := benchMsgs(benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += benchBatch {
		if err := tp.SendBatch(ctx, msgs[:min(benchBatch, b.N-sent)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b)
}

// BenchmarkEndToEnd publishes b.N herald messages (batches of 100)
// while herald's consumer (concurrency 64) handles and acks them: the
// figure is messages handled per second, from the first publish to the
// last handler run.
func BenchmarkEndToEnd(b *testing.B) {
	p := newProvider(b)
	topic := topicName(b)
	c := herald.NewClient(p)
	if err := c.Provision(context.Background(), providers.Topology{Topic: topic,
		Consumers: []string{"a"}, Lease: 30 * time.Second}); err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	want := int64(b.N)
	cons, err := c.Consumer(topic, "a", func(context.Context, *herald.Message) error {
		if handled.Add(1) == want {
			close(done)
		}
		return nil
	}, &herald.ConsumerOptions{Concurrency: 64, BatchSize: 64,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- cons.Run(runCtx) }()
	pub, err := c.Publisher(ctx, topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()

	msgs := make([]*herald.Message, benchBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += benchBatch {
		n := min(benchBatch, b.N-sent)
		for i := range n {
			msgs[i] = &herald.Message{Type: "OrderPlaced", Data: benchBody,
				Attributes: map[string]string{"tenant": "acme"}}
		}
		if err := pub.Publish(ctx, msgs[:n]...); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("handled %d of %d", handled.Load(), b.N)
	}
	b.StopTimer()
	reportRate(b)
	stop()
	if err := <-ran; err != nil {
		b.Error(err)
	}
}
