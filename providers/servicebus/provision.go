package servicebus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"

	"github.com/seed06bc8277/herald/providers"
)

// Provisioning figures.
const (
	// DefaultLease is the lock duration Provision gives subscriptions when
	// Topology.Lease is 0: herald's default consumer lease, 30 s.
	DefaultLease = 30 * time.Second
	// minLockDuration and maxLockDuration bound a lock duration on Azure.
	minLockDuration = 5 * time.Second
	maxLockDuration = 5 * time.Minute
	// backstopExtra is how many deliveries above herald's MaxAttempts
	// Service Bus allows (MaxDeliveryCount) before it dead-letters a
	// message itself, without herald's reason; at least 10, Service Bus's
	// default.
	backstopExtra = 5
	// maxSubscriptionName and maxTopicName are Service Bus's name limits.
	maxSubscriptionName = 50
	maxTopicName        = 260
	// RuleName names the rule Provision puts in place of "$Default".
	RuleName = "herald-target"
)

// Admin creates the topics and subscriptions herald needs and counts dead
// letters. The provider uses the administration client of azservicebus
// on Azure; herald's in-process emulator is administered through its Go
// API (localstack.ServiceBus.Admin), and an emulator reached only by URL
// through a checker that verifies that the entities of its Config.json
// exist. Implementations must be safe for concurrent use.
type Admin interface {
	// EnsureTopic creates the topic unless it exists.
	EnsureTopic(ctx context.Context, topic string) error
	// EnsureSubscription creates the subscription with spec unless it
	// exists; an existing subscription is left as it is.
	EnsureSubscription(ctx context.Context, topic, name string, spec SubscriptionSpec) error
	// DeadLetterCount returns how many letters the subscription's
	// dead-letter queue holds. An error wrapping errors.ErrUnsupported
	// makes the provider count by peeking instead.
	DeadLetterCount(ctx context.Context, topic, name string) (int, error)
}

// SubscriptionSpec is how Provision wants a subscription made.
type SubscriptionSpec struct {
	// LockDuration is the peek-lock duration (Topology.Lease, default
	// 30 s). On Azure it is rounded up to whole seconds within 5 s..5 min.
	LockDuration time.Duration
	// MaxDeliveryCount is Service Bus's own dead-letter backstop:
	// MaxAttempts + 5, at least 10.
	MaxDeliveryCount int
	// RuleName and SQLFilter are the one rule that replaces "$Default":
	// TargetFilter(consumer), named RuleName.
	RuleName  string
	SQLFilter string
	// RequiresSession is set for Topology.Ordered: the subscription hands
	// out each ordering key (SessionID) to one receiver at a time.
	RequiresSession bool `json:",omitempty"`
}

// TargetFilter is the SQL filter of consumer C's subscription: messages
// without a herald-target, or with herald-target = 'C' (redriven or
// delayed for C alone).
func TargetFilter(consumer string) string {
	return "[" + providers.AttrTarget + "] IS NULL OR [" + providers.AttrTarget + "] = '" +
		sqlQuote(consumer) + "'"
}

func sqlQuote(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Spec is the subscription Provision makes for one consumer of t.
func Spec(t providers.Topology, consumer string) SubscriptionSpec {
	lease := t.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	attempts := t.MaxAttempts
	if attempts <= 0 {
		attempts = 5
	}
	return SubscriptionSpec{
		LockDuration:     lease,
		MaxDeliveryCount: max(10, attempts+backstopExtra),
		RuleName:         RuleName,
		SQLFilter:        TargetFilter(consumer),
		RequiresSession:  t.Ordered,
	}
}

// Provision creates the topic and one subscription per consumer, each
// with the lock duration of t.Lease, MaxDeliveryCount above
// t.MaxAttempts and the herald-target rule instead of "$Default" (see
// Spec). It is idempotent and leaves existing entities as they are.
//
// Ordered topologies get subscriptions with RequiresSession, so that an
// ordering key is read by one consumer process at a time (see "Ordering"
// in the package doc). An existing subscription keeps its setting.
//
// Against an emulator reached by URL, Provision only checks that the
// entities exist and fails with ErrNotFound naming the first missing one;
// write the emulator's Config.json with WriteConfig.
func (p *Provider) Provision(ctx context.Context, t providers.Topology) error {
	if p.isClosed() {
		return fmt.Errorf("%w: servicebus: provision %s", providers.ErrClosed, t.Topic)
	}
	if t.Topic == "" || len(t.Topic) > maxTopicName {
		return fmt.Errorf("%w: servicebus: topic name %q must be 1 to %d characters",
			providers.ErrInvalid, t.Topic, maxTopicName)
	}
	for _, c := range t.Consumers {
		if c == "" || len(c) > maxSubscriptionName {
			return fmt.Errorf("%w: servicebus: consumer name %q must be 1 to %d characters "+
				"(a subscription name)", providers.ErrInvalid, c, maxSubscriptionName)
		}
	}
	if err := p.admin.EnsureTopic(ctx, t.Topic); err != nil {
		return err
	}
	for _, c := range t.Consumers {
		if err := p.admin.EnsureSubscription(ctx, t.Topic, c, Spec(t, c)); err != nil {
			return err
		}
	}
	return nil
}

// checker is the Admin of an emulator reached by URL: it cannot create
// entities, only check that they exist.
type checker struct{ p *Provider }

func (c *checker) EnsureTopic(ctx context.Context, topic string) error {
	s, err := c.p.openSender(ctx, topic)
	if err != nil {
		return c.hint(err)
	}
	closeSender(s)
	return nil
}

func (c *checker) EnsureSubscription(ctx context.Context, topic, name string,
	_ SubscriptionSpec) error {
	r, err := c.p.openReceiver(ctx, topic, name, 0)
	if err != nil && requiresSessions(err) {
		return nil // it exists, and requires sessions
	}
	if err != nil {
		return c.hint(err)
	}
	closeReceiver(r)
	return nil
}

func (c *checker) DeadLetterCount(context.Context, string, string) (int, error) {
	return 0, errors.ErrUnsupported
}

func (c *checker) hint(err error) error {
	if errors.Is(err, providers.ErrNotFound) {
		return fmt.Errorf("%w (the emulator at %s cannot create entities over AMQP: list them "+
			"in its Config.json, see servicebus.WriteConfig)", err, c.p.host)
	}
	return err
}

// azureAdmin is the Admin of a real namespace.
type azureAdmin struct {
	c    *admin.Client
	host string
}

func newAzureAdminFromConnectionString(cs string) (*azureAdmin, error) {
	c, err := admin.NewClientFromConnectionString(cs, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: servicebus: the administration client refused the "+
			"connection string", providers.ErrInvalid)
	}
	ci, _ := parseConnectionString(cs)
	return &azureAdmin{c: c, host: ci.host}, nil
}

