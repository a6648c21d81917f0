package snssqs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seed06bc8277/herald/providers"
)

func TestRoundTripKeepsBodiesAndAttributes(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, false, "c1", "c2")
	tp := openTopic(t, p, top.Topic)

	// Bodies SNS cannot carry as they are (empty, binary, control
	// characters) and attribute values it refuses (empty) come back
	// unchanged, on every consumer.
	msgs := []*providers.Message{
		{ID: "a", Body: []byte("plain text"), Attributes: map[string]string{"k": "v"}},
		{ID: "b", Body: []byte{}, Attributes: map[string]string{"empty": ""}},
		{ID: "c", Body: []byte{0, 1, 2, 0xff, 0xfe}},
		{ID: "d", Body: []byte("tab\tnul\x00"), Attributes: map[string]string{"a": "", "b": "x"}},
		{ID: "e", Body: []byte("{\"json\":true}"), Attributes: tenAttrs()},
		{ID: "f", Body: []byte("ünïcødé ✓"), Attributes: map[string]string{"u": "ü ✓"}},
	}
	for i := range 19 {
		msgs = append(msgs, &providers.Message{ID: fmt.Sprint("n", i),
			Body: []byte(fmt.Sprint("body ", i))})
	}
	if err := tp.SendBatch(context.Background(), msgs); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}

	for _, c := range top.Consumers {
		s := openSub(t, p, top.Topic, c, 30*time.Second)
		ds := receiveN(t, s, len(msgs))
		got := map[string]*providers.Delivery{}
		for _, d := range ds {
			got[string(d.Body)+"|"+fmt.Sprint(d.Attributes)] = d
			if d.Attempt != 1 {
				t.Errorf("%s: Attempt = %d, want 1", c, d.Attempt)
			}
			if d.ProviderID == "" || d.LeaseUntil.Before(time.Now()) {
				t.Errorf("%s: ProviderID %q, LeaseUntil %v", c, d.ProviderID, d.LeaseUntil)
			}
		}
		for _, m := range msgs {
			d, ok := got[string(m.Body)+"|"+fmt.Sprint(m.Attributes)]
			if !ok {
				t.Errorf("%s: message %s (body %q, attributes %v) not received as sent",
					c, m.ID, m.Body, m.Attributes)
				continue
			}
			if !bytes.Equal(d.Body, m.Body) || !maps.Equal(d.Attributes, m.Attributes) {
				t.Errorf("%s: got %q %v, want %q %v", c, d.Body, d.Attributes, m.Body, m.Attributes)
			}
			if err := s.Ack(context.Background(), d); err != nil {
				t.Fatalf("%s: Ack: %v", c, err)
			}
		}
		expectNone(t, s, 1500*time.Millisecond)
	}
}

func provisionWith(t *testing.T, p *Provider, top providers.Topology) providers.Topology {
	t.Helper()
	if err := p.Provision(context.Background(), top); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return top
}

func tenAttrs() map[string]string {
	m := map[string]string{}
	for i := range MaxAttributes {
		m[fmt.Sprintf("attr-%d", i)] = fmt.Sprint(i)
	}
	return m
}

func TestOpenMissingNamesTheResource(t *testing.T) {
	p := newProvider(t)
	ctx := context.Background()
	_, err := p.OpenTopic(ctx, "no-such-topic-xyz")
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "no-such-topic-xyz") {
		t.Errorf("OpenTopic of a missing topic: %v, want ErrNotFound naming it", err)
	}
	top := provision(t, p, false, "c")
	_, err = p.OpenSubscription(ctx, top.Topic, "nobody", providers.SubscriptionOptions{})
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), top.Topic+"-nobody") {
		t.Errorf("OpenSubscription of a missing consumer: %v, want ErrNotFound naming its queue", err)
	}
	_, err = p.OpenDeadLetters(ctx, top.Topic, "nobody")
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("OpenDeadLetters of a missing consumer: %v, want ErrNotFound", err)
	}
}

func TestProvisionIsIdempotent(t *testing.T) {
	p := newProvider(t)
	top := provisionWith(t, p, providers.Topology{Topic: uniqueTopic(t), Consumers: []string{"c"},
		MaxAttempts: 3, Lease: 1500 * time.Millisecond})
	if err := p.Provision(context.Background(), top); err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	ctx := context.Background()

	// The queue: its lease, a RedrivePolicy to its dead-letter queue after
	// MaxAttempts+5 receives, and a policy letting only the topic send.
	qURL, err := p.queueURL(ctx, top.Topic+"-c")
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &qURL,
		AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	var redrive struct {
		DeadLetterTargetArn string
		MaxReceiveCount     json.Number
	}
	if err := json.Unmarshal([]byte(out.Attributes["RedrivePolicy"]), &redrive); err != nil ||
		!strings.HasSuffix(redrive.DeadLetterTargetArn, ":"+top.Topic+"-c-dlq") ||
		redrive.MaxReceiveCount.String() != "8" {
		t.Errorf("RedrivePolicy = %s, want the dlq after 8 receives", out.Attributes["RedrivePolicy"])
	}
	topicARN, _, _ := p.findTopic(ctx, top.Topic)
	if pol := out.Attributes["Policy"]; !strings.Contains(pol, topicARN) ||
		!strings.Contains(pol, "sns.amazonaws.com") || !strings.Contains(pol, "sqs:SendMessage") {
		t.Errorf("Policy = %s, want one letting %s send", pol, topicARN)
	}
	if v := out.Attributes["VisibilityTimeout"]; v != "2" {
		t.Errorf("VisibilityTimeout = %s, want the 1.5 s lease rounded up to 2", v)
	}
	subs, err := p.sns.ListSubscriptionsByTopic(ctx,
		&sns.ListSubscriptionsByTopicInput{TopicArn: &topicARN})
	if err != nil || len(subs.Subscriptions) != 1 {
		t.Fatalf("subscriptions: %v, %v; want one", subs, err)
	}
	sa, err := p.sns.GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{
		SubscriptionArn: subs.Subscriptions[0].SubscriptionArn})
	if err != nil || sa.Attributes["RawMessageDelivery"] != "true" {
		t.Errorf("subscription attributes %v, %v; want raw delivery", sa, err)
	}
	tp := openTopic(t, p, top.Topic)
	once := []*providers.Message{{Body: []byte("once")}}
	if err := tp.SendBatch(context.Background(), once); err != nil {
		t.Fatal(err)
	}
	// Provisioning twice subscribes once: one copy arrives.
	s := openSub(t, p, top.Topic, "c", 30*time.Second)
	receiveN(t, s, 1)
	expectNone(t, s, 1500*time.Millisecond)
}

