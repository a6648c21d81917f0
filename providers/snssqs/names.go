package snssqs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/seed06bc8277/herald/providers"
)

// fifoSuffix ends the names of FIFO topics and queues.
const fifoSuffix = ".fifo"

// maxQueueName is SQS's limit on queue names, ".fifo" included.
const maxQueueName = 80

// cloudName maps a logical name onto SNS and SQS names, which allow
// letters, digits, '-' and '_' only: '.' becomes '_'. (So "a.b" and "a_b"
// share their resources; herald's names rarely hold dots.)
func cloudName(logical string) string {
	return strings.ReplaceAll(logical, ".", "_")
}

func fifo(name string, ordered bool) string {
	if ordered {
		return name + fifoSuffix
	}
	return name
}

// topicName is the SNS topic of logical topic t.
func topicName(t string, ordered bool) string { return fifo(cloudName(t), ordered) }

// queueName is the SQS queue of consumer c of topic t: "T-C".
func queueName(t, c string, ordered bool) string {
	return fifo(cloudName(t)+"-"+cloudName(c), ordered)
}

// dlqName is the dead-letter queue of consumer c of topic t: "T-C-dlq".
func dlqName(t, c string, ordered bool) string {
	return fifo(cloudName(t)+"-"+cloudName(c)+"-dlq", ordered)
}

// checkQueueName refuses names longer than SQS allows.
func checkQueueName(name string) error {
	if len(name) > maxQueueName {
		return fmt.Errorf("%w: SQS queue name %q is %d characters; SQS allows %d "+
			"(shorten the topic or consumer name)", providers.ErrInvalid, name, len(name), maxQueueName)
	}
	return nil
}

// partition is the ARN partition of a region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	}
	return "aws"
}

// accountID returns the topics' account: Options.AccountID, else the
// caller's, asked of STS once.
func (p *Provider) accountID(ctx context.Context) (string, error) {
	p.accountOnce.Lock()
	defer p.accountOnce.Unlock()
	if p.account != "" {
		return p.account, nil
	}
	out, err := p.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", wrap("GetCallerIdentity",
			"(the account of the topics; or set Options.AccountID)", err)
	}
	p.account = aws.ToString(out.Account)
	return p.account, nil
}

// topicARN is the ARN of the SNS topic named name.
func (p *Provider) topicARN(ctx context.Context, name string) (string, error) {
	acct, err := p.accountID(ctx)
	if err != nil {
		return "", err
	}
	return "arn:" + partition(p.region) + ":sns:" + p.region + ":" + acct + ":" + name, nil
}

// findTopic resolves logical topic t to its SNS topic, standard or FIFO.
// The error wraps ErrNotFound, naming both, when neither exists.
func (p *Provider) findTopic(ctx context.Context, t string) (arn string, ordered bool, err error) {
	for _, ordered := range []bool{false, true} {
		arn, err := p.topicARN(ctx, topicName(t, ordered))
		if err != nil {
			return "", false, err
		}
		_, err = p.sns.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: &arn})
		if err == nil {
			return arn, ordered, nil
		}
		if err = wrap("GetTopicAttributes", "topic "+arn, err); !errors.Is(err, providers.ErrNotFound) {
			return "", false, err
		}
	}
	return "", false, fmt.Errorf("snssqs: topic %q: %w: neither SNS topic %s nor %s exists "+
		"in %s (run herald provision)", t, providers.ErrNotFound,
		topicName(t, false), topicName(t, true), p.region)
}

// queueURL returns the URL of the queue named name.
func (p *Provider) queueURL(ctx context.Context, name string) (string, error) {
	out, err := p.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
	if err != nil {
		return "", wrap("GetQueueUrl", "queue "+name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// findQueue returns the URL of the first of names that exists; the error
// wraps ErrNotFound, naming them all, when none does.
func (p *Provider) findQueue(ctx context.Context, what string, names ...string,
) (url, name string, err error) {
	for _, name := range names {
		u, err := p.queueURL(ctx, name)
		if err == nil {
			return u, name, nil
		}
		if !errors.Is(err, providers.ErrNotFound) {
			return "", "", err
		}
	}
	return "", "", fmt.Errorf("snssqs: %s: %w: no SQS queue %s in %s (run herald provision)",
		what, providers.ErrNotFound, strings.Join(names, " or "), p.region)
}
