package snssqs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seed06bc8277/herald/providers"
)

func TestFIFOKeepsOrderPerKey(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, true, "c")
	tp := openTopic(t, p, top.Topic) // the logical name finds T.fifo
	if !tp.(*topic).ordered {
		t.Fatalf("OpenTopic(%q) opened %s, want the FIFO topic", top.Topic, tp.(*topic).arn)
	}
	var msgs []*providers.Message
	for i := range 30 {
		msgs = append(msgs, &providers.Message{ID: fmt.Sprint("id-", i),
			Body: []byte(fmt.Sprint(i)), OrderingKey: fmt.Sprint("key-", i%3)})
	}
	msgs = append(msgs, &providers.Message{ID: "unordered", Body: []byte("u")})
	if err := tp.SendBatch(context.Background(), msgs); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	// The same IDs again are duplicates within SQS's window: dropped.
	if err := tp.SendBatch(context.Background(), msgs[:5]); err != nil {
		t.Fatalf("SendBatch of duplicates: %v", err)
	}

	s := openSub(t, p, top.Topic, "c", 30*time.Second)
	seen := map[string][]string{}
	for n := 0; n < len(msgs); {
		for _, d := range receiveN(t, s, 1) {
			seen[d.OrderingKey] = append(seen[d.OrderingKey], string(d.Body))
			if err := s.Ack(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	for k := range 3 {
		key := fmt.Sprint("key-", k)
		var want []string
		for i := k; i < 30; i += 3 {
			want = append(want, fmt.Sprint(i))
		}
		if fmt.Sprint(seen[key]) != fmt.Sprint(want) {
			t.Errorf("%s: received %v, want %v", key, seen[key], want)
		}
	}
	if fmt.Sprint(seen[""]) != "[u]" {
		t.Errorf("without a key: %v, want [u] and no ordering key reported", seen[""])
	}
	expectNone(t, s, 1500*time.Millisecond)
}

func TestSNSNotificationsDecodeLikeRawDelivery(t *testing.T) {
	p := newProvider(t)
	top := provision(t, p, false)
	ctx := context.Background()

	// A consumer queue subscribed without raw delivery gets SNS's JSON.
	q := queueName(top.Topic, "json", false)
	qu, err := p.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &q})
	if err != nil {
		t.Fatal(err)
	}
	arn, err := p.queueARN(ctx, q, aws.ToString(qu.QueueUrl))
	if err != nil {
		t.Fatal(err)
	}
	tarn, _, err := p.findTopic(ctx, top.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.sns.Subscribe(ctx, &sns.SubscribeInput{TopicArn: &tarn,
		Protocol: aws.String("sqs"), Endpoint: &arn}); err != nil {
		t.Fatal(err)
	}

	msgs := []*providers.Message{
		{Body: []byte("text"), Attributes: map[string]string{"k": "v", "e": ""}},
		{Body: []byte{0xff, 0}, Attributes: map[string]string{"k": "w"}},
		{Body: nil},
	}
	publish(t, p, top.Topic, msgs...)
	s := openSub(t, p, top.Topic, "json", 30*time.Second)
	got := map[string]string{}
	for _, d := range receiveN(t, s, len(msgs)) {
		got[string(d.Body)] = fmt.Sprint(d.Attributes)
	}
	for _, m := range msgs {
		a, ok := got[string(m.Body)]
		if !ok || a != fmt.Sprint(m.Attributes) {
			t.Errorf("body %q: got attributes %q (found %v), want %v", m.Body, a, ok, m.Attributes)
		}
	}
}

// fakeSNS answers PublishBatch: entries whose message starts with "busy"
// fail as throttled, "bad" as invalid; every request fails with
// Throttling when throttle is set.
func fakeSNS(t *testing.T, throttle bool, requests *atomic.Int32) *httptest.Server {
	return slowSNS(t, throttle, requests, 0)
}

// slowSNS is fakeSNS taking delay to answer.
func slowSNS(t *testing.T, throttle bool, requests *atomic.Int32, delay time.Duration,
) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		time.Sleep(delay)
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "PublishBatch" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		if throttle {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>`+
				`<Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
			return
		}
		var ok, failed strings.Builder
		for i := 1; i <= 10; i++ {
			prefix := fmt.Sprintf("PublishBatchRequestEntries.member.%d.", i)
			id, msg := r.Form.Get(prefix+"Id"), r.Form.Get(prefix+"Message")
			switch {
			case id == "":
			case strings.HasPrefix(msg, "busy"):
				fmt.Fprintf(&failed, `<member><Id>%s</Id><Code>Throttled</Code>`+
					`<Message>slow down</Message><SenderFault>false</SenderFault></member>`, id)
			case strings.HasPrefix(msg, "bad"):
				fmt.Fprintf(&failed, `<member><Id>%s</Id><Code>InvalidParameter</Code>`+
					`<Message>no</Message><SenderFault>true</SenderFault></member>`, id)
			default:
				fmt.Fprintf(&ok, `<member><Id>%s</Id><MessageId>m%s</MessageId></member>`, id, id)
			}
		}
		fmt.Fprintf(w, `<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">`+
			`<PublishBatchResult><Successful>%s</Successful><Failed>%s</Failed></PublishBatchResult>`+
			`<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>`,
			ok.String(), failed.String())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fakeTopic(t *testing.T, srv *httptest.Server) *topic {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	p, err := New(context.Background(), Options{Region: "us-east-1", Endpoint: srv.URL,
		AccountID: "000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tp := newTopic(p, "t", "arn:aws:sns:us-east-1:000000000000:t", false)
	t.Cleanup(func() { tp.Close() })
	return tp
}

func TestPartialFailureNamesTheMessages(t *testing.T) {
	var requests atomic.Int32
	tp := fakeTopic(t, fakeSNS(t, false, &requests))
	var msgs []*providers.Message
	for i := range 25 {
		body := fmt.Sprint("ok ", i)
		switch i {
		case 3, 17:
			body = "busy"
		case 21:
			body = "bad"
		}
		msgs = append(msgs, &providers.Message{Body: []byte(body)})
	}
	err := tp.SendBatch(context.Background(), msgs)
	var be *providers.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SendBatch: %v, want a *BatchError", err)
	}
	if len(be.Failed) != 3 || !errors.Is(be.Failed[3], providers.ErrUnavailable) ||
		!errors.Is(be.Failed[17], providers.ErrUnavailable) ||
		!errors.Is(be.Failed[21], providers.ErrInvalid) {
		t.Errorf("Failed = %v, want #3 and #17 unavailable (throttled), #21 invalid", be.Failed)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d PublishBatch requests for 25 messages, want 3", n)
	}
}

func TestThrottlingIsUnavailable(t *testing.T) {
	var requests atomic.Int32
	tp := fakeTopic(t, fakeSNS(t, true, &requests))
	err := tp.SendBatch(context.Background(), []*providers.Message{{Body: []byte("x")}})
	if !errors.Is(err, providers.ErrUnavailable) || !strings.Contains(err.Error(), tp.arn) {
		t.Fatalf("SendBatch when throttled: %v, want ErrUnavailable naming the topic", err)
	}
	if n := requests.Load(); n < 2 {
		t.Errorf("%d requests: throttling should be retried before giving up", n)
	}
}

func TestConcurrentSendsShareRequests(t *testing.T) {
	var requests atomic.Int32
	tp := fakeTopic(t, slowSNS(t, false, &requests, 20*time.Millisecond))
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 100 {
		wg.Go(func() {
			m := &providers.Message{Body: []byte(fmt.Sprint("ok ", i))}
			if err := tp.SendBatch(context.Background(), []*providers.Message{m}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d sends failed", failed.Load())
	}
	// 100 one-message calls at once, 8 requests in flight: most calls
	// wait for a request and leave with others, 10 a request.
	t.Logf("PublishBatch requests for 100 concurrent one-message sends: %d", requests.Load())
	if n := requests.Load(); n > 30 {
		t.Errorf("100 concurrent one-message sends took %d requests, want at most 30", n)
	}
}