func TestBadInputIsRefusedBeforeSending(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, false, "c")
	tp := openTopic(t, p, top.Topic)
	eleven := tenAttrs()
	eleven["one-more"] = "x"
	cases := []struct {
		name string
		m    *providers.Message
		want error
	}{
		{"over 256 KiB", &providers.Message{Body: bytes.Repeat([]byte("x"), MaxMessageBytes+1)},
			providers.ErrTooLarge},
		{"attributes count toward 256 KiB", &providers.Message{
			Body:       bytes.Repeat([]byte("x"), MaxMessageBytes-10),
			Attributes: map[string]string{"name": "value"}}, providers.ErrTooLarge},
		{"11 attributes", &providers.Message{Body: []byte("x"), Attributes: eleven},
			providers.ErrInvalid},
		{"reserved name", &providers.Message{Body: []byte("x"),
			Attributes: map[string]string{"AWS.trace": "x"}}, providers.ErrInvalid},
		{"double dot", &providers.Message{Body: []byte("x"),
			Attributes: map[string]string{"a..b": "x"}}, providers.ErrInvalid},
		{"space in name", &providers.Message{Body: []byte("x"),
			Attributes: map[string]string{"a b": "x"}}, providers.ErrInvalid},
		{"control character in value", &providers.Message{Body: []byte("x"),
			Attributes: map[string]string{"a": "\x01"}}, providers.ErrInvalid},
		{"ordering key on a standard topic", &providers.Message{Body: []byte("x"), OrderingKey: "k"},
			providers.ErrInvalid},
		{"nil message", nil, providers.ErrInvalid},
	}
	for _, c := range cases {
		good := &providers.Message{Body: []byte("good")}
		err := tp.SendBatch(context.Background(), []*providers.Message{good, c.m})
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), "#1") ||
			!strings.Contains(err.Error(), top.Topic) {
			t.Errorf("%s: err = %v, want %v naming message #1 and the topic", c.name, err, c.want)
		}
	}
	// Nothing went half-way: not even the good messages.
	s := openSub(t, p, top.Topic, "c", 30*time.Second)
	expectNone(t, s, 1500*time.Millisecond)
}

func TestURL(t *testing.T) {
	newProvider(t) // skips without the local cloud
	open, err := providers.Lookup(Scheme)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, _ := url.Parse(cloud.URL)
	pr, err := open(ctx, u)
	if err != nil {
		t.Fatalf("open %s: %v", cloud.URL, err)
	}
	defer pr.Close()
	if l := pr.Limits(); l.MaxAttributes != 10 || l.MaxMessageBytes != 262144 ||
		l.AttributeOverhead != len("String") {
		t.Errorf("Limits = %+v", l)
	}
	top := provision(t, pr.(*Provider), false, "c")
	if tp, err := pr.OpenTopic(ctx, top.Topic); err != nil {
		t.Errorf("OpenTopic through the URL's provider: %v", err)
	} else {
		tp.Close()
	}

	for _, bad := range []string{
		"snssqs://?region=us-east-1&accessKey=AKIA",
		"snssqs://key:secret@?region=us-east-1",
		"snssqs://host?region=us-east-1",
		"snssqs://?region=us-east-1&endpoint=not-a-url",
	} {
		u, _ := url.Parse(bad)
		if _, err := open(ctx, u); !errors.Is(err, providers.ErrInvalid) ||
			strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "AKIA") {
			t.Errorf("open %s: %v, want ErrInvalid without the secret", bad, err)
		}
	}
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	u, _ = url.Parse("snssqs://?endpoint=" + url.QueryEscape(cloud.Endpoint))
	if _, err := open(ctx, u); !errors.Is(err, providers.ErrInvalid) ||
		!strings.Contains(err.Error(), "region") {
		t.Errorf("open without a region: %v, want ErrInvalid saying so", err)
	}
}

func TestMissingCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := New(ctx, Options{Region: "us-east-1"})
	if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("New without credentials: %v, want ErrInvalid about credentials", err)
	}
}

func TestClosedRefuses(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, false, "c")
	tp := openTopic(t, p, top.Topic)
	s := openSub(t, p, top.Topic, "c", 30*time.Second)
	tp.Close()
	s.Close()
	err := tp.SendBatch(context.Background(), []*providers.Message{{Body: []byte("x")}})
	if !errors.Is(err, providers.ErrClosed) {
		t.Errorf("SendBatch after Close: %v", err)
	}
	if _, err := s.ReceiveBatch(context.Background(), 1); !errors.Is(err, providers.ErrClosed) {
		t.Errorf("ReceiveBatch after Close: %v", err)
	}
	p.Close()
	if _, err := p.OpenTopic(context.Background(), top.Topic); !errors.Is(err, providers.ErrClosed) {
		t.Errorf("OpenTopic after Close: %v", err)
	}
}
