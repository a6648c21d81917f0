package localstack

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// EnvPubSubEmulator names the standard variable that points Google's
// client libraries at a Pub/Sub emulator's host:port.
const EnvPubSubEmulator = "PUBSUB_EMULATOR_HOST"

// PubSubProject is the project herald uses on a local Pub/Sub. Emulators
// accept any project and create nothing until asked.
const PubSubProject = "herald-local"

const (
	// pubsubMaxMessage is the largest gRPC message the local server takes
	// and sends: Pub/Sub's 10 MB message limit plus room for a batch.
	pubsubMaxMessage = 32 << 20
	// pubsubPullWait is how long an empty Pull waits for a message.
	pubsubPullWait = time.Second
	// pubsubPollMax is the longest pause between two looks for messages
	// while a Pull waits.
	pubsubPollMax = 20 * time.Millisecond
)

// PubSub is a local Google Cloud Pub/Sub: pstest (the fake from
// cloud.google.com/go/pubsub/v2) served in this process on a loopback
// port, or the emulator named by PUBSUB_EMULATOR_HOST. Other processes on
// the machine can connect to Host while this process runs.
//
// herald serves pstest through a thin gRPC layer that makes it closer to
// Pub/Sub in two ways that herald relies on:
//
//   - delivery attempts are counted per subscription: pstest counts the
//     deliveries of a message to every subscription of its topic together
//     (its own dead-letter backstop still does);
//   - an empty Pull returns as soon as a message arrives, within 1 s,
//     instead of pstest's fixed 500 ms wait.
//
// Everything else is pstest's: it keeps everything in memory, ignores
// retry policies, accepts late ack IDs silently, and StreamingPull hands
// out one message per stream every 10 ms.
type PubSub struct {
	// Host is the emulator's "127.0.0.1:PORT", the PUBSUB_EMULATOR_HOST
	// form.
	Host string
	// Project is the project to use: PubSubProject.
	Project string
	// URL opens herald on it:
	// "gcppubsub://herald-local?endpoint=127.0.0.1:PORT".
	URL string

	fake   *pstest.Server
	srv    *grpc.Server
	served chan struct{}
	once   sync.Once
}

// StartPubSub returns a local Pub/Sub. When PUBSUB_EMULATOR_HOST is set,
// it checks that something listens there (within 2 s) and uses it;
// otherwise it starts pstest in this process on a free port of 127.0.0.1.
// Google's emulator through Docker is not wired in: start it yourself and
// set PUBSUB_EMULATOR_HOST.
func StartPubSub(ctx context.Context) (*PubSub, error) {
	if host := os.Getenv(EnvPubSubEmulator); host != "" {
		if err := dialPubSub(ctx, host); err != nil {
			return nil, fmt.Errorf("localstack: %s=%s: %w", EnvPubSubEmulator, host, err)
		}
		return newPubSub(host), nil
	}

	fake, err := newPstest()
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fake.Close()
		return nil, fmt.Errorf("localstack: pstest: listen on 127.0.0.1: %w", err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(pubsubMaxMessage),
		grpc.MaxSendMsgSize(pubsubMaxMessage))
	fixed := &pubsubLayer{GServer: &fake.GServer, counts: map[string]pubsubCount{}}
	pb.RegisterPublisherServer(srv, &fake.GServer)
	pb.RegisterSubscriberServer(srv, fixed)
	pb.RegisterSchemaServiceServer(srv, &fake.GServer)

	ps := newPubSub(lis.Addr().String())
	ps.fake, ps.srv, ps.served = fake, srv, make(chan struct{})
	go func() {
		defer close(ps.served)
		_ = srv.Serve(lis) // returns when Close stops the server
	}()
	return ps, nil
}

func newPubSub(host string) *PubSub {
	q := url.Values{"endpoint": {host}}
	return &PubSub{
		Host:    host,
		Project: PubSubProject,
		URL:     "gcppubsub://" + PubSubProject + "?" + q.Encode(),
	}
}

// newPstest starts pstest on its own loopback port (unused: clients talk
// to herald's layer), turning its panic on failure into an error.
func newPstest() (fake *pstest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("localstack: pstest did not start: %v", r)
		}
	}()
	return pstest.NewServerWithAddress("127.0.0.1:0"), nil
}

// Close stops pstest if StartPubSub started it, dropping every topic and
// message. It is safe to call more than once.
func (p *PubSub) Close() error {
	if p == nil || p.srv == nil {
		return nil
	}
	var err error
	p.once.Do(func() {
		p.srv.Stop()
		<-p.served
		err = p.fake.Close()
	})
	return err
}

