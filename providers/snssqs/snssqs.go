// Package snssqs is herald's AWS provider (snssqs://): a topic is an SNS
// topic and every consumer has its own SQS queue subscribed to it, so that
// consumers get their own copy of every message and never slow each other
// down.
//
// # Resources
//
//	logical                 AWS (standard)       AWS (Topology.Ordered)
//	topic T                 SNS topic T          SNS topic T.fifo
//	consumer C of T         SQS queue T-C        SQS queue T-C.fifo
//	dead letters of C       SQS queue T-C-dlq    SQS queue T-C-dlq.fifo
//
// Provision creates them idempotently: the queue of each consumer has a
// queue policy that lets only its topic send to it, a raw-delivery
// subscription, and a RedrivePolicy to its dead-letter queue whose
// maxReceiveCount is MaxAttempts+5, a backstop for messages herald never
// sees again (herald dead-letters first, with the reason). OpenTopic and
// OpenSubscription find the ".fifo" resources of a logical name too. SNS
// and SQS names allow no '.', so a '.' in a logical name becomes '_'; SQS
// queue names are at most 80 characters, "-dlq.fifo" included.
//
// # Sending
//
// SendBatch publishes with PublishBatch: at most 10 messages and 256 KiB a
// request, 8 requests in flight by default (Options.PublishConcurrency).
// On a standard topic the messages of concurrent SendBatch calls share
// requests, so that many one-message publishes still travel 10 a request
// when the load is high, without waiting when it is light.
// On FIFO topics the OrderingKey is the MessageGroupId and the message ID
// the MessageDeduplicationId (SNS drops a repeat within 5 minutes), and
// messages of one key travel in one lane, in order; a message without a
// key gets a group of its own.
//
// A message is at most 262,144 bytes: its body plus, per attribute, the
// name, the data type ("String") and the value, as SNS counts them. SNS
// and SQS carry at most 10 attributes. Bodies that are
// empty or not text that SQS accepts (valid UTF-8 without control
// characters other than tab, CR and LF) travel base64-encoded, marked in
// an attribute's data type, and count 4/3 of their size; empty attribute
// values are marked the same way, since SNS rejects them.
//
// # Receiving
//
// A subscription long-polls its queue (20 s, 10 messages a request), with
// up to MaxInFlight/10 receives in parallel (at most
// Options.MaxReceivers, 8 by default). Acks are coalesced into
// DeleteMessageBatch requests; nacks with a delay and lease extensions use
// ChangeMessageVisibilityBatch. The attempt is ApproximateReceiveCount.
// Raw deliveries and SNS JSON notifications (a subscription without raw
// delivery) decode to the same providers.Delivery. A settlement after the
// lease ended is refused with ErrLeaseLost before any request, since SQS
// itself accepts a stale receipt handle silently.
//
// # Credentials
//
// Credentials come from the AWS default chain (environment, shared
// config, SSO, web identity, container or instance role), never from the
// URL. Open a provider with
//
//	snssqs://?region=eu-west-1
//	snssqs://?region=us-east-1&endpoint=http://127.0.0.1:4566
//
// or call New with Options.
//
// # The local cloud
//
// Tests run against fauxqs 1.9.2 (localstack.StartAWS). What fauxqs does
// not do as AWS does, and how this package copes:
//
//   - it does not enforce queue policies (Provision's policy is stored
//     only, so the tests cannot prove that it keeps other senders out);
//   - DeleteMessageBatch reports success for a stale receipt handle, and
//     a visibility change succeeds until fauxqs notices the expiry (the
//     driver checks leases itself);
//   - it does not check the 10-attribute limit, attribute names, or the
//     10-entry and 256 KiB batch limits of SNS (the driver does);
//   - it publishes a batch's entries in the order of their form keys, so
//     entry 10 before entry 2 (FIFO batches hold at most 9 entries);
//   - it hands out one message per FIFO group at a time, where SQS hands
//     out several of a group in one receive;
//   - its cost per published message grows with the attributes a message
//     carries; on two shared cores it, not the driver, bounds throughput.
package snssqs

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/seed06bc8277/herald/providers"
)

