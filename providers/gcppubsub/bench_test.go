package gcppubsub_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/gcppubsub"
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
		out[i] = &providers.Message{Body: benchBody, Attributes: benchAttrs}
	}
	return out
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPublishRawClient is the client library alone: Publish every
// message, then wait for every result.
func BenchmarkPublishRawClient(b *testing.B) {
	ps := emulator(b)
	p := newProvider(b, gcppubsub.Options{})
	// No subscriptions: pstest's cost grows with every subscription's
	// backlog, which would measure pstest rather than the client.
	topo := providers.Topology{Topic: topicName(b)}
	setup(b, p, topo)
	c, err := pubsub.NewClient(context.Background(), ps.Project, option.WithEndpoint(ps.Host),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pub := c.Publisher(topo.Topic)
	defer pub.Stop()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	results := make([]*pubsub.PublishResult, 0, b.N)
	for range b.N {
		m := &pubsub.Message{Data: benchBody, Attributes: benchAttrs}
		results = append(results, pub.Publish(ctx, m))
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b)
}

// BenchmarkPublish is herald's Topic.SendBatch, batches of 100 sent by 8
// goroutines per CPU at once, as a busy herald Publisher sends them.
func BenchmarkPublish(b *testing.B) {
	p := newProvider(b, gcppubsub.Options{})
	topic := setup(b, p, providers.Topology{}) // no subscriptions, as above
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// RunParallel hands out b.N iterations; each goroutine sends
			// its share in batches.
			n := int64(1)
			for n < benchBatch && pb.Next() {
				n++
			}
			if err := topic.SendBatch(ctx, benchMsgs(int(n))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportRate(b)
}

// BenchmarkEndToEnd publishes b.N messages while 4 receivers (batches of
// up to 100, as a consumer with concurrency 100 asks) take and ack them.
func BenchmarkEndToEnd(b *testing.B) {
	p := newProvider(b, gcppubsub.Options{})
	topo := providers.Topology{Topic: topicName(b), Consumers: []string{"a"}}
	top := setup(b, p, topo)
	sub := open(b, p, topo.Topic, "a", 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()

	var acked atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for acked.Load() < int64(b.N) && ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
				ds, err := sub.ReceiveBatch(rctx, benchBatch)
				rcancel()
				if err != nil && rctx.Err() == nil {
					b.Error(err)
					return
				}
				var awg sync.WaitGroup
				for _, d := range ds {
					awg.Go(func() {
						if err := sub.Ack(ctx, d); err != nil {
							b.Error(err)
						}
						acked.Add(1)
					})
				}
				awg.Wait()
			}
		})
	}
	// 4 senders, each sending its next batch when the last was sent:
	// publishing everything at once would build a backlog that pstest
	// walks on every Pull.
	var next atomic.Int64
	var pwg sync.WaitGroup
	for range 4 {
		pwg.Go(func() {
			for {
				from := int(next.Add(benchBatch)) - benchBatch
				if from >= b.N {
					return
				}
				if err := top.SendBatch(ctx, benchMsgs(min(benchBatch, b.N-from))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	pwg.Wait()
	wg.Wait()
	b.StopTimer()
	if got := acked.Load(); got < int64(b.N) {
		b.Fatalf("acked %d of %d", got, b.N)
	}
	reportRate(b)
}

// BenchmarkHeraldEndToEnd is the whole path: herald's Publisher (4
// goroutines, batches of 100) and a herald Consumer (concurrency 64, the
// in-memory idempotency store) on the local Pub/Sub.
func BenchmarkHeraldEndToEnd(b *testing.B) {
	p := newProvider(b, gcppubsub.Options{})
	client := herald.NewClient(p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	topo := providers.Topology{Topic: topicName(b), Consumers: []string{"a"}}
	if err := client.Provision(ctx, topo); err != nil {
		b.Fatal(err)
	}
	pub, err := client.Publisher(ctx, topo.Topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	var handled atomic.Int64
	all := make(chan struct{})
	c, err := client.Consumer(topo.Topic, "a", func(context.Context, *herald.Message) error {
		if handled.Add(1) == int64(b.N) {
			close(all)
		}
		return nil
	}, &herald.ConsumerOptions{Concurrency: 64,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() { ran <- c.Run(runCtx) }()

	var next atomic.Int64
	var pwg sync.WaitGroup
	for range 4 {
		pwg.Go(func() {
			for {
				from := int(next.Add(benchBatch)) - benchBatch
				if from >= b.N {
					return
				}
				batch := make([]*herald.Message, min(benchBatch, b.N-from))
				for i := range batch {
					batch[i] = &herald.Message{Type: "OrderPlaced", Source: "/checkout",
						Data: benchBody, Attributes: map[string]string{"tenant": "acme"}}
				}
				if err := pub.Publish(ctx, batch...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	pwg.Wait()
	select {
	case <-all:
	case <-ctx.Done():
		b.Fatalf("handled %d of %d", handled.Load(), b.N)
	}
	b.StopTimer()
	stop()
	if err := <-ran; err != nil {
		b.Error(err)
	}
	reportRate(b)
}
