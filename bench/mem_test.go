package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/mempubsub"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
)

// BenchmarkMemConsume measures the consume side in process: b.N messages
// (compare.sh uses 100,000) of 1 KiB are published first, untimed; the
// timer runs from starting the consumer until the last message is handled
// by a no-op handler, 16 at a time. ns/op and allocs/op are per message.
func BenchmarkMemConsume(b *testing.B) {
	b.Run("Channel", benchChannelConsume)
	b.Run("GoCloud", benchGoCloudMemConsume)
	b.Run("Watermill", func(b *testing.B) { benchWatermillConsume(b, false) })
	b.Run("WatermillRetryDedup", func(b *testing.B) { benchWatermillConsume(b, true) })
	b.Run("HeraldMemoryStore", func(b *testing.B) {
		benchHeraldMemConsume(b, idempotency.NewMemory())
	})
	b.Run("HeraldNoStore", func(b *testing.B) { benchHeraldMemConsume(b, idempotency.None{}) })
}

// BenchmarkMemEndToEnd measures publish and consume together in process:
// 16 goroutines publish b.N messages one per call while 16 handlers
// consume them; the timer runs until the last is handled. Herald also runs
// with one goroutine publishing in calls of 1,000 (Batch1000), the way its
// Publish is meant to be used for bulk.
func BenchmarkMemEndToEnd(b *testing.B) {
	b.Run("GoCloud", benchGoCloudMemEndToEnd)
	b.Run("HeraldMemoryStore", func(b *testing.B) { benchHeraldMemEndToEnd(b, 1) })
	b.Run("HeraldMemoryStoreBatch1000", func(b *testing.B) { benchHeraldMemEndToEnd(b, 1000) })
}

// benchChannelConsume is the floor: a buffered channel and 16 goroutines.
func benchChannelConsume(b *testing.B) {
	ch := make(chan []byte, b.N)
	for _, body := range bodies(b.N) {
		ch <- body
	}
	close(ch)
	c := newCounter(b.N)
	startTimer(b)
	for range handlers {
		go func() {
			for range ch {
				c.add()
			}
		}()
	}
	<-c.done
	stopTimer(b, b.N)
}

func benchGoCloudMemConsume(b *testing.B) {
	ctx := context.Background()
	topic := mempubsub.NewTopic()
	sub := mempubsub.NewSubscription(topic, time.Minute)
	defer shutdownGoCloud(b, topic, sub)
	bs := bodies(b.N)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return topic.Send(ctx, &pubsub.Message{Body: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	bs = nil

	c := newCounter(b.N)
	startTimer(b)
	stop := receiveGoCloud(ctx, sub, c)
	<-c.done
	stopTimer(b, b.N)
	stop()
}

func benchGoCloudMemEndToEnd(b *testing.B) {
	ctx := context.Background()
	topic := mempubsub.NewTopic()
	sub := mempubsub.NewSubscription(topic, time.Minute)
	defer shutdownGoCloud(b, topic, sub)
	bs := bodies(b.N)

	c := newCounter(b.N)
	startTimer(b)
	stop := receiveGoCloud(ctx, sub, c)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return topic.Send(ctx, &pubsub.Message{Body: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	<-c.done
	stopTimer(b, b.N)
	stop()
}

// receiveGoCloud runs 16 handlers, each receiving, counting and acking one
// message at a time, which is how gocloud.dev's documentation bounds
// concurrency. stop ends them and waits.
func receiveGoCloud(ctx context.Context, sub *pubsub.Subscription, c *counter) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, handlers)
	for range handlers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				m, err := sub.Receive(ctx)
				if err != nil {
					return
				}
				c.add()
				m.Ack()
			}
		}()
	}
	return func() {
		cancel()
		for range handlers {
			<-done
		}
	}
}

func shutdownGoCloud(b *testing.B, topic *pubsub.Topic, sub *pubsub.Subscription) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sub.Shutdown(ctx); err != nil {
		b.Error(err)
	}
	if err := topic.Shutdown(ctx); err != nil {
		b.Error(err)
	}
}

// benchWatermillConsume runs Watermill's GoChannel (persistent, so that
// messages published before the router starts are delivered) under a
// Router. The Router starts a goroutine for every message it receives;
// a semaphore middleware bounds the handlers that run at once to 16, the
// same as the other contenders. With retryDedup, the Retry and default
// Deduplicator middlewares (an Adler-32 of the body, kept one minute) wrap
// the handler; messages the Deduplicator drops count as handled, since
// the Router is done with them.
func benchWatermillConsume(b *testing.B, retryDedup bool) {
	ctx := context.Background()
	logger := watermill.NopLogger{}
	gc := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, logger)
	defer func() { _ = gc.Close() }()
	for _, body := range bodies(b.N) {
		if err := gc.Publish("bench", message.NewMessage(watermill.NewUUID(), body)); err != nil {
			b.Fatal(err)
		}
	}

	c := newCounter(b.N)
	router := newWatermillRouter(b, gc, c, retryDedup, func(*message.Message) error { return nil })
	startTimer(b)
	stop := runRouter(ctx, b, router)
	<-c.done
	stopTimer(b, b.N)
	stop()
}

