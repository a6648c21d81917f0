package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
)

// A message sent to a topic reaches every consumer's queue; a delivery
// that is not acked before its lease ends comes back as the next attempt.
func ExampleNew() {
	ctx := context.Background()
	p := memory.New()
	defer p.Close()
	_ = p.Provision(ctx, providers.Topology{Topic: "orders", Consumers: []string{"email", "stock"}})

	topic, _ := p.OpenTopic(ctx, "orders")
	_ = topic.SendBatch(ctx, []*providers.Message{{ID: "order-1", Body: []byte(`{"total":42}`)}})

	sub, _ := p.OpenSubscription(ctx, "orders", "email",
		providers.SubscriptionOptions{Lease: 20 * time.Millisecond})
	first, _ := sub.ReceiveBatch(ctx, 10) // not acked: the lease runs out
	again, _ := sub.ReceiveBatch(ctx, 10)
	fmt.Println(first[0].ID, first[0].Attempt, again[0].ID, again[0].Attempt)
	_ = sub.Ack(ctx, again[0])

	email, _ := p.Stats("orders", "email")
	stock, _ := p.Stats("orders", "stock")
	fmt.Printf("email: %d ready, %d acked; stock: %d ready\n", email.Ready, email.Acked, stock.Ready)
	// Output:
	// order-1 1 order-1 2
	// email: 0 ready, 1 acked; stock: 1 ready
}
