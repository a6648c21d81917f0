package snssqs

import (
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/providertest"
)

// TestConformance runs herald's conformance suite against fauxqs.
func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Config{
		NewProvider: func(t *testing.T) providers.Provider {
			return newProvider(t)
		},
		Lease: time.Second,
	})
}
