package gcppubsub_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/gcppubsub"
)

// One local Pub/Sub serves every test of the package; each test uses its
// own topic names.
var (
	cloudOnce sync.Once
	cloud     *localstack.PubSub
	cloudErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cloud != nil {
		_ = cloud.Close()
	}
	if code == 0 {
		if err := goleak.Find(leakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func leakOptions() []goleak.Option {
	return []goleak.Option{
		// Started once at init by the client library's metrics; not ours.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	}
}

// emulator returns the package's local Pub/Sub, or ends the test with
// localstack.Unavailable.
func emulator(t testing.TB) *localstack.PubSub {
	t.Helper()
	cloudOnce.Do(func() { cloud, cloudErr = localstack.StartPubSub(context.Background()) })
	if cloudErr != nil {
		localstack.Unavailable(t, "google", cloudErr)
	}
	return cloud
}

// newProvider connects to the local Pub/Sub; the test closes it.
func newProvider(t testing.TB, o gcppubsub.Options) *gcppubsub.Provider {
	t.Helper()
	ps := emulator(t)
	o.Project, o.Endpoint = ps.Project, ps.Host
	p, err := gcppubsub.New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// topicName returns a fresh topic name.
func topicName(t testing.TB) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// setup provisions topic T with the consumers and opens a sender for it.
func setup(t testing.TB, p *gcppubsub.Provider, topo providers.Topology) providers.Topic {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	if topo.Topic == "" {
		topo.Topic = topicName(t)
	}
	if err := p.Provision(ctx, topo); err != nil {
		t.Fatalf("Provision %+v: %v", topo, err)
	}
	top, err := p.OpenTopic(ctx, topo.Topic)
	if err != nil {
		t.Fatalf("OpenTopic %s: %v", topo.Topic, err)
	}
	t.Cleanup(func() { _ = top.Close() })
	return top
}

func open(t testing.TB, p *gcppubsub.Provider, topic, consumer string, lease time.Duration,
) providers.Subscription {
	t.Helper()
	s, err := p.OpenSubscription(ctxFor(t, 30*time.Second), topic, consumer,
		providers.SubscriptionOptions{Lease: lease, MaxInFlight: 10})
	if err != nil {
		t.Fatalf("OpenSubscription %s/%s: %v", topic, consumer, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// receiveN receives until n deliveries arrived or 20 s passed.
func receiveN(t testing.TB, s interface {
	ReceiveBatch(context.Context, int) ([]*providers.Delivery, error)
}, n int) []*providers.Delivery {
	t.Helper()
	ctx := ctxFor(t, 20*time.Second)
	var out []*providers.Delivery
	for len(out) < n {
		ds, err := s.ReceiveBatch(ctx, n-len(out))
		if err != nil {
			t.Fatalf("ReceiveBatch after %d of %d: %v", len(out), n, err)
		}
		out = append(out, ds...)
	}
	return out
}

// receiveNone checks that nothing is delivered for d.
func receiveNone(t testing.TB, s providers.Subscription, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for ctx.Err() == nil {
		ds, err := s.ReceiveBatch(ctx, 10)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("ReceiveBatch: %v", err)
		}
		if len(ds) > 0 {
			t.Fatalf("got %d deliveries (first %q attempt %d), want none for %v",
				len(ds), ds[0].Body, ds[0].Attempt, d)
		}
	}
}

func msgs(prefix string, n int) []*providers.Message {
	out := make([]*providers.Message, n)
	for i := range out {
		id := fmt.Sprintf("%s-%d", prefix, i)
		out[i] = &providers.Message{ID: id, Body: []byte(id),
			Attributes: map[string]string{"ce-id": id, "n": fmt.Sprint(i)}}
	}
	return out
}
