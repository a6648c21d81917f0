package servicebus_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

// ExampleNew publishes and consumes on herald's Service Bus emulator. On
// Azure the options would be servicebus.Options{Namespace: "myns"} with
// HERALD_SERVICEBUS_CONNECTION_STRING set (or azidentity's chain), or
// simply herald.Open(ctx, "azuresb://myns").
func ExampleNew() {
	ctx := context.Background()
	sb, err := localstack.StartServiceBus(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sb.Close()
	p, err := servicebus.New(ctx, sb.Options())
	if err != nil {
		fmt.Println(err)
		return
	}
	client := herald.NewClient(p)
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
	_ = pub.Publish(ctx, &herald.Message{ID: "order-1", Type: "OrderPlaced", Data: []byte("{}")})

	runCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	email, _ := client.Consumer("orders", "email", func(ctx context.Context, m *herald.Message) error {
		fmt.Println("email handled", m.ID, "attempt", m.Attempt)
		stop()
		return nil
	}, nil)
	_ = email.Run(runCtx)
	// Output: email handled order-1 attempt 1
}

// ExampleWriteConfig writes the Config.json that Microsoft's emulator, or
// `herald emulate servicebus --config`, loads: the entities Provision
// would create on Azure.
func ExampleWriteConfig() {
	_ = servicebus.WriteConfig(os.Stdout, providers.Topology{
		Topic: "orders", Consumers: []string{"email"}, Lease: 30 * time.Second, MaxAttempts: 5,
	})
	// Output:
	// {
	//   "UserConfig": {
	//     "Namespaces": [
	//       {
	//         "Name": "sbemulatorns",
	//         "Queues": [],
	//         "Topics": [
	//           {
	//             "Name": "orders",
	//             "Properties": {
	//               "DefaultMessageTimeToLive": "PT1H",
	//               "DuplicateDetectionHistoryTimeWindow": "PT20S",
	//               "RequiresDuplicateDetection": false
	//             },
	//             "Subscriptions": [
	//               {
	//                 "Name": "email",
	//                 "Properties": {
	//                   "DeadLetteringOnMessageExpiration": false,
	//                   "DefaultMessageTimeToLive": "PT1H",
	//                   "LockDuration": "PT30S",
	//                   "MaxDeliveryCount": 10,
	//                   "ForwardDeadLetteredMessagesTo": "",
	//                   "ForwardTo": "",
	//                   "RequiresSession": false
	//                 },
	//                 "Rules": [
	//                   {
	//                     "Name": "herald-target",
	//                     "Properties": {
	//                       "FilterType": "Sql",
	//                       "SqlFilter": {
	//                         "SqlExpression": "[herald-target] IS NULL OR [herald-target] = 'email'"
	//                       }
	//                     }
	//                   }
	//                 ]
	//               }
	//             ]
	//           }
	//         ]
	//       }
	//     ],
	//     "Logging": {
	//       "Type": "File"
	//     }
	//   }
	// }
}
