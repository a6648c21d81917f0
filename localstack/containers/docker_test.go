package containers

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/gcppubsub"
	"github.com/seed06bc8277/herald/providers/providertest"
	sbprov "github.com/seed06bc8277/herald/providers/servicebus"
	"github.com/seed06bc8277/herald/providers/snssqs"
)

// The tests in this file start containers. They run only with
// HERALD_DOCKER=1 and a Docker engine that answers, and skip otherwise:
// never under localstack.Unavailable, since CI has no Docker and sets
// HERALD_REQUIRE_ALL=1. None of them has run in herald's CI.

// needDocker skips the test unless HERALD_DOCKER=1 and an engine answers.
func needDocker(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvDocker) != "1" {
		t.Skipf("starts containers: set %s=1 (and run a Docker engine) to run it", EnvDocker)
	}
	if err := DockerAvailable(context.Background()); err != nil {
		t.Skipf("%s=1, but %v", EnvDocker, err)
	}
}

// startContextFor bounds a test's container start (pulls included).
func startContextFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	t.Cleanup(cancel)
	return ctx
}

// closeAtEnd closes c when the test ends and reports a failure to.
func closeAtEnd(t *testing.T, what string, c interface{ Close() error }) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", what, err)
		}
	})
}

// TestLocalStackConformance runs herald's conformance suite against
// LocalStack, after publishing once by its URL.
func TestLocalStackConformance(t *testing.T) {
	needDocker(t)
	l, err := StartLocalStack(startContextFor(t))
	if err != nil {
		t.Fatalf("%v (current LocalStack images need %s)", err, EnvLocalStackAuthToken)
	}
	closeAtEnd(t, "LocalStack", l)
	newProvider := func(t *testing.T) providers.Provider {
		p, err := snssqs.New(context.Background(), l.Options())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	publishByURL(t, l.URL, newProvider(t))
	providertest.Run(t, providertest.Config{NewProvider: newProvider, Lease: time.Second})
}

// TestPubSubEmulatorConformance runs herald's conformance suite against
// Google's Pub/Sub emulator, after publishing once by its URL.
func TestPubSubEmulatorConformance(t *testing.T) {
	needDocker(t)
	e, err := StartPubSubEmulator(startContextFor(t))
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, "the Pub/Sub emulator", e)
	newProvider := func(t *testing.T) providers.Provider {
		p, err := gcppubsub.New(context.Background(), e.Options())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	publishByURL(t, e.URL, newProvider(t))
	providertest.Run(t, providertest.Config{NewProvider: newProvider, Lease: time.Second})
}

// publishByURL provisions a topic with p, publishes one message through
// herald.Open(url), receives it with p and acks it.
func publishByURL(t *testing.T, url string, p providers.Provider) {
	t.Helper()
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	top := providers.Topology{Topic: "docker-url", Consumers: []string{"smoke"},
		MaxAttempts: 3, Lease: 10 * time.Second}
	if err := p.(providers.Provisioner).Provision(ctx, top); err != nil {
		t.Fatalf("Provision: %v", err)
	}

	c, err := herald.Open(ctx, url)
	if err != nil {
		t.Fatalf("herald.Open(%s): %v", url, err)
	}
	defer c.Close()
	pub, err := c.Publisher(ctx, top.Topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	msg := &herald.Message{ID: "docker-url-1", Type: "DockerSmoke", Data: []byte("hello")}
	if err := pub.Publish(ctx, msg); err != nil {
		t.Fatalf("Publish by URL: %v", err)
	}

	sub, err := p.OpenSubscription(ctx, top.Topic, "smoke",
		providers.SubscriptionOptions{Lease: top.Lease, MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	d := receiveOne(ctx, t, sub)
	if err := sub.Ack(ctx, d); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

// receiveOne polls sub until a delivery comes or ctx ends.
func receiveOne(ctx context.Context, t *testing.T, sub interface {
	ReceiveBatch(context.Context, int) ([]*providers.Delivery, error)
}) *providers.Delivery {
	t.Helper()
	for {
		ds, err := sub.ReceiveBatch(ctx, 1)
		if err != nil {
			t.Fatalf("ReceiveBatch: %v", err)
		}
		if len(ds) > 0 {
			return ds[0]
		}
	}
}

// TestServiceBusEmulatorSendReceiveDeadLetter checks Microsoft's emulator
// on a fixed topology written into its Config.json before it starts. The
// conformance suite cannot run there: it provisions fresh names per test,
// and this emulator creates entities only from its Config.json. So this
// smaller test publishes two messages by URL, receives both, acks one,
// dead-letters the other with herald's reason, and reads that reason back
// from the dead-letter queue.
func TestServiceBusEmulatorSendReceiveDeadLetter(t *testing.T) {
	needDocker(t)
	top := providers.Topology{Topic: "herald-docker", Consumers: []string{"worker"},
		MaxAttempts: 3, Lease: 5 * time.Second}
	var cfg bytes.Buffer
	if err := sbprov.WriteConfig(&cfg, top); err != nil {
		t.Fatal(err)
	}
	s, err := StartServiceBusEmulator(startContextFor(t), cfg.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, "the Service Bus emulator", s)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := sbprov.New(ctx, s.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Provision(ctx, top); err != nil {
		t.Fatalf("Provision (checks the Config.json's entities): %v", err)
	}

	// Publish by URL, as another process would.
	c, err := herald.Open(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pub, err := c.Publisher(ctx, top.Topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(ctx,
		&herald.Message{ID: "keep-1", Type: "DockerSmoke", Data: []byte("keep")},
		&herald.Message{ID: "dead-1", Type: "DockerSmoke", Data: []byte("dead")},
	); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// Receive both; ack one, dead-letter the other.
	sub, err := p.OpenSubscription(ctx, top.Topic, "worker",
		providers.SubscriptionOptions{Lease: top.Lease, MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := map[string]*providers.Delivery{}
	for len(got) < 2 {
		d := receiveOne(ctx, t, sub)
		got[d.ID] = d
	}
	if got["keep-1"] == nil || got["dead-1"] == nil {
		t.Fatalf("received IDs %v, want keep-1 and dead-1", keys(got))
	}
	if err := sub.Ack(ctx, got["keep-1"]); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	why := providers.DeadLetter{Reason: providers.ReasonPermanent, Error: "docker test",
		Attempts: 1, Consumer: "worker", Time: time.Now().UTC().Truncate(time.Second)}
	if err := sub.DeadLetter(ctx, got["dead-1"], why); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}

	// The letter is in the dead-letter queue with herald's reason.
	dlq, err := p.OpenDeadLetters(ctx, top.Topic, "worker")
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	letter := receiveOne(ctx, t, dlq)
	dl, ok := providers.ParseDeadLetter(letter.Attributes)
	if letter.ID != "dead-1" || !ok || dl.Reason != providers.ReasonPermanent ||
		dl.Consumer != "worker" {
		t.Fatalf("dead letter %s with %+v (found: %v), want dead-1, reason %s, consumer worker",
			letter.ID, dl, ok, providers.ReasonPermanent)
	}
	if err := dlq.Ack(ctx, letter); err != nil {
		t.Fatalf("Ack the dead letter: %v", err)
	}
}

func keys(m map[string]*providers.Delivery) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
