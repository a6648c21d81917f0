package snssqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/seed06bc8277/herald/providers"
)

// The provisioning defaults.
const (
	// defaultMaxAttempts is herald's attempt limit when Topology gives
	// none.
	defaultMaxAttempts = 5
	// backstopMargin is how many receives past herald's limit SQS's
	// RedrivePolicy waits before it moves a message itself.
	backstopMargin = 5
	// dlqRetention keeps dead letters 14 days, SQS's longest.
	dlqRetention = 1209600
)

// Provision creates, idempotently, the SNS topic, and for each consumer
// its dead-letter queue, its queue (with a policy that lets only the topic
// send to it and a RedrivePolicy to the dead-letter queue after
// MaxAttempts+5 receives) and a raw-delivery subscription. Ordered
// creates FIFO resources ("T.fifo", "T-C.fifo", "T-C-dlq.fifo"). A queue
// that exists is left as it is. Lease sets the queues' VisibilityTimeout
// (rounded up to seconds; 0 means 30 s).
func (p *Provider) Provision(ctx context.Context, t providers.Topology) error {
	if err := p.checkOpen("provision topic " + t.Topic); err != nil {
		return err
	}
	if t.Topic == "" {
		return fmt.Errorf("%w: snssqs: provision: empty topic name", providers.ErrInvalid)
	}
	for _, c := range t.Consumers {
		for _, name := range []string{queueName(t.Topic, c, t.Ordered), dlqName(t.Topic, c, t.Ordered)} {
			if err := checkQueueName(name); err != nil {
				return err
			}
		}
	}
	maxAttempts := t.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = defaultMaxAttempts
	}
	lease := t.Lease
	if lease <= 0 {
		lease = defaultLease
	}

	// The topic.
	topic := topicName(t.Topic, t.Ordered)
	in := &sns.CreateTopicInput{Name: &topic}
	if t.Ordered {
		in.Attributes = map[string]string{"FifoTopic": "true", "ContentBasedDeduplication": "false"}
	}
	out, err := p.sns.CreateTopic(ctx, in)
	if err != nil {
		return wrap("CreateTopic", "topic "+topic, err)
	}
	topicARN := aws.ToString(out.TopicArn)

	for _, c := range t.Consumers {
		// The dead-letter queue first: the queue's RedrivePolicy names it.
		dlq := dlqName(t.Topic, c, t.Ordered)
		attrs := map[string]string{
			"MessageRetentionPeriod": strconv.Itoa(dlqRetention),
			"MaximumMessageSize":     strconv.Itoa(maxQueueMessageBytes),
		}
		if t.Ordered {
			attrs["FifoQueue"] = "true"
		}
		dlqURL, err := p.createQueue(ctx, dlq, attrs)
		if err != nil {
			return err
		}
		dlqARN, err := p.queueARN(ctx, dlq, dlqURL)
		if err != nil {
			return err
		}

		// The consumer's queue, which only the topic may send to.
		q := queueName(t.Topic, c, t.Ordered)
		acct, err := p.accountID(ctx)
		if err != nil {
			return err
		}
		qARN := "arn:" + partition(p.region) + ":sqs:" + p.region + ":" + acct + ":" + q
		redrive, _ := json.Marshal(map[string]string{
			"deadLetterTargetArn": dlqARN,
			"maxReceiveCount":     strconv.Itoa(maxAttempts + backstopMargin),
		})
		attrs = map[string]string{
			"VisibilityTimeout": strconv.Itoa(int(seconds(lease, 0, maxVisibility))),
			"RedrivePolicy":     string(redrive),
			"Policy":            queuePolicy(qARN, topicARN),
		}
		if t.Ordered {
			attrs["FifoQueue"] = "true"
		}
		qURL, err := p.createQueue(ctx, q, attrs)
		if err != nil {
			return err
		}
		if qARN, err = p.queueARN(ctx, q, qURL); err != nil {
			return err
		}

		// The subscription, raw: the body and attributes arrive as sent.
		_, err = p.sns.Subscribe(ctx, &sns.SubscribeInput{
			TopicArn: &topicARN, Protocol: aws.String("sqs"), Endpoint: &qARN,
			Attributes:            map[string]string{"RawMessageDelivery": "true"},
			ReturnSubscriptionArn: true,
		})
		if err != nil {
			return wrap("Subscribe", "queue "+q+" to topic "+topic, err)
		}
	}
	return nil
}

// queuePolicy lets the topic, and nothing else, send to the queue.
func queuePolicy(queueARN, topicARN string) string {
	type statement struct {
		Sid       string
		Effect    string
		Principal map[string]string
		Action    string
		Resource  string
		Condition map[string]map[string]string
	}
	b, _ := json.Marshal(struct {
		Version   string
		Statement []statement
	}{
		Version: "2012-10-17",
		Statement: []statement{{
			Sid:       "herald-topic-sends",
			Effect:    "Allow",
			Principal: map[string]string{"Service": "sns.amazonaws.com"},
			Action:    "sqs:SendMessage",
			Resource:  queueARN,
			Condition: map[string]map[string]string{"ArnEquals": {"aws:SourceArn": topicARN}},
		}},
	})
	return string(b)
}

// createQueue creates the queue, or returns the URL of the one of that
// name that exists with other attributes.
func (p *Provider) createQueue(ctx context.Context, name string, attrs map[string]string,
) (string, error) {
	out, err := p.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err == nil {
		return aws.ToString(out.QueueUrl), nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "QueueNameExists", "QueueAlreadyExists", "AWS.SimpleQueueService.QueueNameExists":
			return p.queueURL(ctx, name)
		}
	}
	return "", wrap("CreateQueue", "queue "+name, err)
}

// queueARN asks SQS for a queue's ARN.
func (p *Provider) queueARN(ctx context.Context, name, url string) (string, error) {
	out, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", wrap("GetQueueAttributes", "queue "+name, err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}
