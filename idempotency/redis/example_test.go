package redis_test

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/seed06bc8277/herald/idempotency/redis"
)

// Consumers on many hosts share one Redis; each environment gets its own
// key prefix.
func Example() {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	store := redis.New(client, redis.Options{Prefix: "staging:herald:idem:"})

	r, err := store.Claim(context.Background(), "billing/0190c5a0", 0x5eed, 30*time.Second)
	if err != nil {
		return // Redis unreachable: leave the message unacked, it comes back
	}
	_ = r
}
