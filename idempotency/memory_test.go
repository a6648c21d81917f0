package idempotency_test

import (
	"testing"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/idempotency/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) idempotency.Store { return idempotency.NewMemory() })
}

func TestMemorySharedConformance(t *testing.T) {
	// One store shared by every test, as a consumer shares it.
	s := idempotency.NewMemory()
	storetest.Run(t, func(*testing.T) idempotency.Store { return s })
}

func BenchmarkMemory(b *testing.B) {
	storetest.Bench(b, func(*testing.B) idempotency.Store { return idempotency.NewMemory() })
}
