package gcppubsub_test

import (
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/gcppubsub"
	"github.com/seed06bc8277/herald/providers/providertest"
)

// TestConformance runs herald's provider suite on the local Pub/Sub.
func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Config{
		NewProvider: func(t *testing.T) providers.Provider {
			return newProvider(t, gcppubsub.Options{})
		},
		Lease: time.Second,
	})
}
