package servicebus_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	sbemu "github.com/seed06bc8277/herald/localstack/servicebus"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

// TestOpenByURL is what another process does (herald demo --url) with an
// emulator started elsewhere: a loopback URL, with or without the
// connection string in the environment.
func TestOpenByURL(t *testing.T) {
	s := local(t)
	if s.Emulator == nil {
		t.Skip("the namespace comes from the environment: no loopback emulator to open by URL")
	}
	topic := topicName(t)
	admin := newProvider(t) // creates the entities through the emulator's Go API
	setup(t, admin, providers.Topology{Topic: topic, Consumers: []string{"c"}})

	for _, env := range []string{"", s.ConnectionString} {
		t.Setenv(servicebus.EnvConnectionString, env)
		ctx := ctxFor(t, 20*time.Second)
		c, err := herald.Open(ctx, s.URL)
		if err != nil {
			t.Fatalf("Open(%s) with the variable set: %v: %v", s.URL, env != "", err)
		}
		defer c.Close()

		// The entities exist: provisioning them again is a check.
		top := providers.Topology{Topic: topic, Consumers: []string{"c"}}
		if err := c.Provision(ctx, top); err != nil {
			t.Errorf("Provision of existing entities by URL: %v", err)
		}
		top.Consumers = []string{"missing"}
		err = c.Provision(ctx, top)
		if !errors.Is(err, herald.ErrNotFound) || !strings.Contains(err.Error(), "missing") ||
			!strings.Contains(err.Error(), "Config.json") {
			t.Errorf("Provision of a missing subscription by URL: %v, want ErrNotFound "+
				"naming it and Config.json", err)
		}

		pub, err := c.Publisher(ctx, topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, &herald.Message{ID: "u1", Type: "T", Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		_ = pub.Close()
		sub, err := c.Provider().OpenSubscription(ctx, topic, "c", providers.SubscriptionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d := receiveN(t, sub, 1)[0]
		if m, err := herald.Decode(d); err != nil || m.ID != "u1" {
			t.Errorf("decoded %+v, %v", m, err)
		}
		if err := sub.Ack(ctx, d); err != nil {
			t.Error(err)
		}
		_ = sub.Close()
	}
}

// TestWriteConfigMakesTheProvisionedTopology loads WriteConfig's output
// into a fresh emulator: the entities exist and the herald-target rule
// routes a redrive to one consumer only.
func TestWriteConfigMakesTheProvisionedTopology(t *testing.T) {
	t.Setenv(servicebus.EnvConnectionString, "")
	var buf bytes.Buffer
	top := providers.Topology{Topic: "orders", Consumers: []string{"email", "warehouse"},
		Lease: 2 * time.Second, MaxAttempts: 3}
	if err := servicebus.WriteConfig(&buf, top); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"sbemulatorns"`, `"LockDuration": "PT2S"`,
		`"MaxDeliveryCount": 10`, `[herald-target] = 'email'`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("Config.json lacks %s:\n%s", want, buf.String())
		}
	}
	cfg, err := sbemu.ParseConfig(buf.Bytes())
	if err != nil {
		t.Fatalf("the emulator rejects the Config.json: %v", err)
	}
	em, err := sbemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	p, err := servicebus.New(context.Background(), servicebus.Options{Namespace: em.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Provision(ctxFor(t, 10*time.Second), top); err != nil {
		t.Fatalf("Provision against the configured emulator: %v", err)
	}

	// A redrive for email reaches email only.
	ctx := ctxFor(t, 20*time.Second)
	q, err := p.OpenDeadLetters(ctx, "orders", "email")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Redrive(ctx, msgs("r", 1)); err != nil {
		t.Fatal(err)
	}
	email, warehouse := open(t, p, "orders", "email"), open(t, p, "orders", "warehouse")
	if d := receiveN(t, email, 1)[0]; d.ID != "r-0" || d.Attempt != 1 {
		t.Errorf("email got %s attempt %d", d.ID, d.Attempt)
	}
	receiveNone(t, warehouse, time.Second)
	if n, err := q.Count(ctx); err != nil || n != 0 {
		t.Errorf("Count by peeking = %d, %v; want 0", n, err)
	}
}

func TestServiceBusOwnDeadLettersGetHeraldAttributes(t *testing.T) {
	s := local(t)
	if s.Emulator == nil {
		t.Skip("needs the in-process emulator to make a subscription with MaxDeliveryCount 2")
	}
	p := newProvider(t)
	topic := topicName(t)
	if err := s.Emulator.CreateTopic(topic, sbemu.EntityProperties{}); err != nil {
		t.Fatal(err)
	}
	err := s.Emulator.CreateSubscription(topic, "c", sbemu.EntityProperties{MaxDeliveryCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := p.OpenTopic(ctxFor(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if err := tp.SendBatch(ctxFor(t, 10*time.Second), msgs("m", 1)); err != nil {
		t.Fatal(err)
	}
	sub := open(t, p, topic, "c")
	for range 2 {
		d := receiveN(t, sub, 1)[0]
		if err := sub.Nack(ctxFor(t, 5*time.Second), d, 0); err != nil {
			t.Fatal(err)
		}
	}
	q, err := p.OpenDeadLetters(ctxFor(t, 10*time.Second), topic, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	d := receiveN(t, q, 1)[0]
	dl, ok := providers.ParseDeadLetter(d.Attributes)
	if !ok || dl.Reason != "MaxDeliveryCountExceeded" || dl.Consumer != "c" || d.ID != "m-0" {
		t.Errorf("letter %s: %+v (ok %v), want Service Bus's reason for consumer c", d.ID, dl, ok)
	}
	if err := q.Release(ctxFor(t, 5*time.Second), d); err != nil {
		t.Error(err)
	}
	if n, err := q.Count(ctxFor(t, 5*time.Second)); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1 after Release", n, err)
	}
}