// newWatermillRouter returns a Router with one handler on topic "bench" of
// gc. Its middlewares, outermost first: count each message when the
// Router is done with it; allow 16 at a time; with retryDedup, Retry (3
// retries from 10 ms) and the default Deduplicator.
func newWatermillRouter(tb testing.TB, gc *gochannel.GoChannel, c *counter, retryDedup bool,
	handle func(*message.Message) error) *message.Router {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second},
		watermill.NopLogger{})
	if err != nil {
		tb.Fatal(err)
	}
	sem := make(chan struct{}, handlers)
	router.AddMiddleware(
		func(h message.HandlerFunc) message.HandlerFunc {
			return func(m *message.Message) ([]*message.Message, error) {
				out, err := h(m)
				c.add()
				return out, err
			}
		},
		func(h message.HandlerFunc) message.HandlerFunc {
			return func(m *message.Message) ([]*message.Message, error) {
				sem <- struct{}{}
				defer func() { <-sem }()
				return h(m)
			}
		},
	)
	if retryDedup {
		router.AddMiddleware(
			middleware.Retry{MaxRetries: 3, InitialInterval: 10 * time.Millisecond,
				Multiplier: 2}.Middleware,
			(&middleware.Deduplicator{}).Middleware,
		)
	}
	router.AddConsumerHandler("bench", "bench", gc, handle)
	return router
}

// runRouter runs the router until stop is called.
func runRouter(ctx context.Context, tb testing.TB, router *message.Router) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(ctx) }()
	<-router.Running()
	return func() {
		cancel()
		if err := <-runErr; err != nil {
			tb.Error(err)
		}
	}
}

// heraldMem returns a client on a fresh mem:// with topic "bench" and
// consumer "c".
func heraldMem(tb testing.TB) *herald.Client {
	tb.Helper()
	mem := memory.New()
	if err := mem.Provision(context.Background(), providers.Topology{
		Topic: "bench", Consumers: []string{"c"},
	}); err != nil {
		tb.Fatal(err)
	}
	c := herald.NewClient(mem)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func benchHeraldMemConsume(b *testing.B, store idempotency.Store) {
	ctx := context.Background()
	client := heraldMem(b)
	pub, err := client.Publisher(ctx, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	if err := publishHerald(ctx, pub, bodies(b.N), 1000); err != nil {
		b.Fatal(err)
	}

	c := newCounter(b.N)
	startTimer(b)
	stop := runHerald(ctx, b, client, "bench", "c", store, c)
	<-c.done
	stopTimer(b, b.N)
	stop()
}

func benchHeraldMemEndToEnd(b *testing.B, batch int) {
	ctx := context.Background()
	client := heraldMem(b)
	pub, err := client.Publisher(ctx, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	bs := bodies(b.N)

	c := newCounter(b.N)
	startTimer(b)
	stop := runHerald(ctx, b, client, "bench", "c", idempotency.NewMemory(), c)
	if batch > 1 {
		err = publishHerald(ctx, pub, bs, batch)
	} else {
		err = parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
			return pub.Publish(ctx, &herald.Message{Type: "OrderPlaced", Data: bs[i]})
		})
	}
	if err != nil {
		b.Fatal(err)
	}
	<-c.done
	stopTimer(b, b.N)
	stop()
}

// publishHerald publishes the bodies in calls of batch messages.
func publishHerald(ctx context.Context, pub *herald.Publisher, bs [][]byte, batch int) error {
	msgs := make([]*herald.Message, 0, batch)
	for i, body := range bs {
		msgs = append(msgs, &herald.Message{Type: "OrderPlaced", Data: body})
		if len(msgs) == batch || i == len(bs)-1 {
			if err := pub.Publish(ctx, msgs...); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

// runHerald runs a herald consumer with a counting no-op handler and 16
// handlers until stop is called, which also checks that every counted
// message was handled once.
func runHerald(ctx context.Context, tb testing.TB, client *herald.Client, topic, name string,
	store idempotency.Store, c *counter) (stop func()) {
	cons, err := client.Consumer(topic, name, func(context.Context, *herald.Message) error {
		c.add()
		return nil
	}, &herald.ConsumerOptions{Concurrency: handlers, Store: store, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- cons.Run(ctx) }()
	return func() {
		cancel()
		if err := <-runErr; err != nil {
			tb.Error(err)
		}
		if s := cons.Stats(); s.Handled < c.n || s.Failed > 0 {
			tb.Errorf("herald consumer stats %+v, want %d handled", s, c.n)
		}
	}
}