func newAzureAdmin(ns string, cred azcore.TokenCredential) (*azureAdmin, error) {
	c, err := admin.NewClient(ns, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: servicebus: administration client for %s: %w",
			providers.ErrInvalid, ns, err)
	}
	return &azureAdmin{c: c, host: ns}, nil
}

func (a *azureAdmin) EnsureTopic(ctx context.Context, topic string) error {
	got, err := a.c.GetTopic(ctx, topic, nil)
	if err != nil {
		return adminErr("get topic", topic, err)
	}
	if got != nil {
		return nil
	}
	_, err = a.c.CreateTopic(ctx, topic, nil)
	if isConflict(err) {
		return nil // created meanwhile by someone else
	}
	return adminErr("create topic", topic, err)
}

func (a *azureAdmin) EnsureSubscription(ctx context.Context, topic, name string,
	spec SubscriptionSpec) error {
	path := subscriptionPath(topic, name)
	got, err := a.c.GetSubscription(ctx, topic, name, nil)
	if err != nil {
		return adminErr("get subscription", path, err)
	}
	if got != nil {
		return nil
	}
	lock := isoSeconds(min(max(spec.LockDuration, minLockDuration), maxLockDuration))
	mdc := int32(spec.MaxDeliveryCount)
	props := &admin.SubscriptionProperties{LockDuration: &lock, MaxDeliveryCount: &mdc}
	if spec.RequiresSession {
		props.RequiresSession = &spec.RequiresSession
	}
	if spec.SQLFilter != "" {
		props.DefaultRule = &admin.RuleProperties{
			Name:   spec.RuleName,
			Filter: &admin.SQLFilter{Expression: spec.SQLFilter},
		}
	}
	_, err = a.c.CreateSubscription(ctx, topic, name,
		&admin.CreateSubscriptionOptions{Properties: props})
	if isConflict(err) {
		return nil
	}
	return adminErr("create subscription", path, err)
}

func (a *azureAdmin) DeadLetterCount(ctx context.Context, topic, name string) (int, error) {
	path := subscriptionPath(topic, name)
	got, err := a.c.GetSubscriptionRuntimeProperties(ctx, topic, name, nil)
	if err != nil {
		return 0, adminErr("count dead letters of", path, err)
	}
	if got == nil {
		return 0, fmt.Errorf("%w: servicebus: count dead letters of %s: no such subscription",
			providers.ErrNotFound, path)
	}
	return int(got.DeadLetterMessageCount), nil
}

// isoSeconds formats d as an ISO 8601 duration of whole seconds, rounded
// up: "PT30S".
func isoSeconds(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	return fmt.Sprintf("PT%dS", s)
}

func isConflict(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusConflict
}

// adminErr maps an administration error onto herald's sentinels.
func adminErr(op, entity string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("servicebus: %s %s: %w", op, entity, err)
	}
	s := providers.ErrUnavailable
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusNotFound:
			s = providers.ErrNotFound
		case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			s = providers.ErrInvalid
			return fmt.Errorf("%w: servicebus: %s %s: HTTP %d: the credential lacks the "+
				"Manage right (provision with another, or create the entities yourself)",
				s, op, entity, re.StatusCode)
		case re.StatusCode == http.StatusBadRequest:
			s = providers.ErrInvalid
		}
	}
	return fmt.Errorf("%w: servicebus: %s %s: %w", s, op, entity, err)
}
