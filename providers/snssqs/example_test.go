package snssqs_test

import (
	"context"
	"log"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
	_ "github.com/seed06bc8277/herald/providers/snssqs" // registers snssqs://
)

// Open herald on AWS by URL, create a topic with two consumers, publish to
// both and consume as one of them. Credentials come from the AWS default
// chain; endpoint= points at a local stand-in such as fauxqs or LocalStack.
func Example() {
	ctx := context.Background()
	client, err := herald.Open(ctx, "snssqs://?region=us-east-1&endpoint=http://127.0.0.1:4566")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// SNS topic "orders", SQS queues "orders-email" and "orders-warehouse",
	// each with its dead-letter queue: idempotent.
	err = client.Provision(ctx, providers.Topology{
		Topic: "orders", Consumers: []string{"email", "warehouse"}, MaxAttempts: 5,
	})
	if err != nil {
		log.Fatal(err)
	}

	pub, err := client.Publisher(ctx, "orders", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	err = pub.Publish(ctx, &herald.Message{ID: "order-42/placed", Type: "OrderPlaced",
		ContentType: "application/json", Data: []byte(`{"order":42}`)})
	if err != nil {
		log.Fatal(err)
	}

	c, err := client.Consumer("orders", "email", func(ctx context.Context, m *herald.Message) error {
		log.Printf("send the confirmation for %s (attempt %d)", m.ID, m.Attempt)
		return nil
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil { // until ctx ends
		log.Fatal(err)
	}
}
