package servicebus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/seed06bc8277/herald/localstack/servicebus"
)

// Serve a namespace with one queue on a free loopback port and use it
// through the official SDK.
func Example() {
	em, err := servicebus.New(servicebus.Config{})
	if err != nil {
		panic(err)
	}
	defer em.Close()
	if err := em.CreateQueue("orders", servicebus.EntityProperties{MaxDeliveryCount: 3}); err != nil {
		panic(err)
	}
	if err := em.Listen("127.0.0.1:0"); err != nil {
		panic(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := azservicebus.NewClientFromConnectionString(em.ConnectionString(), nil)
	if err != nil {
		panic(err)
	}
	defer client.Close(ctx)
	sender, err := client.NewSender("orders", nil)
	if err != nil {
		panic(err)
	}
	defer sender.Close(ctx)
	msg := &azservicebus.Message{Body: []byte("order 1")}
	if err := sender.SendMessage(ctx, msg, nil); err != nil {
		panic(err)
	}
	receiver, err := client.NewReceiverForQueue("orders", nil)
	if err != nil {
		panic(err)
	}
	defer receiver.Close(ctx)
	msgs, err := receiver.ReceiveMessages(ctx, 1, nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s, delivery %d\n", msgs[0].Body, msgs[0].DeliveryCount)
	if err := receiver.CompleteMessage(ctx, msgs[0], nil); err != nil {
		panic(err)
	}
	n, _ := em.Count("orders")
	fmt.Println("left in the queue:", n)
	// Output:
	// order 1, delivery 1
	// left in the queue: 0
}

// Load the Config.json that Microsoft's emulator reads.
func ExampleParseConfig() {
	cfg, err := servicebus.ParseConfig([]byte(`{"UserConfig": {"Namespaces": [{
		"Name": "sbemulatorns",
		"Topics": [{"Name": "orders", "Subscriptions": [{
			"Name": "email",
			"Properties": {"LockDuration": "PT30S", "MaxDeliveryCount": 5},
			"Rules": [{"Name": "redrive", "Properties": {"FilterType": "Sql",
				"SqlFilter": {"SqlExpression": "[herald-target] IS NULL OR [herald-target] = 'email'"}}}]
		}]}]
	}]}}`))
	if err != nil {
		panic(err)
	}
	em, err := servicebus.New(cfg)
	if err != nil {
		panic(err)
	}
	defer em.Close()
	st, err := em.Stats("orders/Subscriptions/email")
	fmt.Println(st.Total(), err)
	// Output: 0 <nil>
}
