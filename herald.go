// Package herald is a cloud-agnostic SDK for event-driven messaging.
//
// A producer publishes a fact ("OrderPlaced") once to a topic; every
// consumer of the topic gets its own copy and reacts at its own pace, so a
// slow or broken consumer never blocks the producer or the other
// consumers. The same code runs on AWS (SNS fan-out to one SQS queue per
// consumer), Google Cloud Pub/Sub, Azure Service Bus and an in-process
// provider, chosen by a URL:
//
//	mem://                                   in process (the default)
//	snssqs://?region=eu-west-1               AWS SNS -> SQS
//	gcppubsub://my-project                   Google Cloud Pub/Sub
//	azuresb://my-namespace                   Azure Service Bus
//
// Delivery is at least once on every cloud; herald's consumer loop makes
// effects exactly once. For every message it:
//
//  1. receives in batches, never more in flight than Concurrency;
//  2. decodes the envelope, dead-lettering what is not one ("malformed");
//  3. claims the idempotency key "<consumer>/<message ID>", acking
//     duplicates of a completed message without running the handler;
//  4. runs the handler while extending the provider's lease;
//  5. on success marks the key completed and only then acks;
//  6. on failure releases the key and retries after an exponential
//     backoff with jitter, or dead-letters with the reason when the error
//     is Permanent or the attempts are used up;
//  7. handles messages with the same OrderingKey one at a time, in order;
//  8. on shutdown stops receiving, lets handlers finish within the drain
//     timeout and gives back the rest unacked.
//
// Dead letters keep the message and gain the reason; package dlq lists and
// redrives them back to the consumer that failed.
package herald

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/seed06bc8277/herald/providers"
	_ "github.com/seed06bc8277/herald/providers/memory" // registers mem://
)

// EnvURL is the environment variable Open reads when given no URL.
const EnvURL = "HERALD_URL"

// DefaultURL is the provider Open uses when neither its argument nor
// HERALD_URL names one: an in-process provider private to the client.
const DefaultURL = "mem://"

// Client is a connection to one provider. Publishers and consumers made
// from it share the connection. It is safe for concurrent use.
type Client struct {
	provider providers.Provider
	limits   providers.Limits
	scheme   string

	mu     sync.Mutex
	closed bool
}

// Open connects to the provider the URL names by its scheme. An empty
// rawURL means $HERALD_URL, else DefaultURL. Schemes other than mem://
// are registered by importing the provider's package, for example
//
//	import _ "github.com/seed06bc8277/herald/providers/snssqs"
//
// An unknown scheme's error wraps ErrInvalid and lists the known ones.
// Credentials never come from the URL; see each provider's package.
func Open(ctx context.Context, rawURL string) (*Client, error) {
	if rawURL == "" {
		rawURL = os.Getenv(EnvURL)
	}
	if rawURL == "" {
		rawURL = DefaultURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, which may hold a secret by mistake:
		// say only what is wrong.
		return nil, fmt.Errorf("%w: provider URL does not parse: %v", ErrInvalid, unwrapURLError(err))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: provider URL has no scheme (want mem://, snssqs://, "+
			"gcppubsub:// or azuresb://)", ErrInvalid)
	}
	open, err := providers.Lookup(u.Scheme)
	if err != nil {
		return nil, err
	}
	p, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("herald: open %s://: %w", u.Scheme, err)
	}
	c := NewClient(p)
	c.scheme = u.Scheme
	return c, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// NewClient returns a client over a provider opened directly, for
// providers built with options that a URL cannot carry.
func NewClient(p providers.Provider) *Client {
	return &Client{provider: p, limits: p.Limits()}
}

// Provider returns the client's provider, for packages that work on it
// directly (dlq, provisioning).
func (c *Client) Provider() providers.Provider { return c.provider }

// Provision creates the topic, its consumers' queues or subscriptions and
// their dead-letter queues, idempotently. It returns an error wrapping
// ErrInvalid when the provider cannot provision.
func (c *Client) Provision(ctx context.Context, t providers.Topology) error {
	p, ok := c.provider.(providers.Provisioner)
	if !ok {
		return fmt.Errorf("%w: provider %T cannot provision", ErrInvalid, c.provider)
	}
	if err := validateName("topic", t.Topic); err != nil {
		return err
	}
	for _, name := range t.Consumers {
		if err := validateName("consumer", name); err != nil {
			return err
		}
	}
	return p.Provision(ctx, t)
}

// Close closes the provider. Publishers and consumers should be closed
// first; their later calls fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.provider.Close()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// validateName checks a topic or consumer name: 1 to 80 characters of
// letters, digits, '-', '_' and '.', which every cloud accepts once
// suffixes such as "-dlq" are added.
func validateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalid, kind)
	}
	if len(name) > 80 {
		return fmt.Errorf("%w: %s name %q is longer than 80 characters", ErrInvalid, kind, name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !nameRune(r) }); i >= 0 {
		return fmt.Errorf("%w: %s name %q has %q; use letters, digits, '-', '_' and '.'",
			ErrInvalid, kind, name, name[i:i+1])
	}
	return nil
}

func nameRune(r rune) bool {
	return r == '-' || r == '_' || r == '.' ||
		('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
}
