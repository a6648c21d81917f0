package herald

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// Handler handles one message. Returning nil means the message's effects
// are done: the consumer records it and acks it. Returning an error makes
// the consumer retry it later, or dead-letter it when the error is
// Permanent or the attempts are used up. A panic counts as an error.
//
// The context is cancelled when the run outlives
// ConsumerOptions.HandlerTimeout (within a second; context.Cause is then
// ErrHandlerTimeout) or when the consumer's drain timeout runs out at
// shutdown. It carries no deadline.
type Handler func(ctx context.Context, m *Message) error

// ConsumerOptions tune a Consumer. The zero value gives the documented
// defaults.
type ConsumerOptions struct {
	// Concurrency is how many messages are in flight at once (received
	// and not yet settled), and so how many handlers run at once.
	// Default 16.
	Concurrency int
	// BatchSize is the most messages asked for in one receive; the
	// provider may cap it (SQS at 10). Default 64.
	BatchSize int
	// MaxAttempts is how many times a message is tried before it is
	// dead-lettered with reason "max-attempts". Default 5.
	MaxAttempts int
	// Backoff is the delay schedule between attempts (see Backoff).
	Backoff Backoff
	// Lease is the provider lease taken on each delivery; it is extended
	// while the handler runs, so a slow handler is not redelivered under
	// it. Providers whose cloud fixes it per subscription ignore it.
	// Default 30 s.
	Lease time.Duration
	// HandlerTimeout bounds one handler run; it is also the idempotency
	// claim's lease, so a consumer that crashes mid-handler holds the
	// message's key this long before another may run it. Default 5 min.
	HandlerTimeout time.Duration
	// Store records handled messages so that a duplicate delivery never
	// runs the handler twice. Default: an idempotency.Memory private to
	// this consumer, which dedupes only within this process; consumers on
	// several hosts need a shared store (idempotency/redis,
	// idempotency/postgres).
	Store idempotency.Store
	// Retention is how long a handled message's key is kept, and so how
	// late a duplicate is still recognised. Default 7 days.
	Retention time.Duration
	// DrainTimeout is how long shutdown waits for running handlers
	// before it cancels them and gives their messages back. Default 30 s.
	DrainTimeout time.Duration
	// Logger receives the consumer's warnings (dead letters, store and
	// provider errors). Default slog.Default().
	Logger *slog.Logger
}

func (o ConsumerOptions) withDefaults() ConsumerOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 64
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.HandlerTimeout <= 0 {
		o.HandlerTimeout = 5 * time.Minute
	}
	if o.Store == nil {
		o.Store = idempotency.NewMemory()
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Consumer runs a Handler for every message of one named consumer of a
// topic. Each consumer of a topic gets every message; the replicas of one
// consumer (same name, any process) share them.
type Consumer struct {
	client  *Client
	topic   string
	name    string
	handler Handler
	opts    ConsumerOptions
	stats   counters

	started atomic.Bool
}

// Consumer returns a consumer named name of the topic; Run starts it. The
// error wraps ErrInvalid for a bad name or a nil handler.
func (c *Client) Consumer(topic, name string, h Handler, opts *ConsumerOptions) (*Consumer, error) {
	if err := validateName("topic", topic); err != nil {
		return nil, err
	}
	if err := validateName("consumer", name); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: consumer %q of %q: nil handler", ErrInvalid, name, topic)
	}
	var o ConsumerOptions
	if opts != nil {
		o = *opts
	}
	return &Consumer{client: c, topic: topic, name: name, handler: h, opts: o.withDefaults()}, nil
}

// Name returns the consumer's name.
func (c *Consumer) Name() string { return c.name }

// Run receives and handles messages until ctx ends, then drains: it stops
// receiving, lets running handlers finish within DrainTimeout, and gives
// back unacked whatever did not finish. It returns nil after a drain that
// ctx asked for, or the error that stopped it (a missing topic or consumer
// wraps ErrNotFound). A Consumer runs once: a second Run fails with
// ErrInvalid.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: consumer %q of %q is already running or has run", ErrInvalid, c.name, c.topic)
	}
	if c.client.isClosed() {
		return fmt.Errorf("herald: consumer %q of %q: %w", c.name, c.topic, ErrClosed)
	}
	sub, err := c.client.provider.OpenSubscription(ctx, c.topic, c.name, providers.SubscriptionOptions{
		Lease:       c.opts.Lease,
		MaxInFlight: c.opts.Concurrency,
	})
	if err != nil {
		return fmt.Errorf("herald: consumer %q of %q: %w", c.name, c.topic, err)
	}
	l := newLoop(c, sub)
	err = l.run(ctx)
	if cerr := sub.Close(); err == nil && cerr != nil && !errors.Is(cerr, ErrClosed) {
		err = fmt.Errorf("herald: consumer %q of %q: close: %w", c.name, c.topic, cerr)
	}
	return err
}

// Stats are a consumer's counts since it started.
type Stats struct {
	// Received counts deliveries, duplicates and redeliveries included.
	Received int64
	// Handled counts handler runs that succeeded (and were acked).
	Handled int64
	// Duplicates counts deliveries acked without running the handler
	// because their ID was already handled.
	Duplicates int64
	// Failed counts handler runs that returned an error or panicked.
	Failed int64
	// Retried counts failed messages given back to be tried again.
	Retried int64
	// DeadLettered counts messages moved to the dead-letter queue, for
	// any reason.
	DeadLettered int64
	// Malformed counts deliveries that were not herald envelopes.
	Malformed int64
	// Conflicts counts IDs reused with another payload.
	Conflicts int64
}

type counters struct {
	received, handled, duplicates, failed, retried, deadLettered, malformed, conflicts atomic.Int64
}

// Stats returns the consumer's counts so far.
func (c *Consumer) Stats() Stats {
	s := &c.stats
	return Stats{
		Received: s.received.Load(), Handled: s.handled.Load(), Duplicates: s.duplicates.Load(),
		Failed: s.failed.Load(), Retried: s.retried.Load(), DeadLettered: s.deadLettered.Load(),
		Malformed: s.malformed.Load(), Conflicts: s.conflicts.Load(),
	}
}

// fingerprint identifies a message's payload, so that an ID reused for a
// different payload is caught as a conflict rather than skipped as a
// duplicate. Two hardware-accelerated CRC-32s make 64 bits; it must be the
// same in every process, so no seeded hash.
func fingerprint(m *Message) uint64 {
	// The type is short: FNV-1a over it seeds the first CRC, with no
	// conversion to []byte (which would allocate).
	seed := uint32(2166136261)
	for i := 0; i < len(m.Type); i++ {
		seed = (seed ^ uint32(m.Type[i])) * 16777619
	}
	hi := crc32.Update(seed, castagnoli, m.Data)
	lo := crc32.ChecksumIEEE(m.Data)
	return uint64(hi)<<32 | uint64(lo)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
