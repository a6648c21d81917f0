package gcppubsub_test

import (
	"context"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	_ "github.com/seed06bc8277/herald/providers/gcppubsub" // registers gcppubsub://
)

// Example opens Pub/Sub by URL, here the local one
// ("gcppubsub://herald-local?endpoint=127.0.0.1:PORT"); on Google Cloud
// the URL is "gcppubsub://my-project", with Application Default
// Credentials.
func Example() {
	ctx := context.Background()
	ps, err := localstack.StartPubSub(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ps.Close()
	client, err := herald.Open(ctx, ps.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	err = client.Provision(ctx, providers.Topology{Topic: "orders", Consumers: []string{"email"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	pub, err := client.Publisher(ctx, "orders", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close()
	err = pub.Publish(ctx, &herald.Message{ID: "order-1", Type: "OrderPlaced", Data: []byte("{}")})
	if err != nil {
		fmt.Println(err)
		return
	}

	runCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	email, err := client.Consumer("orders", "email", func(ctx context.Context, m *herald.Message) error {
		fmt.Println("email handled", m.ID, m.Type, "attempt", m.Attempt)
		stop()
		return nil
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = email.Run(runCtx)
	// Output: email handled order-1 OrderPlaced attempt 1
}
