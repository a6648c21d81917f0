package servicebus_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

// A provider opened by URL in another process provisions through the
// emulator's HTTP administration (as `herald emulate servicebus` serves
// it), with the redrive rule in place.
func TestProvisionThroughHTTPAdmin(t *testing.T) {
	emu := local(t)
	if emu.Emulator == nil {
		t.Skip("HERALD_SERVICEBUS_CONNECTION_STRING points at an emulator herald did not start")
	}
	srv := httptest.NewServer(servicebus.AdminHandler(&localstack.EmulatorAdmin{Emulator: emu.Emulator}))
	defer srv.Close()
	ctx := ctxFor(t, 30*time.Second)
	t.Setenv(servicebus.EnvConnectionString, emu.ConnectionString)

	client, err := herald.Open(ctx, emu.URL+"?admin="+srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := topicName(t)
	top := providers.Topology{Topic: topic, Consumers: []string{"a", "b"}, Lease: 2 * time.Second}
	for range 2 { // idempotent
		if err := client.Provision(ctx, top); err != nil {
			t.Fatalf("provision: %v", err)
		}
	}
	for _, c := range []string{"a", "b"} {
		if _, err := emu.Emulator.Stats(topic + "/Subscriptions/" + c); err != nil {
			t.Fatalf("subscription %s not created: %v", c, err)
		}
	}
	// The rule is in place: a message targeted at b reaches b only.
	send, err := client.Provider().OpenTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	err = send.SendBatch(ctx, []*providers.Message{{ID: "x", Body: []byte("x"),
		Attributes: map[string]string{providers.AttrTarget: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		na, _ := emu.Emulator.Count(topic + "/Subscriptions/a")
		nb, _ := emu.Emulator.Count(topic + "/Subscriptions/b")
		if na == 0 && nb == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("targeted message: a has %d, b has %d; want 0 and 1", na, nb)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHTTPAdminIsLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://10.1.2.3:80", "https://127.0.0.1:1", "ftp://localhost:1", ":"} {
		if _, err := servicebus.NewHTTPAdmin(u); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("NewHTTPAdmin(%q) = %v, want ErrInvalid", u, err)
		}
	}
	a, err := servicebus.NewHTTPAdmin("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	err = a.EnsureTopic(context.Background(), "t")
	if !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("admin that does not listen: %v, want ErrUnavailable naming it", err)
	}
}
