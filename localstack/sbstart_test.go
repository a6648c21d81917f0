package localstack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
	sbprov "github.com/seed06bc8277/herald/providers/servicebus"
)

func TestStartServiceBusServesAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv(EnvServiceBusConnectionString, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := StartServiceBus(ctx)
	if err != nil {
		Unavailable(t, "Azure Service Bus", err)
	}
	if sb.Emulator == nil || !strings.HasPrefix(sb.URL, "azuresb://127.0.0.1:") ||
		!strings.Contains(sb.ConnectionString, "UseDevelopmentEmulator=true") {
		t.Fatalf("StartServiceBus = %+v, want the in-process emulator on loopback", sb)
	}

	// Provision through the emulator's Go API, then publish by URL as
	// another process would.
	p, err := sbprov.New(ctx, sb.Options())
	if err != nil {
		t.Fatal(err)
	}
	top := providers.Topology{Topic: "orders", Consumers: []string{"email"}, MaxAttempts: 3}
	if err := p.Provision(ctx, top); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := p.Provision(ctx, top); err != nil {
		t.Fatalf("Provision again: %v", err)
	}
	_ = p.Close()
	c, err := herald.Open(ctx, sb.URL)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := c.Publisher(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, &herald.Message{Type: "OrderPlaced", Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	_ = pub.Close()
	_ = c.Close()
	if n, err := sb.Emulator.Count("orders/Subscriptions/email"); err != nil || n != 1 {
		t.Errorf("email holds %d messages (%v), want 1", n, err)
	}

	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartServiceBusHonoursTheVariable(t *testing.T) {
	const key = "a2V5LXZhbHVl"
	t.Setenv(EnvServiceBusConnectionString, "Endpoint=sb://myns.servicebus.windows.net/;"+
		"SharedAccessKeyName=k;SharedAccessKey="+key)
	sb, err := StartServiceBus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sb.Emulator != nil || sb.URL != "azuresb://myns.servicebus.windows.net" ||
		sb.Options().Admin != nil {
		t.Errorf("StartServiceBus = %+v, want the namespace of the variable", sb)
	}
	if err := sb.Close(); err != nil {
		t.Errorf("Close of a namespace it did not start: %v", err)
	}

	t.Setenv(EnvServiceBusConnectionString, "SharedAccessKey="+key)
	_, err = StartServiceBus(context.Background())
	if err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("a variable without Endpoint: %v, want an error without the key", err)
	}
}

func TestEmulatorAdminReportsAMissingTopic(t *testing.T) {
	t.Setenv(EnvServiceBusConnectionString, "")
	sb, err := StartServiceBus(context.Background())
	if err != nil {
		Unavailable(t, "Azure Service Bus", err)
	}
	defer sb.Close()
	a := &EmulatorAdmin{Emulator: sb.Emulator}
	err = a.EnsureSubscription(context.Background(), "nope", "c", sbprov.SubscriptionSpec{})
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("EnsureSubscription on a missing topic: %v, want ErrNotFound naming it", err)
	}
	_, err = a.DeadLetterCount(context.Background(), "nope", "c")
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("DeadLetterCount of a missing subscription: %v, want ErrNotFound", err)
	}
}
