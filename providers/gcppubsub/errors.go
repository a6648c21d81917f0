package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/support/bundler"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seed06bc8277/herald/providers"
)

// wrap turns an error of the Pub/Sub client into one that wraps herald's
// sentinel for its cause and names the operation and the resource. The
// client's error stays in the chain, so status.FromError still works.
func wrap(op, resource string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gcppubsub: %s %s: %w", op, resource, err)
	}
	var paused pubsub.ErrPublishingPaused
	switch {
	case errors.As(err, &paused):
		return fmt.Errorf("%w: gcppubsub: %s %s: not sent because an earlier message with "+
			"ordering key %q failed; send it again", providers.ErrUnavailable, op, resource,
			paused.OrderingKey)
	case errors.Is(err, pubsub.ErrPublisherStopped):
		return fmt.Errorf("%w: gcppubsub: %s %s: %w", providers.ErrClosed, op, resource, err)
	case errors.Is(err, bundler.ErrOversizedItem):
		return fmt.Errorf("%w: gcppubsub: %s %s: %w", providers.ErrTooLarge, op, resource, err)
	}

	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: gcppubsub: %s %s: %w", providers.ErrUnavailable, op, resource, err)
	}
	var sentinel error
	switch st.Code() {
	case codes.Canceled:
		return fmt.Errorf("gcppubsub: %s %s: %w: %w", op, resource, context.Canceled, err)
	case codes.NotFound:
		sentinel = providers.ErrNotFound
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition,
		codes.AlreadyExists, codes.PermissionDenied, codes.Unauthenticated,
		codes.Unimplemented:
		sentinel = providers.ErrInvalid
	default: // Unavailable, ResourceExhausted, DeadlineExceeded, Aborted, Internal...
		sentinel = providers.ErrUnavailable
	}
	if st.Code() == codes.InvalidArgument && strings.Contains(st.Message(), "too large") {
		sentinel = providers.ErrTooLarge
	}
	return fmt.Errorf("%w: gcppubsub: %s %s: %w", sentinel, op, resource, err)
}

// ctxEnded returns ctx's error when err came from ctx ending. gRPC runs
// its own timer for a context's deadline, which may fire a moment before
// the context's, so DEADLINE_EXCEEDED with the deadline (nearly) reached
// counts too, once ctx ended.
func ctxEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if status.Code(err) == codes.DeadlineExceeded {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 50*time.Millisecond {
			<-ctx.Done()
			return ctx.Err()
		}
	}
	return nil
}

// isNotFound reports whether err is Pub/Sub's NOT_FOUND.
func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// isAlreadyExists reports whether err is Pub/Sub's ALREADY_EXISTS.
func isAlreadyExists(err error) bool { return status.Code(err) == codes.AlreadyExists }

// invalidAckIDs returns the ack IDs that Pub/Sub reported as permanently
// invalid (their lease had ended). Pub/Sub only reports them for
// subscriptions with exactly-once delivery; elsewhere a late ack or
// ModifyAckDeadline succeeds and does nothing.
func invalidAckIDs(err error) map[string]bool {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out map[string]bool
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok {
			continue
		}
		for id, v := range info.GetMetadata() {
			if strings.HasPrefix(v, "PERMANENT_FAILURE_INVALID_ACK_ID") {
				if out == nil {
					out = map[string]bool{}
				}
				out[id] = true
			}
		}
	}
	return out
}
