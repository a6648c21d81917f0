package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/awssnssqs"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	_ "github.com/seed06bc8277/herald/providers/snssqs" // snssqs://
)

var awsCloud cloud[*localstack.AWS]

// awsEnv is one provisioned topic on the shared fauxqs: herald's topology
// (SNS topic T, SQS queue T-c subscribed with raw delivery) and raw SDK
// clients on it.
type awsEnv struct {
	herald   *herald.Client
	sns      *sns.Client
	sqs      *sqs.Client
	topic    string
	topicARN string
	queueURL string
}

// newAWSEnv provisions a fresh topic with herald's Provisioner on the one
// fauxqs of this process, started on first use.
func newAWSEnv(tb testing.TB) *awsEnv {
	tb.Helper()
	ctx := context.Background()
	a := awsCloud.get(tb, "AWS", startAWS, (*localstack.AWS).Close)
	e, err := provisionAWS(ctx, a)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.herald.Close() })
	// Delete what was provisioned, so that messages left by one contender
	// cannot slow fauxqs down for the next. Cleanups run last-in first-out:
	// this runs before the clients close.
	tb.Cleanup(func() { e.delete(context.Background()) })
	return e
}

// delete removes the topic and its queues.
func (e *awsEnv) delete(ctx context.Context) {
	for _, q := range []string{e.topic + "-c", e.topic + "-c-dlq"} {
		u, err := e.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q)})
		if err == nil {
			_, _ = e.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
		}
	}
	_, _ = e.sns.DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: aws.String(e.topicARN)})
}

// startAWS starts fauxqs and warms it up, so that the first contender of
// a process does not pay for Node's JIT compiling fauxqs.
func startAWS(ctx context.Context) (*localstack.AWS, error) {
	a, err := localstack.StartAWS(ctx)
	if err != nil {
		return nil, err
	}
	if err := warmAWS(ctx, a); err != nil {
		_ = a.Close()
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	return a, nil
}

// warmAWS publishes 2,000 messages in batches of 10, 8 requests at a time,
// and receives and deletes them.
func warmAWS(ctx context.Context, a *localstack.AWS) error {
	e, err := provisionAWS(ctx, a)
	if err != nil {
		return err
	}
	defer func() { _ = e.herald.Close() }()
	defer e.delete(ctx)
	const n = 2000
	err = parallel(ctx, 8, n/10, func(ctx context.Context, i int) error {
		entries := make([]snstypes.PublishBatchRequestEntry, 10)
		for j := range entries {
			entries[j] = snstypes.PublishBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j)), Message: aws.String(string(template)),
			}
		}
		out, err := e.sns.PublishBatch(ctx, &sns.PublishBatchInput{
			TopicArn: aws.String(e.topicARN), PublishBatchRequestEntries: entries,
		})
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%d of 10 warm-up messages failed: %s", len(out.Failed),
				aws.ToString(out.Failed[0].Message))
		}
		return err
	})
	if err != nil {
		return err
	}
	// A receive whose answer the client never got (fauxqs at times ends a
	// kept-alive connection under it) leaves its messages in flight until
	// their visibility timeout: after several empty answers in a row, the
	// warm-up is done when those make up the rest.
	for got, empty := 0, 0; got < n; {
		out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(e.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			return err
		}
		if len(out.Messages) == 0 {
			if empty++; empty == 5 {
				visible, inFlight, err := queueCounts(ctx, e)
				if err == nil && visible == 0 && got+inFlight == n {
					return nil
				}
				return fmt.Errorf("received %d of %d messages (queue: %d visible, %d in flight, %v)",
					got, n, visible, inFlight, err)
			}
			continue
		}
		empty = 0
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for j, m := range out.Messages {
			entries[j] = sqstypes.DeleteMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j)), ReceiptHandle: m.ReceiptHandle,
			}
		}
		if _, err := e.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
			QueueUrl: aws.String(e.queueURL), Entries: entries,
		}); err != nil {
			return err
		}
		got += len(out.Messages)
	}
	return nil
}

