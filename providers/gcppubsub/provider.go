package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed06bc8277/herald/providers"
)

// Scheme is the URL scheme this package registers: gcppubsub://PROJECT.
const Scheme = "gcppubsub"

// EnvEmulatorHost is the standard variable naming a Pub/Sub emulator's
// host:port. When it is set and Options.Endpoint is empty, the provider
// talks to that emulator, as Google's client libraries do.
const EnvEmulatorHost = "PUBSUB_EMULATOR_HOST"

// Pub/Sub's own limits, checked before a message is sent so that a bad
// message fails alone with a clear error.
const (
	// MaxMessageBytes is the largest message Pub/Sub accepts: data plus
	// attribute names and values plus the ordering key.
	MaxMessageBytes = 10_000_000
	// MaxAttributes is how many attributes a message may carry.
	MaxAttributes = 100
	// MaxAttributeKeyBytes is the longest attribute name.
	MaxAttributeKeyBytes = 256
	// MaxAttributeValueBytes is the longest attribute value.
	MaxAttributeValueBytes = 1024
	// MaxOrderingKeyBytes is the longest ordering key.
	MaxOrderingKeyBytes = 1024
	// maxAckDeadline is the longest ack deadline Pub/Sub accepts.
	maxAckDeadline = 600 * time.Second
	// minSubscriptionAckDeadline is the shortest ack deadline a
	// subscription may be created with.
	minSubscriptionAckDeadline = 10 * time.Second
)

// The defaults of Options.
const (
	// DefaultPublishCount is the default Options.PublishCount.
	DefaultPublishCount = 100
	// DefaultPublishBytes is the default Options.PublishBytes.
	DefaultPublishBytes = 1_000_000
	// DefaultPublishDelay is the default Options.PublishDelay.
	DefaultPublishDelay = time.Millisecond
	// DefaultLease is the ack deadline Provision gives subscriptions
	// when Topology.Lease is 0; it matches herald's default consumer
	// lease, so that a default consumer needs no extra call per batch.
	DefaultLease = 30 * time.Second
	// DefaultRetryMinBackoff is the default Options.RetryMinBackoff.
	DefaultRetryMinBackoff = time.Second
	// DefaultRetryMaxBackoff is the default Options.RetryMaxBackoff.
	DefaultRetryMaxBackoff = 10 * time.Second
)

// Options configure a provider made with New.
type Options struct {
	// Project is the Google Cloud project ID. Required.
	Project string
	// Endpoint is an emulator's host:port (pstest, Google's emulator).
	// When set, the provider connects without TLS and without
	// credentials. When empty, PUBSUB_EMULATOR_HOST is used if set, and
	// otherwise Pub/Sub itself with Application Default Credentials.
	Endpoint string
	// ClientOptions are passed to the Pub/Sub client after herald's own
	// (credentials, a custom endpoint); ignored with an emulator.
	ClientOptions []option.ClientOption

	// PublishCount is how many messages the client gathers into one
	// Publish call at most. Default 100, at most 1000 (Pub/Sub's limit).
	PublishCount int
	// PublishBytes is how many bytes the client gathers into one Publish
	// call before sending it. Default 1,000,000.
	PublishBytes int
	// PublishDelay is how long the client waits for more messages
	// before it sends a Publish call that is neither full by count nor
	// by bytes. Default 1 ms: SendBatch hands its whole batch to the
	// client at once, so the delay only gathers concurrent batches; the
	// client library's own default (10 ms) would add 10 ms to every
	// small batch.
	PublishDelay time.Duration

	// RetryMinBackoff and RetryMaxBackoff are the retry policy Provision
	// gives subscriptions: Pub/Sub waits at least this long (growing
	// exponentially to the maximum) before it redelivers a message whose
	// ack deadline passed. The wait adds to herald's own retry backoff,
	// which is applied with the ack deadline (see Subscription.Nack), so
	// they are kept short. Defaults 1 s and 10 s (a negative minimum
	// means 0: redeliver at once); Pub/Sub allows 0 to 600 s. pstest
	// ignores retry policies.
	RetryMinBackoff time.Duration
	RetryMaxBackoff time.Duration
}

func (o *Options) setDefaults() error {
	if o.Project == "" {
		return fmt.Errorf("%w: gcppubsub: no project: use gcppubsub://PROJECT", providers.ErrInvalid)
	}
	if o.PublishCount <= 0 {
		o.PublishCount = DefaultPublishCount
	}
	if o.PublishCount > pubsub.MaxPublishRequestCount {
		o.PublishCount = pubsub.MaxPublishRequestCount
	}
	if o.PublishBytes <= 0 {
		o.PublishBytes = DefaultPublishBytes
	}
	if o.PublishDelay <= 0 {
		o.PublishDelay = DefaultPublishDelay
	}
	switch {
	case o.RetryMinBackoff == 0:
		o.RetryMinBackoff = DefaultRetryMinBackoff
	case o.RetryMinBackoff < 0:
		o.RetryMinBackoff = 0
	}
	if o.RetryMaxBackoff == 0 {
		o.RetryMaxBackoff = max(DefaultRetryMaxBackoff, o.RetryMinBackoff)
	}
	if o.RetryMaxBackoff < 0 || o.RetryMaxBackoff > maxAckDeadline ||
		o.RetryMinBackoff > o.RetryMaxBackoff {
		return fmt.Errorf("%w: gcppubsub: retry backoff %v..%v: want 0 <= min <= max <= 600s",
			providers.ErrInvalid, o.RetryMinBackoff, o.RetryMaxBackoff)
	}
	return nil
}

