package postgres_test

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed06bc8277/herald/idempotency/postgres"
)

// Migrate at start-up (it is idempotent), then claim; run Cleanup from
// time to time on any number of consumers.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		return
	}
	defer pool.Close()

	store := postgres.New(pool, postgres.Options{Table: "herald_idempotency"})
	if err := store.Migrate(ctx); err != nil {
		return
	}
	if _, err := store.Claim(ctx, "billing/0190c5a0", 0x5eed, 30*time.Second); err != nil {
		return
	}
	for {
		n, err := store.Cleanup(ctx, 10000)
		if err != nil || n < 10000 {
			break
		}
	}
}
