package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/dlq"
	"github.com/seed06bc8277/herald/providers"
)

// A consumer gives up on a message; once the bug is fixed, the message is
// redriven to that consumer alone and handled.
func Example_redrive() {
	ctx := context.Background()
	client, err := herald.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	err = client.Provision(ctx, providers.Topology{Topic: "orders",
		Consumers: []string{"email", "warehouse"}})
	if err != nil {
		panic(err)
	}
	pub, err := client.Publisher(ctx, "orders", nil)
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	if err := pub.Publish(ctx, &herald.Message{ID: "order-1", Type: "OrderPlaced"}); err != nil {
		panic(err)
	}

	// The email consumer fails for good: the message is dead-lettered.
	fixed := make(chan struct{})
	handled := make(chan string, 1)
	send := func(_ context.Context, m *herald.Message) error {
		select {
		case <-fixed:
			handled <- m.ID
			return nil
		default:
			return herald.Permanent(errors.New("template missing"))
		}
	}
	email, err := client.Consumer("orders", "email", send, &herald.ConsumerOptions{Logger: discard})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- email.Run(runCtx) }()
	for email.Stats().DeadLettered == 0 {
		time.Sleep(time.Millisecond)
	}

	q, err := dlq.OpenClient(ctx, client, "orders", "email")
	if err != nil {
		panic(err)
	}
	defer q.Close()
	letters, err := q.List(ctx, dlq.ScanOptions{})
	if err != nil {
		panic(err)
	}
	for _, l := range letters {
		fmt.Printf("%s %s: %s (%s)\n", l.ID, l.Type, l.Reason, l.Error)
	}

	// The bug is fixed: send the message back to email only.
	close(fixed)
	rep, err := q.Redrive(ctx, dlq.RedriveOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Printf("moved %d, failed %d, %d left\n", rep.Moved, rep.Failed, rep.Remaining)
	fmt.Println("email handled", <-handled)

	stop()
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// order-1 OrderPlaced: permanent (permanent: template missing)
	// moved 1, failed 0, 0 left
	// email handled order-1
}