// queueCounts returns the consumer queue's visible and in-flight message
// counts.
func queueCounts(ctx context.Context, e *awsEnv) (visible, inFlight int, err error) {
	out, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(e.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, 0, err
	}
	visible, err = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	if err == nil {
		inFlight, err = strconv.Atoi(
			out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	}
	return visible, inFlight, err
}

// provisionAWS provisions a fresh topic and consumer "c" with herald.
func provisionAWS(ctx context.Context, a *localstack.AWS) (*awsEnv, error) {
	client, err := herald.Open(ctx, a.URL)
	if err != nil {
		return nil, err
	}
	e := &awsEnv{herald: client, topic: freshName("bench")}
	if err := e.provision(ctx, a); err != nil {
		_ = client.Close()
		return nil, err
	}
	return e, nil
}

func (e *awsEnv) provision(ctx context.Context, a *localstack.AWS) error {
	err := e.herald.Provision(ctx, providers.Topology{Topic: e.topic, Consumers: []string{"c"}})
	if err != nil {
		return err
	}

	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(a.Region),
		config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(a.AccessKeyID, a.SecretAccessKey, "")))
	if err != nil {
		return err
	}
	e.sns = sns.NewFromConfig(cfg, func(o *sns.Options) { o.BaseEndpoint = aws.String(a.Endpoint) })
	e.sqs = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(a.Endpoint) })

	// CreateTopic of an existing name returns its ARN.
	t, err := e.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(e.topic)})
	if err != nil {
		return err
	}
	e.topicARN = *t.TopicArn
	q, err := e.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(e.topic + "-c")})
	if err != nil {
		return err
	}
	e.queueURL = *q.QueueUrl
	return nil
}

// BenchmarkAWSPublish measures publishing b.N (compare.sh: 10,000) 1 KiB
// messages to an SNS topic on fauxqs, until every publish is acknowledged:
// raw Publish one at a time; raw PublishBatch of 10, one request at a
// time; gocloud.dev's topic with 16 concurrent senders; herald's Publisher
// with 64 and 256 concurrent one-message Publish calls, and in calls of
// 1,000 messages.
func BenchmarkAWSPublish(b *testing.B) {
	b.Run("RawPublish", benchAWSRawPublish)
	b.Run("RawPublishBatch10", func(b *testing.B) { benchAWSRawPublishBatch(b, false) })
	b.Run("RawPublishBatch10Attrs", func(b *testing.B) { benchAWSRawPublishBatch(b, true) })
	b.Run("GoCloud16", benchAWSGoCloudPublish)
	b.Run("Herald64", func(b *testing.B) { benchAWSHeraldPublish(b, 64) })
	b.Run("Herald256", func(b *testing.B) { benchAWSHeraldPublish(b, 256) })
	b.Run("HeraldBatch1000", benchAWSHeraldPublishBatch)
}

// benchAWSHeraldPublishBatch publishes in calls of 1,000 messages from one
// goroutine: the provider sends each call as PublishBatch requests of 10,
// several in flight.
func benchAWSHeraldPublishBatch(b *testing.B) {
	ctx := context.Background()
	e := newAWSEnv(b)
	pub, err := e.herald.Publisher(ctx, e.topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	bs := bodies(b.N)
	startTimer(b)
	if err := publishHerald(ctx, pub, bs, 1000); err != nil {
		b.Fatal(err)
	}
	stopTimer(b, b.N)
}

func benchAWSRawPublish(b *testing.B) {
	ctx := context.Background()
	e := newAWSEnv(b)
	bs := bodies(b.N)
	startTimer(b)
	for i := range b.N {
		if _, err := e.sns.Publish(ctx, &sns.PublishInput{
			TopicArn: aws.String(e.topicARN), Message: aws.String(string(bs[i])),
		}); err != nil {
			b.Fatal(err)
		}
	}
	stopTimer(b, b.N)
}

// benchAWSRawPublishBatch sends PublishBatch requests of 10, one at a
// time. With attrs, each message carries five string attributes like the
// CloudEvents attributes herald's envelope adds (id, type, source, time,
// specversion), to separate their cost on fauxqs from herald's own.
func benchAWSRawPublishBatch(b *testing.B, attrs bool) {
	ctx := context.Background()
	e := newAWSEnv(b)
	bs := bodies(b.N)
	startTimer(b)
	for i := 0; i < b.N; i += 10 {
		entries := make([]snstypes.PublishBatchRequestEntry, 0, 10)
		for j := i; j < min(i+10, b.N); j++ {
			entry := snstypes.PublishBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j)), Message: aws.String(string(bs[j])),
			}
			if attrs {
				entry.MessageAttributes = envelopeLikeAttributes(j)
			}
			entries = append(entries, entry)
		}
		out, err := e.sns.PublishBatch(ctx, &sns.PublishBatchInput{
			TopicArn: aws.String(e.topicARN), PublishBatchRequestEntries: entries,
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Failed) > 0 {
			b.Fatalf("PublishBatch: %d failed, the first: %s", len(out.Failed),
				aws.ToString(out.Failed[0].Message))
		}
	}
	stopTimer(b, b.N)
}

