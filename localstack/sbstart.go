package localstack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	sbemu "github.com/seed06bc8277/herald/localstack/servicebus"
	"github.com/seed06bc8277/herald/providers"
	sbprov "github.com/seed06bc8277/herald/providers/servicebus"
)

// EnvServiceBusConnectionString names the variable holding a Service Bus
// connection string: Azure's, or an emulator's (Microsoft's, or herald's
// started by `herald emulate servicebus`).
const EnvServiceBusConnectionString = sbprov.EnvConnectionString

// ServiceBus is a local Azure Service Bus: herald's emulator
// (localstack/servicebus) served in this process on a loopback port, or
// the namespace named by HERALD_SERVICEBUS_CONNECTION_STRING. Other
// processes on the machine can connect to the emulator while this
// process runs, with ConnectionString or URL.
type ServiceBus struct {
	// ConnectionString connects azservicebus to it. An emulator's has
	// UseDevelopmentEmulator=true and the emulators' placeholder key.
	ConnectionString string
	// URL opens herald on it: "azuresb://127.0.0.1:PORT". For the
	// in-process emulator it needs no variable (loopback hosts get the
	// emulator's key); for a namespace from the environment, the
	// provider reads the same variable.
	URL string
	// Emulator is the in-process emulator, or nil when the connection
	// string came from the environment.
	Emulator *sbemu.Emulator

	once sync.Once
}

// StartServiceBus returns a local Service Bus. When
// HERALD_SERVICEBUS_CONNECTION_STRING is set it uses that namespace;
// otherwise it starts herald's emulator in this process on a free port
// of 127.0.0.1. Microsoft's emulator through Docker is not wired in:
// start it yourself and set the variable.
func StartServiceBus(ctx context.Context) (*ServiceBus, error) {
	if cs := os.Getenv(EnvServiceBusConnectionString); cs != "" {
		host := endpointHost(cs)
		if host == "" {
			return nil, fmt.Errorf("localstack: %s has no Endpoint=sb://HOST",
				EnvServiceBusConnectionString)
		}
		return &ServiceBus{ConnectionString: cs, URL: "azuresb://" + host}, nil
	}
	return ServeServiceBus(ctx, "127.0.0.1:0", sbemu.Config{})
}

// ServeServiceBus starts herald's emulator in this process on addr (a
// loopback host:port; port 0 picks a free one) with the entities of cfg
// (a Config.json, see servicebus.WriteConfig), whatever the environment
// says: what `herald emulate servicebus` serves to other processes.
func ServeServiceBus(ctx context.Context, addr string, cfg sbemu.Config) (*ServiceBus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	em, err := sbemu.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("localstack: service bus emulator: %w", err)
	}
	if err := em.Listen(addr); err != nil {
		_ = em.Close()
		return nil, fmt.Errorf("localstack: service bus emulator: listen on %s: %w", addr, err)
	}
	return &ServiceBus{
		ConnectionString: em.ConnectionString(),
		URL:              "azuresb://" + em.Addr(),
		Emulator:         em,
	}, nil
}

// endpointHost returns the host[:port] of a connection string's
// Endpoint, or "" (never any other part: the string holds a key).
func endpointHost(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.EqualFold(k, "Endpoint") {
			if u, err := url.Parse(v); err == nil {
				return u.Host
			}
		}
	}
	return ""
}

// Options are the provider options for it: the connection string and,
// for the in-process emulator, an Admin that creates entities through
// the emulator's Go API (so Provision works as on Azure).
func (s *ServiceBus) Options() sbprov.Options {
	o := sbprov.Options{ConnectionString: s.ConnectionString}
	if s.Emulator != nil {
		o.Admin = &EmulatorAdmin{Emulator: s.Emulator}
	}
	return o
}

// Close stops the emulator if StartServiceBus started it, dropping every
// entity and message. It is safe to call more than once.
func (s *ServiceBus) Close() error {
	if s == nil || s.Emulator == nil {
		return nil
	}
	var err error
	s.once.Do(func() { err = s.Emulator.Close() })
	return err
}

// EmulatorAdmin administers herald's emulator through its Go API; it
// implements the Service Bus provider's Admin.
type EmulatorAdmin struct {
	Emulator *sbemu.Emulator
}

var _ sbprov.Admin = (*EmulatorAdmin)(nil)

// EnsureTopic creates the topic unless it exists. The emulator refuses a
// taken name with ErrInvalid, which here means the topic exists (no
// properties are passed that could be out of range).
func (a *EmulatorAdmin) EnsureTopic(_ context.Context, topic string) error {
	err := a.Emulator.CreateTopic(topic, sbemu.EntityProperties{})
	if err == nil || errors.Is(err, providers.ErrInvalid) {
		return nil
	}
	return fmt.Errorf("servicebus emulator: create topic %s: %w", topic, err)
}

// EnsureSubscription creates the subscription with its lock duration,
// MaxDeliveryCount, RequiresSession and SQL rule unless it exists.
func (a *EmulatorAdmin) EnsureSubscription(_ context.Context, topic, name string,
	spec sbprov.SubscriptionSpec) error {
	path := topic + "/Subscriptions/" + name
	if _, err := a.Emulator.Stats(path); err == nil {
		return nil
	}
	var rules []sbemu.Rule
	if spec.SQLFilter != "" {
		rules = append(rules, sbemu.Rule{Name: spec.RuleName, SQL: spec.SQLFilter})
	}
	err := a.Emulator.CreateSubscription(topic, name, sbemu.EntityProperties{
		LockDuration:     spec.LockDuration.Round(time.Millisecond),
		MaxDeliveryCount: spec.MaxDeliveryCount,
		RequiresSession:  spec.RequiresSession,
	}, rules...)
	if err != nil {
		if _, serr := a.Emulator.Stats(path); serr == nil {
			return nil // created meanwhile
		}
		return fmt.Errorf("servicebus emulator: create subscription %s: %w", path, err)
	}
	return nil
}

// DeadLetterCount counts every letter of the subscription's dead-letter
// queue.
func (a *EmulatorAdmin) DeadLetterCount(_ context.Context, topic, name string) (int, error) {
	n, err := a.Emulator.Count(topic + "/Subscriptions/" + name + "/$DeadLetterQueue")
	if err != nil {
		return 0, fmt.Errorf("servicebus emulator: count dead letters of %s/Subscriptions/%s: %w",
			topic, name, err)
	}
	return n, nil
}
