package memory_test

import (
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
	"github.com/seed06bc8277/herald/providers/providertest"
)

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Config{
		NewProvider: func(t *testing.T) providers.Provider { return memory.New() },
		Lease:       500 * time.Millisecond,
	})
}
