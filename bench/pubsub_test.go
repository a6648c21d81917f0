package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	gcpubsub "gocloud.dev/pubsub"
	"gocloud.dev/pubsub/gcppubsubv2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	_ "github.com/seed06bc8277/herald/providers/gcppubsub" // gcppubsub://
)

var pubsubCloud cloud[*localstack.PubSub]

// pubsubEnv is one topic provisioned by herald on the shared pstest (topic
// T, subscription T-c) and a raw v2 client on it.
type pubsubEnv struct {
	herald *herald.Client
	raw    *pubsub.Client
	topic  string
	sub    string
}

func newPubSubEnv(tb testing.TB) *pubsubEnv {
	tb.Helper()
	ctx := context.Background()
	ps := pubsubCloud.get(tb, "Google", localstack.StartPubSub, (*localstack.PubSub).Close)

	client, err := herald.Open(ctx, ps.URL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	e := &pubsubEnv{herald: client, topic: freshName("bench")}
	e.sub = e.topic + "-c"
	err = client.Provision(ctx, providers.Topology{Topic: e.topic, Consumers: []string{"c"}})
	if err != nil {
		tb.Fatal(err)
	}

	e.raw, err = pubsub.NewClient(ctx, ps.Project,
		option.WithEndpoint(ps.Host),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.raw.Close() })
	// Delete what was provisioned, so that messages left by one contender
	// cannot slow pstest down for the next (it scans every subscription).
	tb.Cleanup(func() { e.delete(context.Background(), ps.Project) })
	return e
}

// delete removes the topic, the subscription and their dead-letter pair.
func (e *pubsubEnv) delete(ctx context.Context, project string) {
	for _, sub := range []string{e.sub, e.sub + "-dlq"} {
		_ = e.raw.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{
			Subscription: "projects/" + project + "/subscriptions/" + sub,
		})
	}
	for _, topic := range []string{e.topic, e.sub + "-dlq"} {
		_ = e.raw.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{
			Topic: "projects/" + project + "/topics/" + topic,
		})
	}
}

// BenchmarkPubSubPublish measures publishing b.N (compare.sh: 10,000) 1
// KiB messages to a topic on pstest, until every publish is acknowledged:
// the v2 client's Publisher (default batching: 100 messages or 10 ms),
// all published from one goroutine and then awaited (RawAttrs: with five
// attributes like herald's CloudEvents envelope); gocloud.dev's topic
// with 16 concurrent senders; herald in calls of 1,000 messages and as 16
// concurrent one-message senders.
func BenchmarkPubSubPublish(b *testing.B) {
	b.Run("Raw", func(b *testing.B) { benchPubSubRawPublish(b, false) })
	b.Run("RawAttrs", func(b *testing.B) { benchPubSubRawPublish(b, true) })
	b.Run("GoCloud16", benchPubSubGoCloudPublish)
	b.Run("HeraldBatch1000", func(b *testing.B) { benchPubSubHeraldPublish(b, 0) })
	b.Run("Herald16", func(b *testing.B) { benchPubSubHeraldPublish(b, senders) })
}

func benchPubSubRawPublish(b *testing.B, attrs bool) {
	ctx := context.Background()
	e := newPubSubEnv(b)
	pub := e.raw.Publisher(e.topic)
	defer pub.Stop()
	bs := bodies(b.N)
	results := make([]*pubsub.PublishResult, b.N)
	startTimer(b)
	for i := range b.N {
		m := &pubsub.Message{Data: bs[i]}
		if attrs {
			m.Attributes = map[string]string{
				"ce-specversion": "1.0",
				"ce-id":          fmt.Sprintf("0190a3c4-7d2e-7000-8000-%012d", i),
				"ce-type":        "OrderPlaced",
				"ce-source":      "herald",
				"ce-time":        time.Now().UTC().Format(time.RFC3339Nano),
			}
		}
		results[i] = pub.Publish(ctx, m)
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
	stopTimer(b, b.N)
}

func benchPubSubGoCloudPublish(b *testing.B) {
	ctx := context.Background()
	e := newPubSubEnv(b)
	topic := gcppubsubv2.OpenTopic(e.raw, e.topic, nil)
	defer func() { _ = topic.Shutdown(ctx) }()
	bs := bodies(b.N)
	startTimer(b)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return topic.Send(ctx, &gcpubsub.Message{Body: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	stopTimer(b, b.N)
}

// benchPubSubHeraldPublish publishes with workers concurrent one-message
// calls, or in calls of 1,000 from one goroutine when workers is 0.
func benchPubSubHeraldPublish(b *testing.B, workers int) {
	ctx := context.Background()
	e := newPubSubEnv(b)
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

// BenchmarkPubSubEndToEnd measures publish -> subscription -> handler on
// pstest: 16 goroutines publish b.N (compare.sh: 5,000) 1 KiB messages one
// per call while 16 no-op handlers consume the subscription; the timer
// runs until the last message is handled.
func BenchmarkPubSubEndToEnd(b *testing.B) {
	b.Run("GoCloud", benchPubSubGoCloudEndToEnd)
	b.Run("Herald", func(b *testing.B) {
		e := newPubSubEnv(b)
		heraldEndToEnd(b, e.herald, e.topic, "c")
	})
}

func benchPubSubGoCloudEndToEnd(b *testing.B) {
	ctx := context.Background()
	e := newPubSubEnv(b)
	topic := gcppubsubv2.OpenTopic(e.raw, e.topic, nil)
	sub := gcppubsubv2.OpenSubscription(e.raw, e.sub, nil)
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
