package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/idempotency/sqlite"
)

// A consumer claims "<consumer>/<message ID>" before running its handler,
// completes the key after success, and acks a redelivery it finds
// completed without running the handler again.
func Example() {
	dir, err := os.MkdirTemp("", "herald-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(filepath.Join(dir, "idempotency.db"))
	if err != nil {
		panic(err)
	}
	defer store.Close()

	ctx := context.Background()
	const key, fingerprint = "billing/0190c5a0-7b1e-7c3d-9f00-5e1a2b3c4d5e", 0x5eed
	for delivery := 1; delivery <= 2; delivery++ {
		r, err := store.Claim(ctx, key, fingerprint, 30*time.Second)
		if err != nil {
			panic(err)
		}
		switch r.Status {
		case idempotency.Acquired:
			fmt.Printf("delivery %d: running the handler\n", delivery)
			if err := store.Complete(ctx, key, r.Token, 7*24*time.Hour); err != nil {
				panic(err)
			}
		case idempotency.Completed:
			fmt.Printf("delivery %d: already handled, ack\n", delivery)
		}
	}
	// Output:
	// delivery 1: running the handler
	// delivery 2: already handled, ack
}
