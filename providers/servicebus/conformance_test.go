package servicebus_test

import (
	"context"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/providertest"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

// newProvider connects to the local Service Bus with its Admin, so that
// Provision creates entities as on Azure.
func newProvider(t testing.TB) *servicebus.Provider {
	t.Helper()
	s := local(t)
	p, err := servicebus.New(context.Background(), s.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Config{
		NewProvider: func(t *testing.T) providers.Provider { return newProvider(t) },
		Lease:       time.Second,
	})
}