// Scheme is the URL scheme this package registers with herald.
const Scheme = "snssqs"

// The limits of SNS and SQS that the driver enforces.
const (
	// MaxAttributes is how many message attributes SNS and SQS carry.
	MaxAttributes = 10
	// MaxMessageBytes is the largest SNS message: 256 KiB.
	MaxMessageBytes = 262144
	// maxBatchEntries is the most entries one batch request takes.
	maxBatchEntries = 10
	// maxBatchBytes is the most a PublishBatch request carries, all
	// entries together.
	maxBatchBytes = 262144
	// attrTypeString is the data type of herald's attributes; SNS counts
	// it in the message size.
	attrTypeString = "String"
)

// The defaults of Options.
const (
	// DefaultPublishConcurrency is how many PublishBatch requests a
	// topic keeps in flight.
	DefaultPublishConcurrency = 8
	// DefaultMaxReceivers bounds the parallel long polls of one
	// subscription.
	DefaultMaxReceivers = 8
)

func init() {
	providers.Register(Scheme, openURL)
}

// Options configure New.
type Options struct {
	// Region is the AWS region. Empty means the default chain's
	// (AWS_REGION, the shared config); New fails when neither gives one.
	Region string
	// Endpoint, when set, is the base URL for SNS, SQS and STS requests,
	// such as a local stand-in ("http://127.0.0.1:4566").
	Endpoint string
	// Config, when set, is used instead of loading the default chain, for
	// credentials set in code. Region and Endpoint still override it.
	Config *aws.Config
	// AccountID is the AWS account of the topics. Empty means the
	// caller's account, asked of STS once (GetCallerIdentity).
	AccountID string
	// PublishConcurrency is how many PublishBatch requests a topic keeps
	// in flight (a FIFO topic: each SendBatch call); 0 means 8.
	PublishConcurrency int
	// MaxReceivers bounds the parallel long polls of one subscription;
	// 0 means 8.
	MaxReceivers int
}

// Provider is a connection to SNS and SQS in one region. It implements
// providers.Provider, providers.Provisioner and providers.DeadLetterSource
// and is safe for concurrent use.
type Provider struct {
	sns    *sns.Client
	sqs    *sqs.Client
	sts    *sts.Client
	region string
	opts   Options
	// closeIdle closes the idle connections of the HTTP client this
	// provider made (none when Options.Config brought its own).
	closeIdle func()

	accountOnce sync.Mutex
	account     string

	mu     sync.Mutex
	closed bool
}

var (
	_ providers.Provider         = (*Provider)(nil)
	_ providers.Provisioner      = (*Provider)(nil)
	_ providers.DeadLetterSource = (*Provider)(nil)
)

// openURL opens snssqs://?region=R&endpoint=E. Every other part of the URL
// is refused, credentials above all: they come from the default chain.
func openURL(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if u.User != nil {
		return nil, fmt.Errorf("%w: snssqs:// URLs carry no credentials; "+
			"use the AWS default chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)", providers.ErrInvalid)
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%w: snssqs:// URL has a host or path %q; "+
			"want snssqs://?region=R&endpoint=E", providers.ErrInvalid, u.Host+u.Path)
	}
	var o Options
	for k, vs := range u.Query() {
		switch k {
		case "region":
			o.Region = vs[0]
		case "endpoint":
			o.Endpoint = vs[0]
		default:
			return nil, fmt.Errorf("%w: snssqs:// URL parameter %q is unknown "+
				"(known: region, endpoint)", providers.ErrInvalid, k)
		}
	}
	return New(ctx, o)
}

