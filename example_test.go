package herald_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

// Publish one fact; every consumer of the topic gets its own copy.
func ExamplePublisher_Publish() {
	ctx := context.Background()
	client, _ := herald.Open(ctx, "mem://")
	defer client.Close()
	_ = client.Provision(ctx, providers.Topology{Topic: "orders", Consumers: []string{"email"}})

	pub, _ := client.Publisher(ctx, "orders", &herald.PublisherOptions{Source: "/checkout"})
	defer pub.Close()
	err := pub.Publish(ctx, &herald.Message{
		ID:          "order-1001/placed", // stable: a re-publish is recognised
		Type:        "OrderPlaced",
		ContentType: "application/json",
		Data:        []byte(`{"order":1001,"total":"42.00"}`),
	})
	fmt.Println("published:", err == nil)
	// Output: published: true
}

// Run a consumer: the handler runs once per message ID, and a message is
// acked only after the handler returned nil.
func ExampleConsumer_Run() {
	ctx := context.Background()
	client, _ := herald.Open(ctx, "mem://")
	defer client.Close()
	_ = client.Provision(ctx, providers.Topology{Topic: "orders", Consumers: []string{"email"}})
	pub, _ := client.Publisher(ctx, "orders", nil)
	_ = pub.Publish(ctx, &herald.Message{ID: "order-1", Type: "OrderPlaced", Data: []byte("1")})
	_ = pub.Publish(ctx, &herald.Message{ID: "order-1", Type: "OrderPlaced", Data: []byte("1")})

	done := make(chan struct{})
	email, _ := client.Consumer("orders", "email", func(ctx context.Context, m *herald.Message) error {
		fmt.Printf("email for %s (attempt %d)\n", m.ID, m.Attempt)
		close(done)
		return nil
	}, nil)
	runCtx, stop := context.WithCancel(ctx)
	go func() { <-done; time.Sleep(50 * time.Millisecond); stop() }()
	_ = email.Run(runCtx) // returns after a graceful drain
	fmt.Println("duplicates skipped:", email.Stats().Duplicates)
	// Output:
	// email for order-1 (attempt 1)
	// duplicates skipped: 1
}

// The provider is chosen by URL, so the same code runs on every cloud:
// "mem://", "snssqs://?region=eu-west-1", "gcppubsub://my-project",
// "azuresb://my-namespace" (import the provider's package to register it).
func ExampleOpen() {
	ctx := context.Background()
	_, err := herald.Open(ctx, "gcppubsub://my-project")
	fmt.Println(errors.Is(err, herald.ErrInvalid))
	client, err := herald.Open(ctx, "mem://")
	fmt.Println(err)
	_ = client.Close()
	// Output:
	// true
	// <nil>
}

// A handler marks errors that retrying cannot fix as permanent: the
// message is dead-lettered at once with reason "permanent".
func ExamplePermanent() {
	handler := func(ctx context.Context, m *herald.Message) error {
		if len(m.Data) == 0 {
			return herald.Permanent(errors.New("order without lines"))
		}
		return nil
	}
	err := handler(context.Background(), &herald.Message{})
	fmt.Println(herald.IsPermanent(err), err)
	// Output: true permanent: order without lines
}
