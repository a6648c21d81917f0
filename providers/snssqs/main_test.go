package snssqs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
)

// One fauxqs serves the whole package; every test uses topics of its own.
var (
	cloud    *localstack.AWS
	cloudErr error
	names    atomic.Int64
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cloud, cloudErr = localstack.StartAWS(ctx)
	cancel()
	code := m.Run()
	if cloud != nil {
		if err := cloud.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if code == 0 {
		// A cloud someone else started keeps answering: connections that
		// went back to the pool just after their provider closed wait for
		// the idle timeout. fauxqs, stopped above, closes them all.
		var opts []goleak.Option
		if os.Getenv(localstack.EnvAWSEndpoint) != "" {
			opts = append(opts, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
				goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
				goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
		}
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// newProvider connects to the package's fauxqs, or ends the test when it
// did not start.
func newProvider(t testing.TB) *Provider {
	t.Helper()
	if cloudErr != nil {
		localstack.Unavailable(t, "aws", cloudErr)
	}
	p, err := New(context.Background(), Options{Region: cloud.Region, Endpoint: cloud.Endpoint})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// uniqueTopic returns a topic name no other test uses.
func uniqueTopic(t testing.TB) string {
	n := strings.NewReplacer("/", "-", " ", "-", "#", "-").Replace(t.Name())
	if len(n) > 30 {
		n = n[:30]
	}
	return fmt.Sprintf("%s-%d-%d", n, time.Now().UnixNano()%1e6, names.Add(1))
}

// provision creates a topology and returns it.
func provision(t testing.TB, p *Provider, ordered bool, consumers ...string) providers.Topology {
	t.Helper()
	top := providers.Topology{Topic: uniqueTopic(t), Consumers: consumers, Ordered: ordered}
	if err := p.Provision(context.Background(), top); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return top
}

func openTopic(t testing.TB, p *Provider, topic string) providers.Topic {
	t.Helper()
	tp, err := p.OpenTopic(context.Background(), topic)
	if err != nil {
		t.Fatalf("OpenTopic(%q): %v", topic, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func openSub(t testing.TB, p *Provider, topic, consumer string, lease time.Duration,
) providers.Subscription {
	t.Helper()
	s, err := p.OpenSubscription(context.Background(), topic, consumer,
		providers.SubscriptionOptions{Lease: lease, MaxInFlight: 10})
	if err != nil {
		t.Fatalf("OpenSubscription(%q, %q): %v", topic, consumer, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// receiveN receives until it holds n deliveries or 20 s pass.
func receiveN(t testing.TB, s providers.Subscription, n int) []*providers.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*providers.Delivery
	for len(out) < n {
		ds, err := s.ReceiveBatch(ctx, n-len(out))
		if err != nil {
			t.Fatalf("ReceiveBatch: got %d of %d: %v", len(out), n, err)
		}
		out = append(out, ds...)
	}
	return out
}

// expectNone checks that nothing arrives for a while.
func expectNone(t testing.TB, s providers.Subscription, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ds, err := s.ReceiveBatch(ctx, 10)
	if len(ds) > 0 {
		t.Fatalf("received %d deliveries, want none (first: %q)", len(ds), ds[0].Body)
	}
	if err != nil && ctx.Err() == nil {
		t.Fatalf("ReceiveBatch: %v", err)
	}
}
