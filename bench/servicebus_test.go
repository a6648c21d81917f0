package bench

import (
	"context"
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	gcpubsub "gocloud.dev/pubsub"
	"gocloud.dev/pubsub/azuresb"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

var serviceBusCloud cloud[*localstack.ServiceBus]

// serviceBusEnv is one topic provisioned by herald on the shared emulator
// (topic T, subscription c) and a raw azservicebus client on it, which
// gocloud.dev's azuresb also uses.
type serviceBusEnv struct {
	herald *herald.Client
	raw    *azservicebus.Client
	topic  string
}

func newServiceBusEnv(tb testing.TB) *serviceBusEnv {
	tb.Helper()
	ctx := context.Background()
	sb := serviceBusCloud.get(tb, "Azure", localstack.StartServiceBus,
		(*localstack.ServiceBus).Close)

	e := &serviceBusEnv{topic: freshName("bench")}
	// Delete the topic (and its subscriptions), so that messages left by
	// one contender cannot slow the emulator down for the next. Registered
	// first, it runs last: after every client closed its links, since a
	// link the emulator detached first leaves the SDK's token renewer
	// running.
	if sb.Emulator != nil {
		tb.Cleanup(func() { _ = sb.Emulator.DeleteTopic(e.topic) })
	}

	p, err := servicebus.New(ctx, sb.Options())
	if err != nil {
		tb.Fatal(err)
	}
	client := herald.NewClient(p)
	tb.Cleanup(func() { _ = client.Close() })
	e.herald = client
	err = client.Provision(ctx, providers.Topology{Topic: e.topic, Consumers: []string{"c"}})
	if err != nil {
		tb.Fatal(err)
	}

	e.raw, err = azservicebus.NewClientFromConnectionString(sb.ConnectionString, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.raw.Close(context.Background()) })
	return e
}