func envelopeLikeAttributes(i int) map[string]snstypes.MessageAttributeValue {
	str := func(v string) snstypes.MessageAttributeValue {
		return snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return map[string]snstypes.MessageAttributeValue{
		"ce-specversion": str("1.0"),
		"ce-id":          str(fmt.Sprintf("0190a3c4-7d2e-7000-8000-%012d", i)),
		"ce-type":        str("OrderPlaced"),
		"ce-source":      str("herald"),
		"ce-time":        str(time.Now().UTC().Format(time.RFC3339Nano)),
	}
}

func benchAWSGoCloudPublish(b *testing.B) {
	ctx := context.Background()
	e := newAWSEnv(b)
	topic := awssnssqs.OpenSNSTopic(ctx, e.sns, e.topicARN, nil)
	defer func() { _ = topic.Shutdown(ctx) }()
	bs := bodies(b.N)
	startTimer(b)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return topic.Send(ctx, &pubsub.Message{Body: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	stopTimer(b, b.N)
}

func benchAWSHeraldPublish(b *testing.B, workers int) {
	ctx := context.Background()
	e := newAWSEnv(b)
	pub, err := e.herald.Publisher(ctx, e.topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	bs := bodies(b.N)
	startTimer(b)
	if err := parallel(ctx, workers, b.N, func(ctx context.Context, i int) error {
		return pub.Publish(ctx, &herald.Message{Type: "OrderPlaced", Data: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	stopTimer(b, b.N)
}

// BenchmarkAWSEndToEnd measures SNS -> SQS -> handler on fauxqs: 16
// goroutines publish b.N (compare.sh: 2,000) 1 KiB messages one per call
// while 16 no-op handlers consume the topic's queue; the timer runs until
// the last message is handled.
func BenchmarkAWSEndToEnd(b *testing.B) {
	b.Run("GoCloud", benchAWSGoCloudEndToEnd)
	b.Run("Herald", benchAWSHeraldEndToEnd)
}

func benchAWSGoCloudEndToEnd(b *testing.B) {
	ctx := context.Background()
	e := newAWSEnv(b)
	topic := awssnssqs.OpenSNSTopic(ctx, e.sns, e.topicARN, nil)
	sub := awssnssqs.OpenSubscription(ctx, e.sqs, e.queueURL,
		&awssnssqs.SubscriptionOptions{Raw: true})
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

func benchAWSHeraldEndToEnd(b *testing.B) {
	e := newAWSEnv(b)
	heraldEndToEnd(b, e.herald, e.topic, "c")
}

// heraldEndToEnd publishes b.N messages from 16 goroutines, one per call,
// while a consumer with 16 handlers and the memory store handles them.
func heraldEndToEnd(b *testing.B, client *herald.Client, topic, consumer string) {
	ctx := context.Background()
	pub, err := client.Publisher(ctx, topic, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	bs := bodies(b.N)

	c := newCounter(b.N)
	startTimer(b)
	stop := runHerald(ctx, b, client, topic, consumer, idempotency.NewMemory(), c)
	if err := parallel(ctx, senders, b.N, func(ctx context.Context, i int) error {
		return pub.Publish(ctx, &herald.Message{Type: "OrderPlaced", Data: bs[i]})
	}); err != nil {
		b.Fatal(err)
	}
	<-c.done
	stopTimer(b, b.N)
	stop()
}
