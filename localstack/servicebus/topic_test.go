package servicebus

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

const topicConfig = `{
  "UserConfig": {
    "Namespaces": [{
      "Name": "sbemulatorns",
      "Queues": [{"Name": "queue.1", "Properties": {"LockDuration": "PT1M", "MaxDeliveryCount": 3,
        "DefaultMessageTimeToLive": "PT1H", "RequiresSession": false,
        "DeadLetteringOnMessageExpiration": false, "RequiresDuplicateDetection": false,
        "DuplicateDetectionHistoryTimeWindow": "PT20S", "ForwardTo": "",
        "ForwardDeadLetteredMessagesTo": ""}}],
      "Topics": [{
        "Name": "orders",
        "Properties": {"DefaultMessageTimeToLive": "PT1H"},
        "Subscriptions": [
          {"Name": "all", "Properties": {"LockDuration": "PT30S", "MaxDeliveryCount": 5}},
          {"Name": "C", "Properties": {"MaxDeliveryCount": 5},
           "Rules": [{"Name": "redrive", "Properties": {"FilterType": "Sql",
             "SqlFilter": {"SqlExpression":
               "\"herald-target\" IS NULL OR \"herald-target\" = 'C'"}}}]},
          {"Name": "blue", "Properties": {},
           "Rules": [{"Name": "color", "Properties": {"FilterType": "Correlation",
             "CorrelationFilter": {"Label": "paint", "Properties": {"color": "blue"}}}}]}
        ]
      }]
    }],
    "Logging": {"Type": "File"}
  }
}`

func TestTopicFanOutWithRules(t *testing.T) {
	cfg, err := ParseConfig([]byte(topicConfig))
	if err != nil {
		t.Fatal(err)
	}
	em := start(t, cfg)
	c := client(t, em)
	subj := "paint"
	send(t, c, "orders",
		&azservicebus.Message{Body: []byte("plain")},
		&azservicebus.Message{Body: []byte("for C"),
			ApplicationProperties: map[string]any{"herald-target": "C"}},
		&azservicebus.Message{Body: []byte("for D"),
			ApplicationProperties: map[string]any{"herald-target": "D"}},
		&azservicebus.Message{Body: []byte("blue"), Subject: &subj,
			ApplicationProperties: map[string]any{"color": "blue"}},
		&azservicebus.Message{Body: []byte("red"), Subject: &subj,
			ApplicationProperties: map[string]any{"color": "red"}},
	)
	want := map[string][]string{
		"all":  {"plain", "for C", "for D", "blue", "red"},
		"C":    {"plain", "for C", "blue", "red"},
		"blue": {"blue"},
	}
	for sub, bodies := range want {
		waitCount(t, em, "orders/Subscriptions/"+sub, len(bodies))
		r, err := c.NewReceiverForSubscription("orders", sub, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := receive(t, r, len(bodies))
		for i, m := range got {
			if string(m.Body) != bodies[i] {
				t.Errorf("%s message %d: %q, want %q", sub, i, m.Body, bodies[i])
			}
			if err := r.CompleteMessage(ctxT(t), m, nil); err != nil {
				t.Fatal(err)
			}
		}
		_ = r.Close(ctxT(t))
	}
	if s, err := em.Stats("queue.1"); err != nil || s.Total() != 0 {
		t.Fatalf("queue from Config.json: %+v %v", s, err)
	}
}

func TestSubscriptionDeadLetterQueue(t *testing.T) {
	em := start(t, Config{})
	if err := em.CreateTopic("t", EntityProperties{}); err != nil {
		t.Fatal(err)
	}
	if err := em.CreateSubscription("t", "s", EntityProperties{MaxDeliveryCount: 1}); err != nil {
		t.Fatal(err)
	}
	c := client(t, em)
	send(t, c, "t", body("x"))
	r, err := c.NewReceiverForSubscription("t", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctxT(t))
	m := receive(t, r, 1)[0]
	if err := r.AbandonMessage(ctxT(t), m, nil); err != nil {
		t.Fatal(err)
	}
	waitCount(t, em, "t/Subscriptions/s/$DeadLetterQueue", 1)
	d, err := c.NewReceiverForSubscription("t", "s",
		&azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctxT(t))
	dm := receive(t, d, 1)[0]
	if *dm.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Fatalf("dead letter reason %v", *dm.DeadLetterReason)
	}
}