func (e *serviceBusEnv) sender(tb testing.TB) *azservicebus.Sender {
	s, err := e.raw.NewSender(e.topic, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// goCloudTopic opens gocloud.dev's topic on its own sender.
func (e *serviceBusEnv) goCloudTopic(tb testing.TB) *gcpubsub.Topic {
	s, err := azuresb.NewSender(e.raw, e.topic, nil)
	if err != nil {
		tb.Fatal(err)
	}
	// The topic's Shutdown leaves the sender open (and its token
	// renewer running): it is the caller's to close.
	tb.Cleanup(func() { _ = s.Close(context.Background()) })
	t, err := azuresb.OpenTopic(context.Background(), s, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// BenchmarkServiceBusPublish measures publishing b.N (compare.sh: 10,000)
// 1 KiB messages to a topic on herald's Service Bus emulator, until every
// send is acknowledged: the raw SDK's SendMessage one at a time and
// SendMessageBatch of full batches (256 KiB) one at a time; gocloud.dev's
// azuresb topic with 16 concurrent senders; herald in calls of 1,000 and as
// 16 concurrent one-message senders.
func BenchmarkServiceBusPublish(b *testing.B) {
	b.Run("RawSend", benchServiceBusRawSend)
	b.Run("RawBatch", benchServiceBusRawBatch)
	b.Run("GoCloud16", benchServiceBusGoCloudPublish)
	b.Run("HeraldBatch1000", func(b *testing.B) { benchServiceBusHeraldPublish(b, 0) })
	b.Run("Herald16", func(b *testing.B) { benchServiceBusHeraldPublish(b, senders) })
}

func benchServiceBusRawSend(b *testing.B) {
	ctx := context.Background()
	e := newServiceBusEnv(b)
	s := e.sender(b)
	bs := bodies(b.N)
	startTimer(b)
	for i := range b.N {
		if err := s.SendMessage(ctx, &azservicebus.Message{Body: bs[i]}, nil); err != nil {
			b.Fatal(err)
		}
	}
	stopTimer(b, b.N)
}

func benchServiceBusRawBatch(b *testing.B) {
	ctx := context.Background()
	e := newServiceBusEnv(b)
	s := e.sender(b)
	bs := bodies(b.N)
	startTimer(b)
	for i := 0; i < b.N; {
		batch, err := s.NewMessageBatch(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		for ; i < b.N; i++ {
			err := batch.AddMessage(&azservicebus.Message{Body: bs[i]}, nil)
			if errors.Is(err, azservicebus.ErrMessageTooLarge) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := s.SendMessageBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	stopTimer(b, b.N)
}

func benchServiceBusGoCloudPublish(b *testing.B) {
	ctx := context.Background()
	e := newServiceBusEnv(b)
	topic := e.goCloudTopic(b)
	defer func() { _ = topic.Shutdown(ctx) }()
	// One send first, so that the SDK sender opens its link once: 16
	// first sends at once can each open one, and the links it drops keep
	// their token renewers running after Close.
	if err := topic.Send(ctx, &gcpubsub.Message{Body: template}); err != nil {
		b.Fatal(err)
	}
	bs := bodies(b.N)
	startTimer(b)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return topic.Send(ctx, &gcpubsub.Message{Body: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	stopTimer(b, b.N)
}

// benchServiceBusHeraldPublish publishes with workers concurrent
// one-message calls, or in calls of 1,000 from one goroutine when workers
// is 0.
func benchServiceBusHeraldPublish(b *testing.B, workers int) {
	ctx := context.Background()
	e := newServiceBusEnv(b)
	pub, err := e.herald.Publisher(ctx, e.topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	bs := bodies(b.N)
	startTimer(b)
	if workers == 0 {
		err = publishHerald(ctx, pub, bs, 1000)
	} else {
		err = parallel(ctx, workers, b.N, func(ctx context.Context, i int) error {
			return pub.Publish(ctx, &herald.Message{Type: "OrderPlaced", Data: bs[i]})
		})
	}
	if err != nil {
		b.Fatal(err)
	}
	stopTimer(b, b.N)
}

// BenchmarkServiceBusEndToEnd measures topic -> subscription -> handler on
// the emulator: 16 goroutines send b.N (compare.sh: 5,000) 1 KiB messages
// one per call while 16 no-op handlers consume the subscription in
// peek-lock mode; the timer runs until the last message is handled.
func BenchmarkServiceBusEndToEnd(b *testing.B) {
	b.Run("Raw", benchServiceBusRawEndToEnd)
	b.Run("GoCloud", benchServiceBusGoCloudEndToEnd)
	b.Run("Herald", func(b *testing.B) {
		e := newServiceBusEnv(b)
		heraldEndToEnd(b, e.herald, e.topic, "c")
	})
}

func benchServiceBusRawEndToEnd(b *testing.B) {
	ctx := context.Background()
	e := newServiceBusEnv(b)
	s := e.sender(b)
	r, err := e.raw.NewReceiverForSubscription(e.topic, "c", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Close(ctx) }()
	bs := bodies(b.N)

	c := newCounter(b.N)
	startTimer(b)
	stop := receiveServiceBus(ctx, b, r, c)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return s.SendMessage(ctx, &azservicebus.Message{Body: bs[i]}, nil)
	}); err != nil {
		b.Fatal(err)
	}
	<-c.done
	stopTimer(b, b.N)
	stop()
}

// receiveServiceBus is the raw SDK's consumer: one loop receives as many
// messages as there are free handler slots (16 in all), and each handler
// counts its message and completes it.
func receiveServiceBus(ctx context.Context, tb testing.TB, r *azservicebus.Receiver,
	c *counter) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	slots := make(chan struct{}, handlers)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			// Wait for one free slot, then take the others that are free.
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			free := 1
		more:
			for free < handlers {
				select {
				case slots <- struct{}{}:
					free++
				default:
					break more
				}
			}
			msgs, err := r.ReceiveMessages(ctx, free, nil)
			for range free - len(msgs) {
				<-slots
			}
			if err != nil {
				if ctx.Err() == nil {
					tb.Error(err)
				}
				return
			}
			for _, m := range msgs {
				go func() {
					defer func() { <-slots }()
					c.add()
					if err := r.CompleteMessage(ctx, m, nil); err != nil && ctx.Err() == nil {
						tb.Error(err)
					}
				}()
			}
		}
	}()
	return func() {
		cancel()
		<-done
		for range handlers {
			slots <- struct{}{}
		}
	}
}

func benchServiceBusGoCloudEndToEnd(b *testing.B) {
	ctx := context.Background()
	e := newServiceBusEnv(b)
	topic := e.goCloudTopic(b)
	r, err := azuresb.NewReceiver(e.raw, e.topic, "c", nil)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := azuresb.OpenSubscription(ctx, e.raw, r, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer shutdownGoCloud(b, topic, sub)
	bs := bodies(b.N)

	c := newCounter(b.N)
	startTimer(b)
	stop := receiveGoCloud(ctx, sub, c)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return topic.Send(ctx, &gcpubsub.Message{Body: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	<-c.done
	stopTimer(b, b.N)
	stop()
}