// dialPubSub dials host:port once (at most 2 s).
func dialPubSub(ctx context.Context, host string) error {
	if _, _, err := net.SplitHostPort(host); err != nil {
		return fmt.Errorf("want HOST:PORT: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("nothing listens: %w", err)
	}
	return c.Close()
}

// pubsubLayer is pstest's Subscriber service with delivery attempts
// counted per subscription and a prompt long-polling Pull.
type pubsubLayer struct {
	*pstest.GServer

	mu     sync.Mutex
	counts map[string]pubsubCount // by subscription + "\x00" + message ID
}

// pubsubCount is how often a subscription delivered a message, and the
// ack ID of the last delivery (an ack with it ends the count).
type pubsubCount struct {
	n     int32
	ackID string
}

// Pull answers at once when messages are there or the caller asked to;
// otherwise it looks again, every 2 ms growing to 20 ms, for up to 1 s.
func (l *pubsubLayer) Pull(ctx context.Context, req *pb.PullRequest) (*pb.PullResponse, error) {
	quick := &pb.PullRequest{Subscription: req.GetSubscription(),
		MaxMessages: req.GetMaxMessages()}
	//lint:ignore SA1019 pstest's way not to wait
	quick.ReturnImmediately = true
	deadline := time.Now().Add(pubsubPullWait)
	pause := 2 * time.Millisecond
	for {
		resp, err := l.GServer.Pull(ctx, quick)
		if err != nil {
			return nil, err
		}
		//lint:ignore SA1019 clients may still ask not to wait
		if len(resp.GetReceivedMessages()) > 0 || req.GetReturnImmediately() ||
			time.Now().After(deadline) {
			return &pb.PullResponse{
				ReceivedMessages: l.count(req.GetSubscription(), resp.GetReceivedMessages()),
			}, nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, pubsubPollMax)
	}
}

// Acknowledge acks as pstest does and ends the counts of acked messages.
func (l *pubsubLayer) Acknowledge(ctx context.Context, req *pb.AcknowledgeRequest,
) (*emptypb.Empty, error) {
	resp, err := l.GServer.Acknowledge(ctx, req)
	if err == nil {
		l.forget(req.GetSubscription(), req.GetAckIds())
	}
	return resp, err
}

// StreamingPull serves pstest's stream with per-subscription attempts.
func (l *pubsubLayer) StreamingPull(s pb.Subscriber_StreamingPullServer) error {
	return l.GServer.StreamingPull(&pubsubStream{Subscriber_StreamingPullServer: s, l: l})
}

// count returns copies of msgs whose DeliveryAttempt (set by pstest only
// when the subscription has a dead-letter policy) counts this
// subscription's deliveries alone. The copies leave pstest's own records
// untouched.
func (l *pubsubLayer) count(sub string, msgs []*pb.ReceivedMessage) []*pb.ReceivedMessage {
	if len(msgs) == 0 {
		return msgs
	}
	out := make([]*pb.ReceivedMessage, len(msgs))
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, rm := range msgs {
		c := &pb.ReceivedMessage{AckId: rm.GetAckId(), Message: rm.GetMessage(),
			DeliveryAttempt: rm.GetDeliveryAttempt()}
		if c.DeliveryAttempt > 0 {
			key := sub + "\x00" + rm.GetMessage().GetMessageId()
			n := l.counts[key].n + 1
			l.counts[key] = pubsubCount{n: n, ackID: c.AckId}
			c.DeliveryAttempt = n
		}
		out[i] = c
	}
	return out
}

func (l *pubsubLayer) forget(sub string, ackIDs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ackIDs {
		// pstest's ack IDs are "MESSAGE-ID:DELIVERIES".
		msgID, _, ok := strings.Cut(id, ":")
		if !ok {
			continue
		}
		key := sub + "\x00" + msgID
		if c, ok := l.counts[key]; ok && c.ackID == id {
			delete(l.counts, key)
		}
	}
}

// pubsubStream rewrites the attempts a StreamingPull delivers.
type pubsubStream struct {
	pb.Subscriber_StreamingPullServer
	l   *pubsubLayer
	sub string // set by the first request, before pstest starts sending
}

func (s *pubsubStream) Recv() (*pb.StreamingPullRequest, error) {
	req, err := s.Subscriber_StreamingPullServer.Recv()
	if err != nil {
		return req, err
	}
	if s.sub == "" {
		s.sub = req.GetSubscription()
	}
	s.l.forget(s.sub, req.GetAckIds())
	return req, nil
}

func (s *pubsubStream) Send(res *pb.StreamingPullResponse) error {
	if len(res.GetReceivedMessages()) > 0 {
		res = &pb.StreamingPullResponse{
			ReceivedMessages:       s.l.count(s.sub, res.GetReceivedMessages()),
			SubscriptionProperties: res.GetSubscriptionProperties(),
		}
	}
	return s.Subscriber_StreamingPullServer.Send(res)
}