func init() {
	providers.Register(Scheme, openURL)
}

// openURL opens gcppubsub://PROJECT[?endpoint=HOST:PORT].
func openURL(ctx context.Context, u *url.URL) (providers.Provider, error) {
	o := Options{Project: u.Host}
	for k, v := range u.Query() {
		switch k {
		case "endpoint":
			o.Endpoint = v[len(v)-1]
		default:
			return nil, fmt.Errorf("%w: gcppubsub: unknown URL parameter %q (known: endpoint)",
				providers.ErrInvalid, k)
		}
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%w: gcppubsub: URL has a path %q: use gcppubsub://PROJECT",
			providers.ErrInvalid, u.Path)
	}
	return New(ctx, o)
}

// Provider is a connection to Google Cloud Pub/Sub or an emulator. It
// implements providers.Provider, providers.Provisioner and
// providers.DeadLetterSource, and is safe for concurrent use.
type Provider struct {
	opts   Options
	client *pubsub.Client
	where  string // "Pub/Sub" or "the emulator at HOST", for errors

	mu     sync.Mutex
	closed bool
}

var (
	_ providers.Provider         = (*Provider)(nil)
	_ providers.Provisioner      = (*Provider)(nil)
	_ providers.DeadLetterSource = (*Provider)(nil)
)

// New connects to Pub/Sub (or the emulator Options.Endpoint or
// PUBSUB_EMULATOR_HOST names). With an emulator it first checks that the
// emulator listens, and returns an error wrapping ErrUnavailable that
// names it when it does not.
func New(ctx context.Context, o Options) (*Provider, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = os.Getenv(EnvEmulatorHost)
	}

	var copts []option.ClientOption
	where := "Pub/Sub"
	if endpoint != "" {
		where = "the Pub/Sub emulator at " + endpoint
		if err := checkListening(ctx, endpoint); err != nil {
			return nil, fmt.Errorf("%w: gcppubsub: %s is not listening: %v",
				providers.ErrUnavailable, where, err)
		}
		copts = []option.ClientOption{
			option.WithEndpoint(endpoint),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithTelemetryDisabled(),
		}
	} else {
		copts = o.ClientOptions
	}

	client, err := pubsub.NewClient(ctx, o.Project, copts...)
	if err != nil {
		return nil, fmt.Errorf("%w: gcppubsub: connect to %s for project %q: %v",
			providers.ErrUnavailable, where, o.Project, err)
	}
	return &Provider{opts: o, client: client, where: where}, nil
}

func checkListening(ctx context.Context, hostport string) error {
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return err
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Limits reports Pub/Sub's limits: 100 attributes and 10,000,000 bytes a
// message.
func (p *Provider) Limits() providers.Limits {
	return providers.Limits{MaxAttributes: MaxAttributes, MaxMessageBytes: MaxMessageBytes}
}

// Project returns the project the provider works in.
func (p *Provider) Project() string { return p.opts.Project }

// Close closes the connection. Topics and subscriptions opened from the
// provider should be closed first; their later calls fail.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if err := p.client.Close(); err != nil {
		return fmt.Errorf("gcppubsub: close: %w", err)
	}
	return nil
}

func (p *Provider) checkOpen(op string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("%w: gcppubsub: %s: provider is closed", providers.ErrClosed, op)
	}
	return nil
}

func (p *Provider) topicPath(id string) string {
	return "projects/" + p.opts.Project + "/topics/" + id
}

func (p *Provider) subPath(id string) string {
	return "projects/" + p.opts.Project + "/subscriptions/" + id
}

// The Pub/Sub IDs of herald's logical names.
func subscriptionID(topic, consumer string) string { return topic + "-" + consumer }
func deadLetterID(topic, consumer string) string   { return topic + "-" + consumer + "-dlq" }

// checkID checks a topic or subscription ID against Pub/Sub's rules: 3 to
// 255 characters of letters, digits and -_.~+%, starting with a letter,
// not starting with "goog".
func checkID(kind, id string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: gcppubsub: %s ID %q %s", providers.ErrInvalid, kind, id, why)
	}
	switch {
	case len(id) < 3 || len(id) > 255:
		return bad("must be 3 to 255 characters")
	case !isLetter(id[0]):
		return bad("must start with a letter")
	case strings.HasPrefix(strings.ToLower(id), "goog"):
		return bad(`must not start with "goog"`)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isLetter(c) && !('0' <= c && c <= '9') && !strings.ContainsRune("-_.~+%", rune(c)) {
			return bad(fmt.Sprintf("has %q; use letters, digits and -_.~+%%", c))
		}
	}
	return nil
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// ceilSeconds converts d to whole seconds for an ack deadline, rounding
// up, between lo and 600 s.
func ceilSeconds(d, lo time.Duration) int32 {
	d = min(max(d, lo), maxAckDeadline)
	return int32((d + time.Second - 1) / time.Second)
}

var errClosedSub = errors.New("subscription is closed")