// New connects to SNS and SQS. It fails with an error wrapping ErrInvalid
// when no region is configured or the default chain finds no credentials.
// It sends no request to SNS or SQS.
func New(ctx context.Context, o Options) (*Provider, error) {
	if o.PublishConcurrency <= 0 {
		o.PublishConcurrency = DefaultPublishConcurrency
	}
	if o.MaxReceivers <= 0 {
		o.MaxReceivers = DefaultMaxReceivers
	}
	if o.Endpoint != "" {
		if u, err := url.Parse(o.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("%w: snssqs: endpoint %q is not an absolute URL",
				providers.ErrInvalid, o.Endpoint)
		}
	}

	// Enough idle connections for parallel publishes and long polls; the
	// SDK's default keeps 10 per host.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 256
	})
	// Throttling is retried (3 attempts with backoff), but without the
	// client-side retry quota, which fails calls on its own under load.
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.RateLimiter = ratelimit.None
		})
	}

	var cfg aws.Config
	var closeIdle func()
	if o.Config != nil {
		cfg = o.Config.Copy()
	} else {
		var err error
		cfg, err = config.LoadDefaultConfig(ctx, config.WithHTTPClient(hc),
			config.WithRetryer(retryer))
		if err != nil {
			return nil, fmt.Errorf("%w: snssqs: load AWS configuration: %v", providers.ErrInvalid, err)
		}
		// Freeze the client the configuration settled on (it may have
		// added a CA bundle), so that Close can reach its connections.
		if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
			cfg.HTTPClient = bc.Freeze()
		}
		if c, ok := cfg.HTTPClient.(interface{ CloseIdleConnections() }); ok {
			closeIdle = c.CloseIdleConnections
		}
	}
	if o.Region != "" {
		cfg.Region = o.Region
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("%w: snssqs: no AWS region: set ?region= in the URL, "+
			"Options.Region or AWS_REGION", providers.ErrInvalid)
	}
	if cfg.Credentials == nil {
		return nil, fmt.Errorf("%w: snssqs: no AWS credentials configured", providers.ErrInvalid)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("%w: snssqs: no AWS credentials in the default chain "+
			"(environment, shared config, SSO, role): %v", providers.ErrInvalid, err)
	}

	p := &Provider{
		sns: sns.NewFromConfig(cfg, func(so *sns.Options) {
			if o.Endpoint != "" {
				so.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
		sqs: sqs.NewFromConfig(cfg, func(so *sqs.Options) {
			if o.Endpoint != "" {
				so.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
		sts: sts.NewFromConfig(cfg, func(so *sts.Options) {
			if o.Endpoint != "" {
				so.BaseEndpoint = aws.String(o.Endpoint)
			}
		}),
		region:    cfg.Region,
		opts:      o,
		account:   o.AccountID,
		closeIdle: closeIdle,
	}
	return p, nil
}

// Limits reports SNS's limits: 10 attributes, 262,144 bytes a message,
// and 6 bytes per attribute for its data type ("String"). It asks for the
// envelope in structured mode (one CloudEvents JSON body): attributes are
// scarce on SNS and SQS and cost more to carry than the same bytes in the
// body (on fauxqs, five attributes cut batch publishing from about 8,700
// to 3,000 messages a second), and herald filters nothing on them there.
func (p *Provider) Limits() providers.Limits {
	return providers.Limits{
		MaxAttributes:     MaxAttributes,
		MaxMessageBytes:   MaxMessageBytes,
		AttributeOverhead: len(attrTypeString),
		Structured:        true,
	}
}

// Close marks the provider closed: later calls to open a topic or a
// subscription fail with ErrClosed, and idle connections are closed.
// Close topics and subscriptions first.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.closeIdle != nil {
		p.closeIdle()
	}
	return nil
}

func (p *Provider) checkOpen(op string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("snssqs: %s: %w", op, providers.ErrClosed)
	}
	return nil
}

// seconds rounds d up to whole seconds within [lo, hi], as SQS takes
// visibility timeouts.
func seconds(d time.Duration, lo, hi int32) int32 {
	s := int64((d + time.Second - 1) / time.Second)
	return int32(max(int64(lo), min(int64(hi), s)))
}
