package snssqs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

// benchMessages is how many 1 KiB messages one benchmark round moves.
const benchMessages = 10000

func benchBatch() []*providers.Message {
	body := bytes.Repeat([]byte("x"), 1024)
	msgs := make([]*providers.Message, benchMessages)
	for i := range msgs {
		msgs[i] = &providers.Message{ID: fmt.Sprint(i), Body: body,
			Attributes: map[string]string{"ce-id": fmt.Sprint(i), "ce-type": "bench"}}
	}
	return msgs
}

// BenchmarkPublish sends 10,000 1 KiB messages a round through SendBatch
// (PublishBatch, concurrent).
func BenchmarkPublish(b *testing.B) {
	p := newProvider(b)
	top := provision(b, p, false, "c")
	tp := openTopic(b, p, top.Topic)
	msgs := benchBatch()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := tp.SendBatch(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchMessages)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkPublishConcurrentSingles sends 10,000 1 KiB messages a round
// as 100 goroutines each calling SendBatch with one message at a time, as
// concurrent Publish calls do: they share PublishBatch requests.
func BenchmarkPublishConcurrentSingles(b *testing.B) {
	p := newProvider(b)
	top := provision(b, p, false, "c")
	tp := openTopic(b, p, top.Topic)
	msgs := benchBatch()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for g := range 100 {
			wg.Go(func() {
				for i := g; i < len(msgs); i += 100 {
					if err := tp.SendBatch(context.Background(), msgs[i:i+1]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*benchMessages)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkPublishOneAtATime is the baseline: SNS Publish, one message a
// request, one request at a time.
func BenchmarkPublishOneAtATime(b *testing.B) {
	p := newProvider(b)
	top := provision(b, p, false, "c")
	arn, _, err := p.findTopic(context.Background(), top.Topic)
	if err != nil {
		b.Fatal(err)
	}
	msgs := benchBatch()[:1000]
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		for _, m := range msgs {
			w, _ := encode(m, false)
			_, err := p.sns.Publish(context.Background(), &sns.PublishInput{TopicArn: aws.String(arn),
				Message: &w.body, MessageAttributes: w.snsAttributes()})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(msgs))/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkEndToEnd publishes 10,000 1 KiB messages a round while a
// subscription with MaxInFlight 100 receives and acks them all.
func BenchmarkEndToEnd(b *testing.B) {
	p := newProvider(b)
	top := provision(b, p, false, "c")
	tp := openTopic(b, p, top.Topic)
	s, err := p.OpenSubscription(context.Background(), top.Topic, "c",
		providers.SubscriptionOptions{Lease: 30 * time.Second, MaxInFlight: 100})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msgs := benchBatch()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := tp.SendBatch(context.Background(), msgs); err != nil {
				b.Error(err)
			}
		})
		acks := make(chan *providers.Delivery, 100)
		var ackers sync.WaitGroup
		for range 100 {
			ackers.Go(func() {
				for d := range acks {
					if err := s.Ack(context.Background(), d); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for got := 0; got < benchMessages; {
			ds, err := s.ReceiveBatch(context.Background(), 100)
			if err != nil {
				b.Fatal(err)
			}
			got += len(ds)
			for _, d := range ds {
				acks <- d
			}
		}
		close(acks)
		ackers.Wait()
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*benchMessages)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkHeraldEndToEnd publishes 10,000 1 KiB messages a round through
// herald's Publisher while a Consumer (Concurrency 100) handles them all:
// what an application gets, envelope, idempotency and settlement included.
func BenchmarkHeraldEndToEnd(b *testing.B) {
	p := newProvider(b)
	top := provision(b, p, false, "c")
	client := herald.NewClient(p)
	pub, err := client.Publisher(context.Background(), top.Topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	var handled atomic.Int64
	c, err := client.Consumer(top.Topic, "c", func(context.Context, *herald.Message) error {
		handled.Add(1)
		return nil
	}, &herald.ConsumerOptions{Concurrency: 100, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	body := bytes.Repeat([]byte("x"), 1024)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		msgs := make([]*herald.Message, benchMessages)
		for i := range msgs {
			msgs[i] = &herald.Message{Type: "bench", Data: body}
		}
		want := handled.Load() + benchMessages
		if err := pub.Publish(context.Background(), msgs...); err != nil {
			b.Fatal(err)
		}
		for handled.Load() < want {
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(b.N*benchMessages)/time.Since(start).Seconds(), "msgs/s")
}
