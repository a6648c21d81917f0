package servicebus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

// topicName is a fresh topic name for one test.
func topicName(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := strings.ToLower(t.Name())
	if i := strings.LastIndex(n, "/"); i >= 0 {
		n = n[i+1:]
	}
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, n)
	return "t" + hex.EncodeToString(b[:]) + "-" + n[:min(len(n), 20)]
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// setup provisions the topology and opens its topic.
func setup(t testing.TB, p *servicebus.Provider, top providers.Topology) providers.Topic {
	t.Helper()
	if err := p.Provision(ctxFor(t, 10*time.Second), top); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	tp, err := p.OpenTopic(ctxFor(t, 10*time.Second), top.Topic)
	if err != nil {
		t.Fatalf("OpenTopic: %v", err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	return tp
}

func open(t testing.TB, p *servicebus.Provider, topic, consumer string) providers.Subscription {
	t.Helper()
	s, err := p.OpenSubscription(ctxFor(t, 10*time.Second), topic, consumer,
		providers.SubscriptionOptions{MaxInFlight: 8})
	if err != nil {
		t.Fatalf("OpenSubscription %s/%s: %v", topic, consumer, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func msgs(prefix string, n int) []*providers.Message {
	out := make([]*providers.Message, n)
	for i := range out {
		id := fmt.Sprintf("%s-%d", prefix, i)
		out[i] = &providers.Message{ID: id, Body: []byte(id),
			Attributes: map[string]string{"ce-id": id}}
	}
	return out
}

type receiver interface {
	ReceiveBatch(ctx context.Context, n int) ([]*providers.Delivery, error)
}

// receiveN receives until n deliveries arrived (within 15 s).
func receiveN(t testing.TB, s receiver, n int) []*providers.Delivery {
	t.Helper()
	ctx := ctxFor(t, 15*time.Second)
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

// receiveNone checks that nothing arrives for d.
func receiveNone(t testing.TB, s receiver, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for ctx.Err() == nil {
		ds, err := s.ReceiveBatch(ctx, 10)
		if len(ds) > 0 {
			t.Fatalf("got %d unexpected deliveries, first %s (attempt %d)",
				len(ds), ds[0].ID, ds[0].Attempt)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	}
}
