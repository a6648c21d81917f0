package gcppubsub

import (
	"context"
	"fmt"
	"maps"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/seed06bc8277/herald/providers"
)

// Pub/Sub's bounds for a dead-letter policy's delivery attempts, and the
// margin herald keeps above its own MaxAttempts, so that herald
// dead-letters first, with the reason.
const (
	minDeliveryAttempts = 5
	maxDeliveryAttempts = 100
	backstopMargin      = 5
)

// Provision creates, idempotently, for topic T and each consumer C:
//
//   - topic T, labelled herald-ordering=enabled when t.Ordered;
//   - dead-letter topic T-C-dlq and its subscription T-C-dlq;
//   - subscription T-C on T with: ack deadline t.Lease (whole seconds,
//     10 to 600 s; default 30 s); message ordering when t.Ordered; the
//     retry policy of Options; a dead-letter policy to T-C-dlq after
//     MaxAttempts+5 delivery attempts (5 to 100), a backstop for when
//     herald cannot dead-letter itself; and the filter
//     `NOT attributes:herald-target OR attributes.herald-target = "C"`,
//     so that a redriven message reaches only the consumer it names.
//
// What exists is left as it is, except that an existing subscription
// whose message ordering differs from t.Ordered is an error wrapping
// ErrInvalid (Pub/Sub cannot change it). MaxAttempts above 95 is an
// error wrapping ErrInvalid: Pub/Sub's backstop stops at 100 attempts.
//
// On Google Cloud, the Pub/Sub service account of the project needs the
// publisher role on T-C-dlq and the subscriber role on T-C for the
// backstop to work; Provision does not grant IAM roles.
func (p *Provider) Provision(ctx context.Context, t providers.Topology) error {
	if err := p.checkOpen("provision topic " + t.Topic); err != nil {
		return err
	}
	maxAttempts := t.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 5
	}
	if maxAttempts > maxDeliveryAttempts-backstopMargin {
		return fmt.Errorf("%w: gcppubsub: provision topic %s: MaxAttempts %d is above %d "+
			"(Pub/Sub's dead-letter policy stops at %d attempts)", providers.ErrInvalid,
			t.Topic, maxAttempts, maxDeliveryAttempts-backstopMargin, maxDeliveryAttempts)
	}
	backstop := max(minDeliveryAttempts, maxAttempts+backstopMargin)
	lease := t.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	deadline := ceilSeconds(lease, minSubscriptionAckDeadline)

	if err := checkID("topic", t.Topic); err != nil {
		return err
	}
	for _, c := range t.Consumers {
		if err := checkID("subscription", deadLetterID(t.Topic, c)); err != nil {
			return err
		}
	}

	var labels map[string]string
	if t.Ordered {
		labels = map[string]string{labelOrdering: labelOrderingOn}
	}
	if err := p.createTopic(ctx, t.Topic, labels); err != nil {
		return err
	}
	for _, c := range t.Consumers {
		dlq := deadLetterID(t.Topic, c)
		if err := p.createTopic(ctx, dlq, nil); err != nil {
			return err
		}
		if err := p.createSubscription(ctx, &pb.Subscription{
			Name:               p.subPath(dlq),
			Topic:              p.topicPath(dlq),
			AckDeadlineSeconds: deadline,
		}); err != nil {
			return err
		}
		if err := p.createSubscription(ctx, &pb.Subscription{
			Name:                  p.subPath(subscriptionID(t.Topic, c)),
			Topic:                 p.topicPath(t.Topic),
			AckDeadlineSeconds:    deadline,
			EnableMessageOrdering: t.Ordered,
			Filter: fmt.Sprintf(`NOT attributes:%s OR attributes.%s = "%s"`,
				providers.AttrTarget, providers.AttrTarget, c),
			DeadLetterPolicy: &pb.DeadLetterPolicy{
				DeadLetterTopic:     p.topicPath(dlq),
				MaxDeliveryAttempts: int32(backstop),
			},
			RetryPolicy: &pb.RetryPolicy{
				MinimumBackoff: durationpb.New(p.opts.RetryMinBackoff),
				MaximumBackoff: durationpb.New(p.opts.RetryMaxBackoff),
			},
		}); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provider) createTopic(ctx context.Context, id string, labels map[string]string) error {
	path := p.topicPath(id)
	_, err := p.client.TopicAdminClient.CreateTopic(ctx, &pb.Topic{Name: path, Labels: labels})
	if err == nil {
		return nil
	}
	if !isAlreadyExists(err) {
		return wrap("create topic", path+" in "+p.where, err)
	}
	if len(labels) == 0 {
		return nil
	}

	// The topic exists: add the labels it lacks (the ordering label
	// tells publishers that ordering keys are welcome).
	got, err := p.client.TopicAdminClient.GetTopic(ctx, &pb.GetTopicRequest{Topic: path})
	if err != nil {
		return wrap("read topic", path, err)
	}
	merged := maps.Clone(got.GetLabels())
	if merged == nil {
		merged = map[string]string{}
	}
	changed := false
	for k, v := range labels {
		if merged[k] != v {
			merged[k], changed = v, true
		}
	}
	if !changed {
		return nil
	}
	_, err = p.client.TopicAdminClient.UpdateTopic(ctx, &pb.UpdateTopicRequest{
		Topic:      &pb.Topic{Name: path, Labels: merged},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	return wrap("label topic", path, err)
}

func (p *Provider) createSubscription(ctx context.Context, s *pb.Subscription) error {
	ordered := s.EnableMessageOrdering
	_, err := p.client.SubscriptionAdminClient.CreateSubscription(ctx, s)
	if err == nil {
		return nil
	}
	if !isAlreadyExists(err) {
		return wrap("create subscription", s.Name+" in "+p.where, err)
	}
	got, err := p.client.SubscriptionAdminClient.GetSubscription(ctx,
		&pb.GetSubscriptionRequest{Subscription: s.Name})
	if err != nil {
		return wrap("read subscription", s.Name, err)
	}
	if got.GetEnableMessageOrdering() != ordered {
		return fmt.Errorf("%w: gcppubsub: subscription %s exists with message ordering %v, "+
			"want %v; Pub/Sub cannot change it: delete the subscription first",
			providers.ErrInvalid, s.Name, got.GetEnableMessageOrdering(), ordered)
	}
	return nil
}
