package servicebus

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// azservicebus keeps no goroutines after Close, but go-amqp's
		// connection reader may take a moment after the socket closes.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// start serves an emulator with cfg on a free loopback port until the
// test ends.
func start(t testing.TB, cfg Config) *Emulator {
	t.Helper()
	em, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	return em
}

// client returns an azservicebus client for em, closed when the test ends.
func client(t testing.TB, em *Emulator) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(em.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// queueEmulator starts an emulator with one queue named "q".
func queueEmulator(t testing.TB, p EntityProperties) (*Emulator, *azservicebus.Client) {
	t.Helper()
	em := start(t, Config{})
	if err := em.CreateQueue("q", p); err != nil {
		t.Fatal(err)
	}
	return em, client(t, em)
}
