package localstack_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/localstack"
)

// envChild tells the test binary, run again as a child process, which
// local Pub/Sub to publish to.
const envChild = "HERALD_TEST_PUBSUB_CHILD"

func startPubSub(t *testing.T) *localstack.PubSub {
	t.Helper()
	ps, err := localstack.StartPubSub(context.Background())
	if err != nil {
		localstack.Unavailable(t, "google", err)
	}
	t.Cleanup(func() {
		if err := ps.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ps
}

func leakCheck(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		// The client library's streaming receiver leaves this one behind.
		goleak.IgnoreTopFunction(
			"cloud.google.com/go/pubsub/v2.(*messageIterator).streamKeepAliveHandler")}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// client connects Google's own client library the standard way, through
// PUBSUB_EMULATOR_HOST.
func client(t *testing.T, host string) *pubsub.Client {
	t.Helper()
	t.Setenv(localstack.EnvPubSubEmulator, host)
	c, err := pubsub.NewClient(context.Background(), localstack.PubSubProject)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func topicAndSubs(t *testing.T, c *pubsub.Client, name string, subs ...string) {
	t.Helper()
	ctx := context.Background()
	p := "projects/" + localstack.PubSubProject
	for _, n := range []string{name, name + "-dl"} {
		_, err := c.TopicAdminClient.CreateTopic(ctx, &pb.Topic{Name: p + "/topics/" + n})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subs {
		_, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pb.Subscription{
			Name: p + "/subscriptions/" + s, Topic: p + "/topics/" + name, AckDeadlineSeconds: 10,
			DeadLetterPolicy: &pb.DeadLetterPolicy{DeadLetterTopic: p + "/topics/" + name + "-dl",
				MaxDeliveryAttempts: 50},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func pull(t *testing.T, c *pubsub.Client, sub string) *pb.ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		resp, err := c.SubscriptionAdminClient.Pull(ctx, &pb.PullRequest{
			Subscription: "projects/" + localstack.PubSubProject + "/subscriptions/" + sub,
			MaxMessages:  1,
		})
		if err != nil {
			t.Fatalf("Pull %s: %v", sub, err)
		}
		if len(resp.ReceivedMessages) > 0 {
			return resp.ReceivedMessages[0]
		}
	}
}

// TestPubSubServesOtherProcesses: a child process publishes through
// Google's client, found with PUBSUB_EMULATOR_HOST; this one receives.
func TestPubSubServesOtherProcesses(t *testing.T) {
	leakCheck(t)
	ps := startPubSub(t)
	if !strings.HasPrefix(ps.Host, "127.0.0.1:") ||
		ps.URL != "gcppubsub://herald-local?endpoint="+strings.ReplaceAll(ps.Host, ":", "%3A") {
		t.Fatalf("Host %q URL %q", ps.Host, ps.URL)
	}
	c := client(t, ps.Host)
	topicAndSubs(t, c, "cross", "cross-sub")

	cmd := exec.Command(os.Args[0], "-test.run=^TestPubSubChildPublishes$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+ps.Host)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	if got := pull(t, c, "cross-sub"); string(got.Message.Data) != "from the child" {
		t.Fatalf("got %q", got.Message.Data)
	}
}

// TestPubSubChildPublishes is the child side of the test above.
func TestPubSubChildPublishes(t *testing.T) {
	host := os.Getenv(envChild)
	if host == "" {
		t.Skip("run by TestPubSubServesOtherProcesses only")
	}
	c := client(t, host)
	pub := c.Publisher("cross")
	defer pub.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := pub.Publish(ctx, &pubsub.Message{Data: []byte("from the child")})
	if _, err := res.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPubSubAttemptsArePerSubscription: deliveries to one subscription do
// not count as attempts of another, by Pull and by StreamingPull.
func TestPubSubAttemptsArePerSubscription(t *testing.T) {
	leakCheck(t)
	ps := startPubSub(t)
	c := client(t, ps.Host)
	topicAndSubs(t, c, "fan", "fan-a", "fan-b", "fan-c")
	pub := c.Publisher("fan")
	defer pub.Stop()
	ctx := context.Background()
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("x")}).Get(ctx); err != nil {
		t.Fatal(err)
	}

	for want := int32(1); want <= 3; want++ {
		rm := pull(t, c, "fan-b")
		if rm.DeliveryAttempt != want {
			t.Fatalf("fan-b: attempt %d, want %d", rm.DeliveryAttempt, want)
		}
		if err := c.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pb.ModifyAckDeadlineRequest{
			Subscription: "projects/" + localstack.PubSubProject + "/subscriptions/fan-b",
			AckIds:       []string{rm.AckId},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if rm := pull(t, c, "fan-a"); rm.DeliveryAttempt != 1 {
		t.Fatalf("fan-a by Pull: attempt %d after 3 deliveries to fan-b, want 1", rm.DeliveryAttempt)
	}

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got *int
	err := c.Subscriber("fan-c").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		got = m.DeliveryAttempt
		m.Ack()
		cancel()
	})
	if err != nil || got == nil || *got != 1 {
		t.Fatalf("fan-c by StreamingPull: attempt %v, err %v; want 1", got, err)
	}
}

// TestPubSubEmptyPullAnswersWhenAMessageArrives: pstest alone makes an
// empty Pull wait 500 ms whatever arrives meanwhile.
func TestPubSubEmptyPullAnswersWhenAMessageArrives(t *testing.T) {
	leakCheck(t)
	ps := startPubSub(t)
	c := client(t, ps.Host)
	topicAndSubs(t, c, "quick", "quick-a")
	pub := c.Publisher("quick")
	defer pub.Stop()
	// Warm the connection so the timing below is the Pull's alone.
	ctx := context.Background()
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("warm")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	rm := pull(t, c, "quick-a")
	_ = c.SubscriptionAdminClient.Acknowledge(ctx, &pb.AcknowledgeRequest{
		Subscription: "projects/" + localstack.PubSubProject + "/subscriptions/quick-a",
		AckIds:       []string{rm.AckId}})

	go func() {
		time.Sleep(50 * time.Millisecond) // lets the Pull below find nothing first
		pub.Publish(ctx, &pubsub.Message{Data: []byte("late")})
	}()
	start := time.Now()
	rm = pull(t, c, "quick-a")
	if took := time.Since(start); string(rm.Message.Data) != "late" || took >= 450*time.Millisecond {
		t.Fatalf("Pull returned %q after %v, want \"late\" well before pstest's 500 ms",
			rm.Message.Data, took)
	}
}

func TestPubSubEmulatorHostMustListen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv(localstack.EnvPubSubEmulator, addr)
	_, err = localstack.StartPubSub(context.Background())
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("StartPubSub with nothing at %s: %v", addr, err)
	}
}
